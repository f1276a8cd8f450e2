//! The publisher: a cheap, cloneable handle to one connection task that owns the socket (as
//! in async-nats), and a [`Sink`] of messages.

pub(crate) mod stream;
mod task;
mod unacked;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::PollSender;
use wspubsub_protocol::Role;

use self::stream::PublisherOptions;
use self::task::{Command, Control};
use crate::outcome::{Outcome, outcome};
use crate::socket::Mode;
use crate::{ClientError, ClientOptions, socket};

/// Messages queued for the connection task before `publish` waits.
const COMMAND_QUEUE: usize = 64;

/// A flush or a close under way for the [`Sink`] implementation.
type Pending = Pin<Box<dyn Future<Output = Result<(), ClientError>> + Send + Sync>>;

/// A connection that publishes to one topic. Clones share the connection; it closes (1000)
/// when the last clone is dropped.
///
/// Also a [`Sink`] of [`Bytes`], so that `stream.forward(publisher)` publishes a stream:
/// `poll_ready` waits for room in the queue, `poll_flush` is [`Publisher::flush`] and
/// `poll_close` is [`Publisher::close`].
pub struct Publisher {
    /// The queue to the connection task.
    commands: mpsc::Sender<Command>,
    /// How the connection ended, once it has.
    outcome: Outcome,
    /// The same queue, for the `Sink` methods, which cannot await.
    sink: PollSender<Command>,
    /// A `poll_flush` under way.
    flushing: Option<Pending>,
    /// A `poll_close` under way.
    closing: Option<Pending>,
    /// Whether the connection is in stream mode, where the server acknowledges messages.
    acks: bool,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("outcome", &self.outcome.get())
            .field("acks", &self.acks)
            .finish_non_exhaustive()
    }
}

impl Clone for Publisher {
    fn clone(&self) -> Self {
        Publisher::new(self.commands.clone(), self.outcome.clone(), self.acks)
    }
}

impl Publisher {
    /// Connects to `url` (`ws://host:port/topic`, or `wss://` for TLS) as a publisher.
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Publisher, ClientError> {
        let socket = socket::connect(url, Role::Publisher, Mode::Raw, &options).await?;
        Ok(Publisher::spawn(socket, options))
    }

    /// Connects to `url` as a publisher in stream mode (`wspubsub.v2`): the server
    /// acknowledges what it stored, so [`Publisher::publish_confirmed`] can say when a
    /// message is safe, [`Publisher::close`] returns `Ok` only once every message is
    /// acknowledged, and with a reconnect policy ([`PublisherOptions::reconnect`]) what was
    /// not acknowledged is re-sent on a new connection (at-least-once). Fails at once, with no
    /// retry, when this first connection cannot be made ([`ClientError::NoStreamMode`] for a
    /// server that does not speak stream mode).
    pub async fn connect_stream(
        url: &str,
        options: ClientOptions,
        publisher: PublisherOptions,
    ) -> Result<Publisher, ClientError> {
        publisher.validate()?;
        let socket = socket::connect(url, Role::Publisher, Mode::Stream, &options).await?;
        let url = url.to_owned();
        let (commands, outcome) = Publisher::start(move |mut queue| async move {
            let ended = stream::run(socket, url, &mut queue, &options, &publisher).await;
            (ended, queue)
        });
        Ok(Publisher::new(commands, outcome, true))
    }

