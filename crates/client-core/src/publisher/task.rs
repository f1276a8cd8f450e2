//! The publisher's connection task: the only owner of the socket.

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};
use wspubsub_liveness::Liveness;
use wspubsub_protocol::CloseCode;

use super::unacked::Confirm;
use crate::socket::{Incoming, close_handshake, end_with, on_tick, read, timed_write};
use crate::{ClientError, ClientOptions};

/// Most messages written before one flush: a burst travels in few syscalls.
pub(crate) const BURST: usize = 256;

/// What the handles ask of the task, in the order they ask it.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send this message.
    Publish {
        /// The message.
        message: Bytes,
        /// Told once the server acknowledged it (stream mode only).
        confirm: Option<Confirm>,
    },
    /// Something to do once everything queued before is written.
    Then(Control),
}

/// The commands that end a burst of messages.
#[derive(Debug)]
pub(crate) enum Control {
    /// Answer once everything queued before is written to the socket.
    Flush(oneshot::Sender<()>),
    /// Close (1000) after everything queued before.
    Close,
}

/// Serves the connection until it is closed or breaks; returns how it ended.
///
/// `commands` is borrowed so that the caller can record the outcome before the queue closes:
/// a handle that finds the queue closed then always finds the reason recorded.
pub(crate) async fn run<S>(
    mut socket: WebSocketStream<S>,
    commands: &mut mpsc::Receiver<Command>,
    options: &ClientOptions,
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Every write is bounded by the write timeout: a server that takes none of our bytes for
    // that long is as good as gone.
    let limit = options.write_timeout;
    let mut liveness = Liveness::new(options.pong_deadline);
    loop {
        tokio::select! {
            biased;
            command = commands.recv() => {
                let control = match command {
                    Some(Command::Publish { message, .. }) => {
                        let mut then = None;
                        let burst = write_burst(&mut socket, (message, None), commands, BURST, |_, _| {}, &mut then);
                        timed_write(limit, &mut liveness, burst).await?;
                        then
                    }
                    Some(Command::Then(control)) => Some(control),
                    // Every handle dropped.
                    None => Some(Control::Close),
                };
                match control {
                    None => {}
                    Some(Control::Flush(flushed)) => {
                        timed_write(limit, &mut liveness, socket.flush()).await?;
                        // The asker may have stopped waiting; the flush happened regardless.
                        let _answered = flushed.send(());
                    }
                    Some(Control::Close) => {
                        close_handshake(&mut socket, CloseCode::Normal, "", options.close_deadline).await;
                        return Ok(());
                    }
                }
            }
            incoming = read(&mut socket) => match incoming {
                Incoming::End(error) => return end_with(&mut socket, error, options.close_deadline).await,
                Incoming::Message(_) | Incoming::Text(_) | Incoming::Alive => liveness.heard(),
            },
            tick = liveness.tick() => on_tick(tick, &mut liveness, &mut socket, options).await?,
        }
    }
}

/// Writes `first` and whatever else is already queued (up to `most` messages), then flushes
/// once. Each message is shown to `written` before it goes out (a raw publisher keeps
/// nothing, a stream-mode one keeps it until acknowledged); the control command that
/// ended the burst, if one did, is put in `then`, also when the write fails.
pub(crate) async fn write_burst<S>(
    socket: &mut WebSocketStream<S>,
    (first, confirm): (Bytes, Option<Confirm>),
    commands: &mut mpsc::Receiver<Command>,
    most: usize,
    mut written: impl FnMut(&Bytes, Option<Confirm>),
    then: &mut Option<Control>,
) -> Result<(), tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    written(&first, confirm);
    socket.feed(Message::Binary(first)).await?;
    for _ in 1..most {
        match commands.try_recv() {
            Ok(Command::Publish { message, confirm }) => {
                written(&message, confirm);
                socket.feed(Message::Binary(message)).await?;
            }
            Ok(Command::Then(control)) => {
                *then = Some(control);
                break;
            }
            Err(_) => break,
        }
    }
    socket.flush().await
}
