//! Publisher client for wspubsub: connect to a topic (a URL path), publish binary messages,
//! close.
//!
//! - [`Publisher`]: a cheap, cloneable handle. [`Publisher::publish`] queues a message for
//!   the connection task through a small bounded queue, so it waits when the socket is
//!   backed up instead of buffering without bound; [`Publisher::close`] closes after every
//!   message published before it; [`Publisher::done`] and [`Publisher::error`] say how the
//!   connection ended (the Go client's `Done()` and `Error()`).
//! - The connection task (as in async-nats) owns the socket: it writes bursts of messages and
//!   flushes once per burst, keeps reading while it writes, answers the server's pings and
//!   pings the server itself, and ends with a typed [`ClientError`] when the server closes,
//!   the connection breaks, or the server goes silent. Its socket work is
//!   [`wspubsub_client_core::Connection`], shared with the subscriber.
//!
//! ```no_run
//! use wspubsub_pubclient::{ClientOptions, Publisher};
//!
//! # async fn example() -> Result<(), wspubsub_pubclient::ClientError> {
//! let publisher = Publisher::connect("ws://127.0.0.1:8080/news", ClientOptions::default()).await?;
//! publisher.publish(&b"hello"[..]).await?;
//! publisher.close().await?; // everything published goes out first
//! # Ok(())
//! # }
//! ```

mod task;

use bytes::Bytes;
use tokio::sync::mpsc;
pub use wspubsub_client_core::{ClientError, ClientOptions};
use wspubsub_client_core::{Command, Ending, connect, ending};
use wspubsub_protocol::Role;

/// Commands queued for the connection task before [`Publisher::publish`] waits: small, so
/// that a backed-up socket pushes back on the caller at once.
pub const COMMAND_QUEUE: usize = 64;

/// A connection that publishes to one topic.
///
/// Clones share the connection. When the last clone is dropped, the connection closes (1000)
/// in the background after everything published before.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// The queue to the connection task, in publish order.
    commands: mpsc::Sender<Command>,
    /// How the connection ended, once it has.
    ending: Ending,
}

impl Publisher {
    /// Connects to `url` (`ws://host:port/topic`) as a publisher (the `pubsub: publisher`
    /// header), within the connect timeout.
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Publisher, ClientError> {
        let connection = connect(url, Role::Publisher, &options).await?;
        let (commands, mut queue) = mpsc::channel(COMMAND_QUEUE);
        let (outcome, ending) = ending();
        tokio::spawn(async move {
            let ended = task::run(connection, &mut queue).await;
            outcome.set(ended);
        });
        Ok(Publisher { commands, ending })
    }

    /// Publishes one binary message. Messages go out in the order they were published.
    ///
    /// `Ok` means the message was queued for the socket, not that it was delivered; waits
    /// while the queue is full (the socket is backed up). Once the connection has ended,
    /// fails with the reason it ended, or [`ClientError::Closed`] after our own close.
    pub async fn publish(&self, message: impl Into<Bytes>) -> Result<(), ClientError> {
        match self.commands.send(Command::Publish(message.into())).await {
            Ok(()) => Ok(()),
            Err(_ended) => Err(self.ended().await),
        }
    }

    /// Closes the connection: every message published before goes out first, then close 1000,
    /// then the server's echo is awaited (within the close deadline). Returns how the
    /// connection ended: `Ok` for a clean close. Messages published concurrently from other
    /// clones may be refused.
    pub async fn close(&self) -> Result<(), ClientError> {
        // If the task is already gone, the ending says why.
        let _gone = self.commands.send(Command::Close).await;
        self.ending.wait().await
    }

    /// Waits until the connection has ended, however, and says how: `Ok` only after our own
    /// close. Any number of tasks may await it, any number of times.
    pub async fn done(&self) -> Result<(), ClientError> {
        self.ending.wait().await
    }

    /// The error that ended the connection, if it has ended with one; does not wait.
    pub fn error(&self) -> Option<ClientError> {
        self.ending.error()
    }

    /// Why the connection no longer takes messages. The task refuses commands first and
    /// records its ending right after (within the close deadline), so this waits for it.
    async fn ended(&self) -> ClientError {
        self.ending
            .wait()
            .await
            .err()
            .unwrap_or(ClientError::Closed)
    }
}