    /// Starts the connection task on a connected socket.
    pub(crate) fn spawn<S>(socket: WebSocketStream<S>, options: ClientOptions) -> Publisher
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (commands, outcome) = Publisher::start(move |mut queue| async move {
            let ended = task::run(socket, &mut queue, &options).await;
            (ended, queue)
        });
        Publisher::new(commands, outcome, false)
    }

    /// Spawns a connection task `run` on the receiving end of a new command queue.
    fn start<F, Fut>(run: F) -> (mpsc::Sender<Command>, Outcome)
    where
        F: FnOnce(mpsc::Receiver<Command>) -> Fut + Send + 'static,
        Fut: Future<Output = (Result<(), ClientError>, mpsc::Receiver<Command>)> + Send,
    {
        let (commands, queue) = mpsc::channel(COMMAND_QUEUE);
        let (sender, outcome) = outcome();
        tokio::spawn(async move {
            let (ended, queue) = run(queue).await;
            sender.set(ended);
            // Only now may sends fail: whoever finds the queue closed finds the reason set.
            drop(queue);
        });
        (commands, outcome)
    }

    fn new(commands: mpsc::Sender<Command>, outcome: Outcome, acks: bool) -> Publisher {
        Publisher {
            sink: PollSender::new(commands.clone()),
            commands,
            outcome,
            flushing: None,
            closing: None,
            acks,
        }
    }

    /// Queues one binary message for the connection task, waiting while its queue (64
    /// messages) is full, so that a backed-up socket pushes back instead of memory growing.
    ///
    /// `Ok` means exactly this: the message is queued, and it will be written after every
    /// message queued before it and before the close, unless the connection ends first (then
    /// [`Publisher::done`] says why). It does not mean the message was written or that the
    /// server has it: await [`Publisher::flush`] for "written to the socket"; the protocol has
    /// no acknowledgement from the server. `Err` is how the connection ended, when it has.
    pub async fn publish(&self, message: impl Into<Bytes>) -> Result<(), ClientError> {
        let publish = Command::Publish {
            message: message.into(),
            confirm: None,
        };
        match self.commands.send(publish).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.outcome.reason_closed()),
        }
    }

    /// Publishes one message and waits until the server acknowledges that it stored it
    /// (stream mode only: [`ClientError::NoAcks`] otherwise). With a reconnect policy, a
    /// message whose connection broke before its ack is re-sent and confirmed by the next
    /// connection's ack; `Err` is how the publisher ended, with the message perhaps stored.
    pub async fn publish_confirmed(&self, message: impl Into<Bytes>) -> Result<(), ClientError> {
        if !self.acks {
            return Err(ClientError::NoAcks);
        }
        let (confirm, confirmed) = oneshot::channel();
        let publish = Command::Publish {
            message: message.into(),
            confirm: Some(confirm),
        };
        if self.commands.send(publish).await.is_err() {
            return Err(self.outcome.reason_closed());
        }
        match confirmed.await {
            Ok(result) => result,
            // The task dropped the request: it has ended, or is about to say how.
            Err(_) => Err(self
                .outcome
                .wait()
                .await
                .err()
                .unwrap_or(ClientError::Closed)),
        }
    }

    /// Waits until every message published before (by any clone) is written to the socket
    /// and flushed, within the write timeout; fails with the reason the connection ended if
    /// it ends first.
    pub async fn flush(&self) -> Result<(), ClientError> {
        flush(self.commands.clone(), self.outcome.clone()).await
    }

    /// Closes the connection (1000) after every message published before, waits for the end,
    /// and says how it ended: `Ok` for a clean close.
    pub async fn close(&self) -> Result<(), ClientError> {
        close(self.commands.clone(), self.outcome.clone()).await
    }

    /// Waits until the connection has ended, however, and says how: `Ok` only after our own
    /// close.
    pub async fn done(&self) -> Result<(), ClientError> {
        self.outcome.wait().await
    }

    /// The error that ended the connection, if it has ended with one.
    pub fn error(&self) -> Option<ClientError> {
        self.outcome.error()
    }
}

/// [`Publisher::flush`], owning what it needs, so that `poll_flush` can keep it.
async fn flush(commands: mpsc::Sender<Command>, outcome: Outcome) -> Result<(), ClientError> {
    let (flushed, done) = oneshot::channel();
    if commands
        .send(Command::Then(Control::Flush(flushed)))
        .await
        .is_err()
    {
        return Err(outcome.reason_closed());
    }
    match done.await {
        Ok(()) => Ok(()),
        // The task dropped the request: it has ended, or is about to say how.
        Err(_) => Err(outcome.wait().await.err().unwrap_or(ClientError::Closed)),
    }
}

