//! Publisher client for wspubsub: connect to a topic (a URL path), publish binary messages,
//! close.
//!
//! A [`Publisher`] is a cheap, cloneable handle to one connection task that owns the socket
//! (as in async-nats). [`Publisher::publish`] queues a message for that task through a small
//! bounded queue, so it waits when the socket is backed up instead of buffering without bound;
//! the task writes bursts of messages and flushes once per burst. The task answers the
//! server's pings, pings the server itself, and ends with a typed [`ClientError`] when the
//! server closes, the connection breaks, or the server goes silent.
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
use wspubsub_client_core::{Ending, connect, ending};
use wspubsub_protocol::Role;

use crate::task::Command;

/// Messages queued for the connection task before `publish` waits.
const COMMAND_QUEUE: usize = 64;

/// A connection that publishes to one topic. Clones share the connection; it closes (1000)
/// when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Publisher {
    commands: mpsc::Sender<Command>,
    ending: Ending,
}

impl Publisher {
    /// Connects to `url` (`ws://host:port/topic`, or `wss://` for TLS) as a publisher.
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Publisher, ClientError> {
        let socket = connect(url, Role::Publisher, &options).await?;
        let (commands, queue) = mpsc::channel(COMMAND_QUEUE);
        let (sender, ending) = ending();
        tokio::spawn(async move { sender.set(task::run(socket, queue, &options).await) });
        Ok(Publisher { commands, ending })
    }

    /// Publishes one binary message. Waits while the connection is backed up; fails with the
    /// reason the connection ended if it has. Messages go out in the order they were published.
    pub async fn publish(&self, message: impl Into<Bytes>) -> Result<(), ClientError> {
        match self.commands.send(Command::Publish(message.into())).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.ended().await),
        }
    }

    /// Closes the connection (1000) after every message published before, waits for the end,
    /// and says how it ended: `Ok` for a clean close.
    pub async fn close(&self) -> Result<(), ClientError> {
        // If the task is already gone, the ending says why.
        let _gone = self.commands.send(Command::Close).await;
        self.ending.wait().await
    }

    /// Waits until the connection has ended, however, and says how: `Ok` only after our own
    /// close.
    pub async fn done(&self) -> Result<(), ClientError> {
        self.ending.wait().await
    }

    /// The error that ended the connection, if it has ended with one.
    pub fn error(&self) -> Option<ClientError> {
        self.ending.error()
    }

    /// Why the connection no longer takes messages. The task stops taking commands just
    /// before it records its ending, so this waits for that record.
    async fn ended(&self) -> ClientError {
        self.ending
            .wait()
            .await
            .err()
            .unwrap_or(ClientError::Closed)
    }
}
