//! Subscriber client for wspubsub: connect to a topic (a URL path) and receive every message
//! published to it as a [`futures_core::Stream`] of [`bytes::Bytes`].
//!
//! A [`Subscriber`] is the receiving end of one connection task that owns the socket. The task
//! forwards binary messages into a bounded queue that the stream reads; when the stream is not
//! read, the task stops reading the socket, so memory stays bounded (and a server cuts a
//! subscriber that stopped reading, with close code 4000). The stream ends after the
//! connection ends and every message received before was yielded; then [`Subscriber::done`]
//! says why, including the server's close code and reason.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use wspubsub_subclient::{ClientOptions, Subscriber};
//!
//! # async fn example() -> Result<(), wspubsub_subclient::ClientError> {
//! let mut subscriber = Subscriber::connect("ws://127.0.0.1:8080/news", ClientOptions::default()).await?;
//! while let Some(message) = subscriber.next().await {
//!     println!("{} bytes", message.len());
//! }
//! subscriber.done().await
//! # }
//! ```

mod task;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
pub use wspubsub_client_core::{ClientError, ClientOptions};
use wspubsub_client_core::{Ending, connect, ending};
use wspubsub_protocol::Role;

/// Messages received but not yet read from the stream before the task stops reading.
const MESSAGE_QUEUE: usize = 1024;

/// A connection that receives one topic's messages. Dropping it closes the connection (1000).
#[derive(Debug)]
pub struct Subscriber {
    messages: mpsc::Receiver<Bytes>,
    close: CancellationToken,
    ending: Ending,
}

impl Subscriber {
    /// Connects to `url` (`ws://host:port/topic`, or `wss://` for TLS) as a subscriber. Once this returns, every
    /// message published to the topic reaches this subscriber.
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Subscriber, ClientError> {
        let socket = connect(url, Role::Subscriber, &options).await?;
        let (sender, messages) = mpsc::channel(MESSAGE_QUEUE);
        let close = CancellationToken::new();
        let (outcome, ending) = ending();
        let requested = close.clone();
        tokio::spawn(
            async move { outcome.set(task::run(socket, sender, requested, &options).await) },
        );
        Ok(Subscriber {
            messages,
            close,
            ending,
        })
    }

    /// Closes the connection (1000), waits for the end, and says how it ended: `Ok` for a clean
    /// close. Messages already received can still be read from the stream.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.close.cancel();
        self.ending.wait().await
    }

    /// Waits until the connection has ended, however, and says how: `Ok` only after our own
    /// close; a server close gives [`ClientError::ServerClosed`] with its code and reason.
    pub async fn done(&self) -> Result<(), ClientError> {
        self.ending.wait().await
    }

    /// The error that ended the connection, if it has ended with one.
    pub fn error(&self) -> Option<ClientError> {
        self.ending.error()
    }
}

impl Stream for Subscriber {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.messages.poll_recv(cx)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.close.cancel();
    }
}
