//! The subscribers: the receiving ends of connection tasks that own their sockets, as
//! [`Stream`]s that end with the error that ended them. [`Subscriber`] speaks protocol v1 (raw
//! messages, as the Go clients do); [`stream::StreamSubscriber`] speaks stream mode (messages
//! with their positions, resume, reconnect).

mod buffer;
mod inbox;
pub(crate) mod stream;
mod task;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use futures_core::stream::FusedStream;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use wspubsub_protocol::Role;

use self::inbox::{Inbox, Outbox, Weigh, inbox};
use self::task::Frames;
use crate::outcome::{Outcome, outcome};
use crate::socket::Mode;
use crate::{ClientError, ClientOptions, socket};

/// A connection that receives one topic's messages. Dropping it closes the connection (1000).
///
/// As a [`Stream`] it yields `Ok(message)` for every message, in order; if the connection
/// ended with an error, one last `Err(error)` after every message received before it (so a
/// `?` in the loop cannot miss it); then `None`, for good ([`FusedStream`]). Our own close
/// ends it with `None` alone.
#[derive(Debug)]
pub struct Subscriber {
    receiving: Receiving<Bytes>,
}

impl Subscriber {
    /// Connects to `url` (`ws://host:port/topic`, or `wss://` for TLS) as a subscriber. Once
    /// this returns, every message published to the topic reaches this subscriber.
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Subscriber, ClientError> {
        let socket = socket::connect(url, Role::Subscriber, Mode::Raw, &options).await?;
        Ok(Subscriber::spawn(socket, options))
    }

    /// Starts the connection task on a connected socket.
    pub(crate) fn spawn<S>(mut socket: WebSocketStream<S>, options: ClientOptions) -> Subscriber
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let receiving = Receiving::start(&options.clone(), |outbox, close| async move {
            task::serve(&mut socket, &mut RawFrames, &outbox, &close, &options).await
        });
        Subscriber { receiving }
    }

    /// Closes the connection (1000), waits for the end, and says how it ended: `Ok` for a clean
    /// close. Messages already received can still be read from the stream.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.receiving.close().await
    }

    /// Waits until the connection has ended, however, and says how: `Ok` only after our own
    /// close; a server close gives [`ClientError::ServerClosed`] with its code and reason, a
    /// consumer that fell behind [`ClientError::Lagged`]. The stream's last item says the same.
    pub async fn done(&self) -> Result<(), ClientError> {
        self.receiving.outcome.wait().await
    }

    /// The error that ended the connection, if it has ended with one.
    pub fn error(&self) -> Option<ClientError> {
        self.receiving.outcome.error()
    }
}

impl Stream for Subscriber {
    type Item = Result<Bytes, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().receiving.inbox.poll_next(cx)
    }
}

impl FusedStream for Subscriber {
    fn is_terminated(&self) -> bool {
        self.receiving.inbox.is_terminated()
    }
}

/// Protocol v1: every binary frame is a message; the server sends no text frames.
struct RawFrames;

impl Frames for RawFrames {
    type Item = Bytes;

    fn binary(&mut self, frame: Bytes) -> Result<Option<Bytes>, ClientError> {
        Ok(Some(frame))
    }

    fn text(&mut self, _text: &str) -> Option<Bytes> {
        tracing::warn!("ignored a text frame: protocol v1 servers send binary frames only");
        None
    }
}

/// What both subscriber handles hold: the stream's end, the way to ask the task to close,
/// and how the task ended. Dropping it asks the task to close.
#[derive(Debug)]
struct Receiving<T> {
    inbox: Inbox<T>,
    close: CancellationToken,
    outcome: Outcome,
}

impl<T: Weigh + Send + 'static> Receiving<T> {
    /// Spawns the connection task `run`, which feeds the outbox until the close token is
    /// cancelled or the connection ends; its error, if any, becomes the stream's last item.
    fn start<F, Fut>(options: &ClientOptions, run: F) -> Receiving<T>
    where
        F: FnOnce(Outbox<T>, CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), ClientError>> + Send + 'static,
    {
        let (outbox, inbox) = inbox(options);
        let close = CancellationToken::new();
        let (outcome_sender, outcome) = outcome();
        let running = run(outbox.clone(), close.clone());
        tokio::spawn(async move {
            let ended = running.await;
            if let Err(error) = &ended {
                outbox.end(error.clone());
            }
            outcome_sender.set(ended);
        });
        Receiving {
            inbox,
            close,
            outcome,
        }
    }
}

impl<T> Receiving<T> {
    /// Asks the task to close and waits for how it ended.
    async fn close(&self) -> Result<(), ClientError> {
        self.close.cancel();
        self.outcome.wait().await
    }
}

impl<T> Drop for Receiving<T> {
    fn drop(&mut self) {
        self.close.cancel();
    }
}
