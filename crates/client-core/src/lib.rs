//! The engine of the wspubsub clients: `wspubsub-pubclient` and `wspubsub-subclient` are its
//! public faces, and re-export what users need from here.
//!
//! - [`Publisher`]: a cloneable handle to a connection task that owns the socket; `publish`
//!   queues through a small bounded queue, `flush` waits until the queue is written; also a
//!   `Sink` of `Bytes`. In stream mode ([`Publisher::connect_stream`]) the server's acks
//!   confirm messages, and a [`Reconnect`] policy re-sends what a break left unacknowledged.
//! - [`Subscriber`]: a `Stream` of the topic's messages, read by a connection task into a
//!   receive buffer bounded in messages and bytes; a consumer that falls behind it ends the
//!   subscriber with [`ClientError::Lagged`].
//! - [`StreamSubscriber`]: the same in stream mode, a `Stream` of [`Event`]s (messages with
//!   their positions, gaps, reconnects), starting where [`SubscriberOptions`] says and, with a
//!   [`Reconnect`] policy, resuming after every break.
//! - [`ClientOptions`]: client name, extra request headers, token, CA certificates for
//!   `wss://`, connect timeout, pong deadline, write timeout (the bound on every write), close deadline,
//!   largest incoming message, receive buffer.
//! - [`ClientError`]: every way a client can fail or end; cloneable, with
//!   [`ClientError::close_code`], [`ClientError::io_kind`] and [`ClientError::is_retryable`].
//!
//! Inside, one module per job: `socket` connects (role header, timeout, a refused handshake
//! turned into its HTTP status and body, `wss://` through rustls in `tls`) and does what both
//! connection tasks do with the socket; `outcome` tells every awaiter how a connection ended;
//! the `publisher` and `subscriber` modules hold each client's handle and task (one per
//! mode); `reconnect` holds the backoff both stream-mode clients share. Every task keeps
//! the server honest with `wspubsub-liveness`, the timers the server uses too.

mod error;
mod options;
mod outcome;
mod publisher;
mod reconnect;
mod socket;
mod subscriber;
mod tls;

pub use error::ClientError;
pub use options::{
    ClientOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_INCOMING_MESSAGE,
    DEFAULT_RECEIVE_BUFFER_BYTES, DEFAULT_RECEIVE_BUFFER_MESSAGES, DEFAULT_WRITE_TIMEOUT,
};
pub use publisher::Publisher;
pub use publisher::stream::{
    DEFAULT_MAX_UNACKED_BYTES, DEFAULT_MAX_UNACKED_MESSAGES, PublisherOptions,
};
pub use reconnect::{DEFAULT_RECONNECT_INITIAL, DEFAULT_RECONNECT_MAX, Reconnect};
pub use subscriber::Subscriber;
pub use subscriber::stream::{Event, Message, StreamSubscriber, SubscriberOptions};
pub use wspubsub_protocol::StartPosition;
