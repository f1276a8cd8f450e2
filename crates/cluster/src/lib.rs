//! Foundations of cluster mode: several wspubsub nodes sharing topics through NATS
//! JetStream.
//!
//! - [`subject`]: the reversible mapping between a topic path and its NATS subject, one
//!   path segment per subject token.
//! - [`broker`]: a typed layer over `async-nats`: connect ([`ConnectConfig`]), keep the
//!   topic stream ([`StreamSpec`]), publish with the stream's ack, and read one topic in
//!   stream order from a [`Start`] ([`Subscription`]).
//! - [`position`]: the `seq` every node gives a stream message ([`Incarnation`]), never
//!   reused when a memory stream is recreated.
//!
//! Nothing here touches the server's message path yet; the server wires it in behind
//! `--nats-url`.

pub mod broker;
pub mod position;
pub mod subject;

pub use broker::{
    Broker, BrokerError, ConnectConfig, Credentials, Delivery, PendingAck, STREAM, Start, Storage,
    StreamSpec, StreamState, Subscription,
};
pub use position::{Incarnation, Located};
pub use subject::{MAX_SUBJECT_BYTES, PREFIX, SubjectError, filters_for, subject_for, topic_for};