/// [`Publisher::close`], owning what it needs, so that `poll_close` can keep it.
async fn close(commands: mpsc::Sender<Command>, outcome: Outcome) -> Result<(), ClientError> {
    // If the task is already gone, the outcome says why.
    let _gone = commands.send(Command::Then(Control::Close)).await;
    outcome.wait().await
}

/// Polls the operation in `slot`, starting it with `start` when none is under way.
fn poll_pending(
    slot: &mut Option<Pending>,
    cx: &mut Context<'_>,
    start: impl FnOnce() -> Pending,
) -> Poll<Result<(), ClientError>> {
    let result = ready!(slot.get_or_insert_with(start).as_mut().poll(cx));
    *slot = None;
    Poll::Ready(result)
}

impl Sink<Bytes> for Publisher {
    type Error = ClientError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        let this = self.get_mut();
        this.sink
            .poll_reserve(cx)
            .map_err(|_| this.outcome.reason_closed())
    }

    fn start_send(self: Pin<&mut Self>, message: Bytes) -> Result<(), ClientError> {
        let this = self.get_mut();
        this.sink
            .send_item(Command::Publish {
                message,
                confirm: None,
            })
            .map_err(|_| this.outcome.reason_closed())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        let this = self.get_mut();
        let (commands, outcome) = (this.commands.clone(), this.outcome.clone());
        poll_pending(&mut this.flushing, cx, || {
            Box::pin(flush(commands, outcome))
        })
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        let this = self.get_mut();
        let (commands, outcome) = (this.commands.clone(), this.outcome.clone());
        poll_pending(&mut this.closing, cx, || Box::pin(close(commands, outcome)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::FutureExt;
    use tokio::io::{AsyncReadExt, DuplexStream};
    use tokio_tungstenite::tungstenite::protocol::Role as WireRole;

    use super::*;

    /// A publisher over an in-memory pipe of `capacity` bytes whose server end reads only
    /// when the test does, with a 5 s pong deadline and write timeout.
    async fn over_pipe(capacity: usize) -> (Publisher, DuplexStream) {
        let (client, server) = tokio::io::duplex(capacity);
        let socket = WebSocketStream::from_raw_socket(client, WireRole::Client, None).await;
        let options = ClientOptions::default()
            .pong_deadline(Duration::from_secs(5))
            .write_timeout(WRITE_TIMEOUT);
        (Publisher::spawn(socket, options), server)
    }

    const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

    /// Bytes of a masked client frame carrying `payload` bytes (under 126).
    const fn frame_len(payload: usize) -> usize {
        2 + 4 + payload
    }

    #[tokio::test(start_paused = true)]
    async fn flush_resolves_once_the_message_is_on_the_socket() {
        let (publisher, mut server) = over_pipe(1024).await;
        publisher.publish(vec![7u8; 10]).await.expect("queued");
        publisher.flush().await.expect("flushed");
        let mut written = [0u8; 64];
        let read = server.read(&mut written).now_or_never();
        assert!(
            matches!(read, Some(Ok(n)) if n == frame_len(10)),
            "{read:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn flush_on_a_socket_that_takes_nothing_ends_with_the_write_timeout() {
        let (publisher, _server) = over_pipe(64).await;
        publisher.publish(vec![0u8; 100]).await.expect("queued");
        let flushed = tokio::time::timeout(Duration::from_secs(60), publisher.flush()).await;
        assert!(
            matches!(flushed, Ok(Err(ClientError::WriteTimeout(limit))) if limit == WRITE_TIMEOUT),
            "{flushed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_ping_on_a_full_socket_is_bounded_by_the_write_timeout() {
        let capacity = frame_len(58);
        let (publisher, _server) = over_pipe(capacity).await;
        // One message that fills the pipe exactly: its write completes, and the ping that
        // comes at 3.5 s finds no room.
        publisher.publish(vec![0u8; 58]).await.expect("queued");
        publisher.flush().await.expect("the message fits");
        let ended = tokio::time::timeout(Duration::from_secs(60), publisher.done()).await;
        assert!(
            matches!(ended, Ok(Err(ClientError::WriteTimeout(limit))) if limit == WRITE_TIMEOUT),
            "{ended:?}"
        );
    }
}
