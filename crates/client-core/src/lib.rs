//! What the wspubsub clients (`wspubsub-pubclient`, `wspubsub-subclient`) share, so that it
//! has one home:
//!
//! - [`ClientOptions`]: client name, extra request headers, bearer token, connect timeout, pong deadline,
//!   close deadline, largest incoming message; a builder with sensible defaults.
//! - [`ClientError`]: every way a client can fail or end, cloneable so that every awaiter of a
//!   client's end gets it.
//! - [`connect`]: the handshake with the role and name headers, bounded by the connect
//!   timeout; a refused handshake becomes its HTTP status and body.
//! - [`Connection`]: the socket as the client's one connection task drives it, the same way
//!   for both clients: it writes what the handle queued as [`Command`]s (one flush per
//!   burst), reads what the server sends, answers pings and pings the server itself at
//!   0.7x the pong deadline, ends with [`ClientError::PongTimeout`] when nothing at all is
//!   heard within the deadline, and closes (1000, within the close deadline).
//! - [`Ending`]: the "done / error" pair of the Go clients, the Rust way: await
//!   [`Ending::wait`] for how the connection ended, or peek with [`Ending::error`].
//!
//! A client is a handle plus one task (as in async-nats):
//!
//! ```no_run
//! use tokio::sync::mpsc;
//! use wspubsub_client_core::{ClientOptions, Command, Event, connect, ending};
//! use wspubsub_protocol::Role;
//!
//! # async fn example() -> Result<(), wspubsub_client_core::ClientError> {
//! let mut connection = connect("ws://127.0.0.1:8080/news", Role::Publisher, &ClientOptions::default()).await?;
//! let (handle, mut commands) = mpsc::channel(64);
//! let (outcome, ending) = ending();
//! tokio::spawn(async move {
//!     let ended = loop {
//!         match connection.next(&mut commands, true).await {
//!             Event::Message(_) => {}
//!             Event::Close => break connection.close().await,
//!             Event::End(error) => break connection.end(error).await,
//!         }
//!     };
//!     outcome.set(ended);
//! });
//! handle.send(Command::Publish("hello".into())).await.ok();
//! handle.send(Command::Close).await.ok();
//! ending.wait().await
//! # }
//! ```

mod connect;
mod connection;
mod ending;
mod error;
mod options;

pub use connect::connect;
pub use connection::{Command, Connection, Event};
pub use ending::{Ending, EndingSender, ending};
pub use error::ClientError;
pub use options::{ClientOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_INCOMING_MESSAGE};
