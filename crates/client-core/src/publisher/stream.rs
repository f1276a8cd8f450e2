//! The stream-mode publisher's task: writes what the handles publish, keeps every message
//! until the server's ack covers it, and, with a reconnect policy, connects again and
//! re-sends what was not acknowledged (at-least-once).

use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use wspubsub_liveness::Liveness;
use wspubsub_protocol::{CloseCode, Control as Notice, Role};

use super::task::{BURST, Command, Control, write_burst};
use super::unacked::Unacked;
use crate::reconnect::{Backoff, Reconnect, connect_again};
use crate::socket::{
    ClientSocket, Incoming, Mode, close_handshake, end_with, on_tick, read, timed_write,
};
use crate::{ClientError, ClientOptions};

/// Default bound on messages written and not yet acknowledged.
pub const DEFAULT_MAX_UNACKED_MESSAGES: usize = 4096;

/// Default bound on the bytes of messages written and not yet acknowledged (32 MiB).
pub const DEFAULT_MAX_UNACKED_BYTES: usize = 32 << 20;

/// How a stream-mode publisher holds unacknowledged messages and whether it reconnects.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    pub(crate) reconnect: Option<Reconnect>,
    pub(crate) max_unacked_messages: usize,
    pub(crate) max_unacked_bytes: usize,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        PublisherOptions {
            reconnect: None,
            max_unacked_messages: DEFAULT_MAX_UNACKED_MESSAGES,
            max_unacked_bytes: DEFAULT_MAX_UNACKED_BYTES,
        }
    }
}

impl PublisherOptions {
    /// Connects again after a connection ends for a reason a new connection can fix, and
    /// re-sends every message the server had not acknowledged, in order: delivery is then
    /// at-least-once (a message stored just before the break, its ack lost, is stored
    /// twice). Without it (the default) the publisher ends with its connection, and
    /// unacknowledged messages fail with its error.
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.reconnect = Some(policy);
        self
    }

    /// Most messages, and their bytes, written and not yet acknowledged: at either bound,
    /// `publish` waits for acks (memory stays bounded, and so does what a reconnect
    /// re-sends). A single message larger than `bytes` still goes when nothing else waits.
    pub fn max_unacked(mut self, messages: usize, bytes: usize) -> Self {
        self.max_unacked_messages = messages;
        self.max_unacked_bytes = bytes;
        self
    }

    /// Refuses bounds and policies a publisher cannot run with.
    pub(crate) fn validate(&self) -> Result<(), ClientError> {
        if self.max_unacked_messages == 0 || self.max_unacked_bytes == 0 {
            return Err(ClientError::InvalidOption(
                "the unacknowledged bounds must not be zero".into(),
            ));
        }
        self.reconnect.as_ref().map_or(Ok(()), Reconnect::validate)
    }
}

/// What survives from one connection to the next.
#[derive(Debug, Default)]
struct Carried {
    unacked: Unacked,
    /// A flush or close taken from the queue and not finished when a connection broke.
    pending: Option<Control>,
    /// Whether a close was asked for: the task closes once everything is acknowledged.
    closing: bool,
}

