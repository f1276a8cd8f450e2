//! Subscriber client for wspubsub: connect to a topic (a URL path) and receive every message
//! published to it as a `futures::Stream` of `Result<Bytes, ClientError>`.
//!
//! A [`Subscriber`] is the receiving end of one connection task that owns the socket. The task
//! reads the socket all the time, so that the server's pings are answered even while the
//! stream is not read, into a receive buffer bounded in messages and bytes
//! ([`ClientOptions::receive_buffer`]). A consumer that falls so far behind that one more
//! message would overflow it ends the subscriber: the task closes the connection with `4000`
//! (slow subscriber, the code the server uses for the same thing) and the stream ends with
//! [`ClientError::Lagged`]. So memory stays bounded, and a subscriber that merely reads slowly
//! is never mistaken for a dead one (`4001`).
//!
//! The stream yields `Ok(message)` for each message, in order; when the connection ends with
//! an error (the server's close code and reason, a lost connection, a lag), one last
//! `Err(error)` after every message received before; then `None` for good (it is a
//! `FusedStream`). A `?` in the read loop therefore cannot miss how it ended;
//! [`Subscriber::done`] says the same for code that does not read the stream to its end.
//!
//! [`StreamSubscriber`] speaks stream mode (`wspubsub.v2`): it yields [`Event`]s, every
//! message with its position (`seq`) and the time the server took it, starts where
//! [`SubscriberOptions`] says ([`StartPosition`]: latest, earliest, a position, a time), and
//! with a [`Reconnect`] policy connects again after a break and resumes right after the last
//! message it yielded: nothing twice, and a [`Event::Gap`] for whatever the server's history
//! no longer holds, never a silent skip.
//!
//! Examples (`cargo run -p wspubsub-subclient --example NAME`): `subscriber` (print until
//! Ctrl-C), `subscriber_tls` (`wss://` with a CA file), `subscriber_token` (a server with
//! token auth), `subscriber_backpressure` (a slow consumer and a bounded receive buffer),
//! `subscriber_resume` (stream mode from the oldest message, through reconnects).
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use wspubsub_subclient::{ClientOptions, Subscriber};
//!
//! # async fn example() -> Result<(), wspubsub_subclient::ClientError> {
//! let mut subscriber = Subscriber::connect("ws://127.0.0.1:8080/news", ClientOptions::default()).await?;
//! while let Some(message) = subscriber.next().await {
//!     let message = message?; // the error that ended the connection, if any
//!     println!("{} bytes", message.len());
//! }
//! # Ok(())
//! # }
//! ```

pub use wspubsub_client_core::{
    ClientError, ClientOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_INCOMING_MESSAGE,
    DEFAULT_RECEIVE_BUFFER_BYTES, DEFAULT_RECEIVE_BUFFER_MESSAGES, DEFAULT_RECONNECT_INITIAL,
    DEFAULT_RECONNECT_MAX, DEFAULT_WRITE_TIMEOUT, Event, Message, Reconnect, StartPosition,
    StreamSubscriber, Subscriber, SubscriberOptions,
};
