//! The subscriber: the receiving end of one connection task that owns the socket, as a
//! [`Stream`] of messages that ends with the error that ended the connection.

mod buffer;
mod task;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use futures_core::stream::FusedStream;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use wspubsub_protocol::Role;

use self::buffer::ReceiveBuffer;
use crate::outcome::{Outcome, outcome};
use crate::{ClientError, ClientOptions, socket};

/// A connection that receives one topic's messages. Dropping it closes the connection (1000).
///
/// As a [`Stream`] it yields `Ok(message)` for every message, in order; if the connection
/// ended with an error, one last `Err(error)` after every message received before it (so a
/// `?` in the loop cannot miss it); then `None`, for good ([`FusedStream`]). Our own close
/// ends it with `None` alone.
#[derive(Debug)]
pub struct Subscriber {
    /// Messages from the connection task, then its error, if it ended with one.
    messages: mpsc::UnboundedReceiver<Result<Bytes, ClientError>>,
    /// The bound on `messages`, shared with the task (which is why the channel itself may be
    /// unbounded).
    buffer: Arc<ReceiveBuffer>,
    /// Asks the task to close.
    close: CancellationToken,
    /// How the connection ended, once it has.
    outcome: Outcome,
    /// Whether the stream has yielded `None`.
    terminated: bool,
}

impl Subscriber {
    /// Connects to `url` (`ws://host:port/topic`, or `wss://` for TLS) as a subscriber. Once
    /// this returns, every message published to the topic reaches this subscriber.
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Subscriber, ClientError> {
        let socket = socket::connect(url, Role::Subscriber, &options).await?;
        Ok(Subscriber::spawn(socket, options))
    }

    /// Starts the connection task on a connected socket.
    pub(crate) fn spawn<S>(socket: WebSocketStream<S>, options: ClientOptions) -> Subscriber
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, messages) = mpsc::unbounded_channel();
        let buffer = Arc::new(ReceiveBuffer::new(
            options.receive_buffer_messages,
            options.receive_buffer_bytes,
        ));
        let close = CancellationToken::new();
        let (outcome_sender, outcome) = outcome();
        let (task_buffer, requested) = (Arc::clone(&buffer), close.clone());
        tokio::spawn(async move {
            let ended = task::run(socket, &sender, &task_buffer, requested, &options).await;
            if let Err(error) = &ended {
                // The stream's last item; if the stream is gone, nobody needs it.
                let _sent = sender.send(Err(error.clone()));
            }
            outcome_sender.set(ended);
        });
        Subscriber {
            messages,
            buffer,
            close,
            outcome,
            terminated: false,
        }
    }

    /// Closes the connection (1000), waits for the end, and says how it ended: `Ok` for a clean
    /// close. Messages already received can still be read from the stream.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.close.cancel();
        self.outcome.wait().await
    }

    /// Waits until the connection has ended, however, and says how: `Ok` only after our own
    /// close; a server close gives [`ClientError::ServerClosed`] with its code and reason, a
    /// consumer that fell behind [`ClientError::Lagged`]. The stream's last item says the same.
    pub async fn done(&self) -> Result<(), ClientError> {
        self.outcome.wait().await
    }

    /// The error that ended the connection, if it has ended with one.
    pub fn error(&self) -> Option<ClientError> {
        self.outcome.error()
    }
}

impl Stream for Subscriber {
    type Item = Result<Bytes, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.terminated {
            return Poll::Ready(None);
        }
        let next = std::task::ready!(this.messages.poll_recv(cx));
        match &next {
            Some(Ok(message)) => this.buffer.release(message.len()),
            Some(Err(_)) => {}
            None => this.terminated = true,
        }
        Poll::Ready(next)
    }
}

impl FusedStream for Subscriber {
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.close.cancel();
    }
}
