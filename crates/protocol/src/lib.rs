//! The wspubsub wire protocol (v1): everything a server and its clients must agree on.
//!
//! The protocol is compatible with the Go project `MicahParks/websocket-pubsub`:
//!
//! - Every URL path is a topic ([`topic_of`]): the path as received, percent-escapes kept,
//!   without the query string.
//! - A client says what it is with the [`ROLE_HEADER`] request header, or the [`ROLE_QUERY`]
//!   query parameter for browsers, which cannot set WebSocket headers ([`Role`]).
//! - A client may name itself ([`CLIENT_NAME_HEADER`] or [`CLIENT_NAME_QUERY`]); the server
//!   gives every client an id that starts with that name.
//! - Publishers send binary frames; the server forwards each to every subscriber of the topic.
//! - A subscriber may start from a position in the topic's history ([`Start`]).
//! - A client may opt into stream mode (`wspubsub.v2`): positioned messages and JSON control
//!   messages ([`STREAM_SUBPROTOCOL`], [`Envelope`], [`Control`]).
//! - Connections end with one of the [`CloseCode`]s.
//! - Both sides keep each other honest with pings every [`ping_interval`] and a pong deadline
//!   ([`DEFAULT_PONG_DEADLINE`]); the timers that enforce it live in `wspubsub-liveness`.
//!
//! This crate does no I/O; it is the one home of these names, numbers and rules, so that the
//! server, the clients and the README cannot drift apart.

mod close;
mod defaults;
mod role;
mod start;
mod stream;

pub use close::CloseCode;
pub use defaults::{
    DEFAULT_CLOSE_DEADLINE, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_PONG_DEADLINE, PING_INTERVAL_RATIO,
    ping_interval,
};
pub use role::{InvalidRole, Role};
pub use start::{
    BadStart, FROM_QUERY, GAP_QUERY, MAX_SEQ, SINCE_QUERY, Start, StartPosition, unix_micros,
};
pub use stream::{
    BadEnvelope, Control, ENVELOPE_HEADER_LEN, ENVELOPE_MESSAGE, Envelope, STREAM_SUBPROTOCOL,
    offers_stream,
};

/// Request header that carries the client's [`Role`] (`publisher` or `subscriber`).
pub const ROLE_HEADER: &str = "pubsub";

/// Query parameter that carries the client's [`Role`] when headers cannot be set (browsers).
/// The header wins when both are given.
pub const ROLE_QUERY: &str = "pubsub";

/// Optional request header naming the client's program; it prefixes the client id.
pub const CLIENT_NAME_HEADER: &str = "pubsub-client-name";

/// Query parameter equivalent of [`CLIENT_NAME_HEADER`].
pub const CLIENT_NAME_QUERY: &str = "name";

/// The topic of a request target: its path, percent-escapes kept, without the query string.
///
/// ```
/// assert_eq!(wspubsub_protocol::topic_of("/chat/room%201?pubsub=subscriber"), "/chat/room%201");
/// assert_eq!(wspubsub_protocol::topic_of("/"), "/");
/// ```
pub fn topic_of(path_and_query: &str) -> &str {
    path_and_query
        .split_once('?')
        .map_or(path_and_query, |(path, _)| path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_keeps_escapes_and_drops_query() {
        assert_eq!(topic_of("/a%2Fb/c?x=1&y=2"), "/a%2Fb/c");
        assert_eq!(topic_of("/plain"), "/plain");
        assert_eq!(topic_of("/empty-query?"), "/empty-query");
    }
}