/// Serves `socket`, the first connection, then, if the policy allows, the connections that
/// follow, until closed (`Ok` once every message was acknowledged) or an end the policy
/// does not retry.
pub(crate) async fn run(
    mut socket: ClientSocket,
    url: String,
    commands: &mut mpsc::Receiver<Command>,
    options: &ClientOptions,
    publisher: &PublisherOptions,
) -> Result<(), ClientError> {
    let mut backoff = publisher.reconnect.map(Backoff::new);
    let mut carried = Carried::default();
    loop {
        let mut acked = false;
        let error = match serve(
            &mut socket,
            commands,
            &mut carried,
            &mut acked,
            options,
            publisher,
        )
        .await
        {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let Some(backoff) = backoff.as_mut().filter(|_| error.is_retryable()) else {
            carried.unacked.fail(&error);
            return Err(error);
        };
        if acked {
            backoff.reset();
        }
        tracing::info!(%error, unacked = carried.unacked.len(), "publisher connection ended; reconnecting");
        socket = match connect_again(&url, Role::Publisher, Mode::Stream, backoff, options).await {
            Ok(socket) => socket,
            Err(error) => {
                carried.unacked.fail(&error);
                return Err(error);
            }
        };
    }
}

/// Serves one connection: re-sends what is unacknowledged, then writes what the handles
/// publish while the bounds allow, and counts the acks. `Ok` once closed cleanly.
async fn serve(
    socket: &mut ClientSocket,
    commands: &mut mpsc::Receiver<Command>,
    carried: &mut Carried,
    acked: &mut bool,
    options: &ClientOptions,
    publisher: &PublisherOptions,
) -> Result<(), ClientError> {
    let limit = options.write_timeout;
    let mut liveness = Liveness::new(options.pong_deadline);
    if !carried.unacked.is_empty() {
        let unacked = &mut carried.unacked;
        let resend = async {
            for message in unacked.resend() {
                socket.feed(Message::Binary(message)).await?;
            }
            socket.flush().await
        };
        timed_write(limit, &mut liveness, resend).await?;
    }
    if let Some(control) = carried.pending.take() {
        then(control, socket, carried, &mut liveness, options).await?;
    }
    // While closing, the server must keep acknowledging: no progress for the write timeout
    // ends the publisher.
    let mut ack_deadline = Instant::now() + limit;
    let mut deadline_armed = false;
    loop {
        if carried.closing && !deadline_armed {
            ack_deadline = Instant::now() + limit;
            deadline_armed = true;
        }
        if carried.closing && carried.unacked.is_empty() {
            close_handshake(socket, CloseCode::Normal, "", options.close_deadline).await;
            return Ok(());
        }
        let unacked = &carried.unacked;
        let room = publisher.max_unacked_messages.saturating_sub(unacked.len());
        let open =
            room > 0 && (unacked.is_empty() || unacked.bytes() < publisher.max_unacked_bytes);
        tokio::select! {
            biased;
            command = commands.recv(), if open && !carried.closing => match command {
                Some(Command::Publish { message, confirm }) => {
                    let mut then_control = None;
                    let unacked = &mut carried.unacked;
                    let burst = write_burst(
                        socket,
                        (message, confirm),
                        commands,
                        room.min(BURST),
                        |message, confirm| unacked.written(message.clone(), confirm),
                        &mut then_control,
                    );
                    let written = timed_write(limit, &mut liveness, burst).await;
                    if let Err(error) = written {
                        carried.pending = then_control;
                        return Err(error);
                    }
                    if let Some(control) = then_control {
                        then(control, socket, carried, &mut liveness, options).await?;
                    }
                }
                Some(Command::Then(control)) => then(control, socket, carried, &mut liveness, options).await?,
                // Every handle dropped: close once everything is acknowledged.
                None => carried.closing = true,
            },
            incoming = read(socket) => match incoming {
                Incoming::Text(text) => {
                    liveness.heard();
                    if let Ok(Notice::Ack { count, .. }) = Notice::from_json(&text) {
                        carried.unacked.ack(count);
                        *acked = true;
                        ack_deadline = Instant::now() + limit;
                    }
                }
                Incoming::Message(_) | Incoming::Alive => liveness.heard(),
                Incoming::End(error) => return end_with(socket, error, options.close_deadline).await,
            },
            tick = liveness.tick() => on_tick(tick, &mut liveness, socket, options).await?,
            () = tokio::time::sleep_until(ack_deadline), if carried.closing => {
                let messages = carried.unacked.len();
                close_handshake(socket, CloseCode::Normal, "", options.close_deadline).await;
                return Err(ClientError::Unacknowledged { messages });
            }
        }
    }
}

/// Does a flush or a close asked for after the messages before it; a flush that fails is
/// kept for the next connection.
async fn then(
    control: Control,
    socket: &mut ClientSocket,
    carried: &mut Carried,
    liveness: &mut Liveness,
    options: &ClientOptions,
) -> Result<(), ClientError> {
    match control {
        Control::Flush(flushed) => {
            if let Err(error) = timed_write(options.write_timeout, liveness, socket.flush()).await {
                carried.pending = Some(Control::Flush(flushed));
                return Err(error);
            }
            // The asker may have stopped waiting; the flush happened regardless.
            let _answered = flushed.send(());
        }
        Control::Close => carried.closing = true,
    }
    Ok(())
}
