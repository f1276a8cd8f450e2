//! Publisher client for wspubsub: connect to a topic (a URL path), publish binary messages,
//! close.
//!
//! A [`Publisher`] is a cheap, cloneable handle to one connection task that owns the socket
//! (as in async-nats). [`Publisher::publish`] queues a message for that task through a small
//! bounded queue, so it waits when the socket is backed up instead of buffering without bound;
//! its `Ok` means "queued, in order", and [`Publisher::flush`] waits until everything queued
//! is written. The task writes bursts of messages and flushes once per burst; every write (a
//! burst, a flush, a ping) is bounded by the write timeout. The task answers the server's
//! pings, pings the server itself, and ends with a typed [`ClientError`] when the server
//! closes, the connection breaks, the server goes silent or stops taking data.
//!
//! A `Publisher` is also a `futures::Sink<Bytes>`, so a stream of messages can be published
//! with `stream.forward(publisher)`, which closes the connection at the end of the stream.
//!
//! [`Publisher::connect_stream`] publishes in stream mode (`wspubsub.v2`), where the server
//! acknowledges what it stored: [`Publisher::publish_confirmed`] returns once the message is
//! stored, [`Publisher::close`] once every message is, and with a [`Reconnect`] policy
//! ([`PublisherOptions::reconnect`]) what a broken connection left unacknowledged is sent
//! again on the next (at-least-once).
//!
//! Examples (`cargo run -p wspubsub-pubclient --example NAME`): `publisher` (publish and
//! close), `publisher_tls` (`wss://` with a CA file), `publisher_token` (a server with token
//! auth), `publisher_backpressure` (`flush`, and a stream forwarded at the socket's pace),
//! `publisher_confirmed` (stream mode: acknowledged messages, a close that waits for them).
//!
//! ```no_run
//! use wspubsub_pubclient::{ClientOptions, Publisher};
//!
//! # async fn example() -> Result<(), wspubsub_pubclient::ClientError> {
//! let publisher = Publisher::connect("ws://127.0.0.1:8080/news", ClientOptions::default()).await?;
//! publisher.publish(&b"hello"[..]).await?; // queued
//! publisher.flush().await?;                 // written
//! publisher.close().await?;                 // everything published goes out first
//! # Ok(())
//! # }
//! ```

pub use wspubsub_client_core::{
    ClientError, ClientOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_INCOMING_MESSAGE,
    DEFAULT_MAX_UNACKED_BYTES, DEFAULT_MAX_UNACKED_MESSAGES, DEFAULT_RECONNECT_INITIAL,
    DEFAULT_RECONNECT_MAX, DEFAULT_WRITE_TIMEOUT, Publisher, PublisherOptions, Reconnect,
};
