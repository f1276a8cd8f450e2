//! Subscriber client for wspubsub: connect to a topic (a URL path) and receive every message
//! published to it as a [`futures_core::Stream`] of [`bytes::Bytes`].
//!
//! - [`Subscriber`]: the receiving end of one connection task. It is a `Stream` of every
//!   binary message in order; the stream ends after the connection ended and every message
//!   received before was yielded, and then [`Subscriber::done`] and [`Subscriber::error`] say
//!   why, including the server's close code and reason ([`ClientError::close_code`]).
//! - The connection task owns the socket. It forwards binary messages into a bounded queue of
//!   [`MESSAGE_QUEUE`] messages that the stream reads; when the stream is not read, the task
//!   stops reading the socket, so memory stays bounded (and a server cuts a subscriber that
//!   stopped reading, with close code 4000). It answers the server's pings, pings the server
//!   itself, and ends with [`ClientError::PongTimeout`] when the server goes silent; its
//!   socket work is [`wspubsub_client_core::Connection`], shared with the publisher.
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
//! subscriber.done().await // why the stream ended
//! # }
//! ```

mod task;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use tokio::sync::mpsc;
pub use wspubsub_client_core::{ClientError, ClientOptions};
use wspubsub_client_core::{Command, Ending, connect, ending};
use wspubsub_protocol::Role;

/// Messages received but not yet read from the stream before the task stops reading the
/// socket.
pub const MESSAGE_QUEUE: usize = 1024;

/// A connection that receives one topic's messages, as a [`Stream`].
///
/// Dropping it closes the connection (1000) in the background.
#[derive(Debug)]
pub struct Subscriber {
    /// Messages from the connection task, in order; closed after the ending is recorded.
    messages: mpsc::Receiver<Bytes>,
    /// Asks the task to close; dropping it does too.
    commands: mpsc::Sender<Command>,
    /// How the connection ended, once it has.
    ending: Ending,
}

impl Subscriber {
    /// Connects to `url` (`ws://host:port/topic`) as a subscriber (the `pubsub: subscriber`
    /// header), within the connect timeout. Once this returns, the server has registered the
    /// subscriber: every message published to the topic after that reaches it.
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Subscriber, ClientError> {
        let connection = connect(url, Role::Subscriber, &options).await?;
        let (sender, messages) = mpsc::channel(MESSAGE_QUEUE);
        let (commands, mut queue) = mpsc::channel(1);
        let (outcome, ending) = ending();
        tokio::spawn(async move {
            let ended = task::run(connection, &mut queue, &sender).await;
            outcome.set(ended);
            // The stream ends only now, so that `error()` already knows why when it does.
            drop(sender);
        });
        Ok(Subscriber {
            messages,
            commands,
            ending,
        })
    }

    /// Closes the connection (1000), waits for the end (within the close deadline), and says
    /// how it ended: `Ok` for a clean close. Messages already received can still be read from
    /// the stream, which then ends.
    pub async fn close(&self) -> Result<(), ClientError> {
        // If the task is already gone, the ending says why.
        let _gone = self.commands.send(Command::Close).await;
        self.ending.wait().await
    }

    /// Waits until the connection has ended, however, and says how: `Ok` only after our own
    /// close; a server close gives [`ClientError::ServerClosed`] with its code and reason.
    /// Any number of tasks may await it, any number of times.
    pub async fn done(&self) -> Result<(), ClientError> {
        self.ending.wait().await
    }

    /// The error that ended the connection, if it has ended with one; does not wait.
    pub fn error(&self) -> Option<ClientError> {
        self.ending.error()
    }
}

impl Stream for Subscriber {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.messages.poll_recv(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.messages.len(), None)
    }
}
