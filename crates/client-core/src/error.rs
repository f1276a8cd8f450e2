//! Every way a client can fail or end.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use wspubsub_protocol::CloseCode;

/// Why a client could not connect, or why its connection ended. Cheap to clone, so that every
/// task awaiting a client's end can have it.
///
/// Errors of the network keep their [`io::Error`] (see [`ClientError::io_kind`]); no type of
/// the WebSocket library shows in this API, so that it can change without breaking users.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL cannot be used: unparsable, or a scheme this client does not speak.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// An option cannot be used (a name or token that is not a valid header value, a zero
    /// deadline or bound).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// TLS cannot be set up for a `wss://` URL (no usable root or CA certificate).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// TCP connect, the TLS handshake or the WebSocket handshake failed.
    #[error("cannot connect: {0}")]
    Connect(#[source] Arc<io::Error>),
    /// Connecting took longer than the connect timeout.
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// The server refused the handshake with this HTTP status and body.
    #[error("server refused the connection with HTTP {status}: {body}")]
    HandshakeRejected {
        /// The HTTP status code.
        status: u16,
        /// The server's explanation (its one-line body).
        body: String,
    },
    /// The server closed the connection with this close code and reason.
    #[error("server closed the connection with {code}{}", if reason.is_empty() { String::new() } else { format!(" ({reason})") })]
    ServerClosed {
        /// The WebSocket close code (see [`ClientError::close_code`]).
        code: u16,
        /// The server's reason.
        reason: String,
    },
    /// The connection broke without a closing handshake (reset, end of stream, ...).
    #[error("connection lost: {0}")]
    ConnectionLost(#[source] Arc<io::Error>),
    /// Nothing was heard from the server within the pong deadline.
    #[error("no pong from the server within {0:?}")]
    PongTimeout(Duration),
    /// The server took none of our writes within this time (the write timeout).
    #[error("the server took no data for {0:?}")]
    WriteTimeout(Duration),
    /// The subscriber's consumer fell behind: its receive buffer held this much unread when
    /// one more message came. The subscriber closed the connection with `4000` (slow
    /// subscriber), as the server would have.
    #[error("fell behind: {messages} messages ({bytes} bytes) received and not yet read")]
    Lagged {
        /// Messages waiting in the receive buffer.
        messages: usize,
        /// Their bytes.
        bytes: usize,
    },
    /// The server does not speak stream mode (`wspubsub.v2`): an older server, or another
    /// implementation of protocol v1. Raw clients still work with it.
    #[error("the server does not speak stream mode (wspubsub.v2)")]
    NoStreamMode,
    /// The server sent something stream mode does not allow (a frame that is not an
    /// envelope).
    #[error("protocol violation by the server: {0}")]
    Protocol(String),
    /// A stream-mode publisher closing, or ending, with messages the server never
    /// acknowledged: they may or may not be stored.
    #[error("{messages} messages were not acknowledged by the server")]
    Unacknowledged {
        /// Messages written and not acknowledged.
        messages: usize,
    },
    /// `publish_confirmed` on a publisher that is not in stream mode: only stream mode has
    /// acknowledgements.
    #[error("acknowledgements need a stream-mode publisher (Publisher::connect_stream)")]
    NoAcks,
    /// The client has already ended.
    #[error("the client is closed")]
    Closed,
}

impl ClientError {
    /// The wspubsub meaning of the server's close code, when the server closed the connection
    /// with one it defines (`SlowSubscriber`, `GoingAway`, ...).
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            ClientError::ServerClosed { code, .. } => CloseCode::from_code(*code),
            _ => None,
        }
    }

    /// The kind of I/O error behind a failed connect or a lost connection
    /// (`ConnectionRefused`, `ConnectionReset`, `UnexpectedEof`, ...).
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            ClientError::Connect(error) | ClientError::ConnectionLost(error) => Some(error.kind()),
            _ => None,
        }
    }

    /// Whether connecting again may work: true for a network failure, a timeout, a server
    /// going away or cutting us as slow or silent, a busy server (HTTP 429 or 5xx) and a
    /// subscriber that fell behind; false for what a retry cannot fix (a bad URL, option or
    /// TLS setup, a refused token, a message too big, a client already closed).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::InvalidUrl(_)
            | ClientError::InvalidOption(_)
            | ClientError::Tls(_)
            | ClientError::NoStreamMode
            | ClientError::Protocol(_)
            | ClientError::Unacknowledged { .. }
            | ClientError::NoAcks
            | ClientError::Closed => false,
            ClientError::Connect(_)
            | ClientError::ConnectTimeout(_)
            | ClientError::ConnectionLost(_)
            | ClientError::PongTimeout(_)
            | ClientError::WriteTimeout(_)
            | ClientError::Lagged { .. } => true,
            ClientError::HandshakeRejected { status, .. } => *status == 429 || *status >= 500,
            ClientError::ServerClosed { code, .. } => matches!(
                CloseCode::from_code(*code),
                Some(
                    CloseCode::GoingAway
                        | CloseCode::SlowSubscriber
                        | CloseCode::PongTimeout
                        | CloseCode::StreamLost
                        | CloseCode::InternalError
                )
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_maps_known_codes_only() {
        let slow = ClientError::ServerClosed {
            code: 4000,
            reason: "slow".into(),
        };
        assert_eq!(slow.close_code(), Some(CloseCode::SlowSubscriber));
        assert_eq!(
            slow.to_string(),
            "server closed the connection with 4000 (slow)"
        );
        let odd = ClientError::ServerClosed {
            code: 4999,
            reason: String::new(),
        };
        assert_eq!(odd.close_code(), None);
        assert_eq!(ClientError::Closed.close_code(), None);
    }

    #[test]
    fn io_errors_keep_their_kind() {
        let lost = ClientError::ConnectionLost(Arc::new(io::ErrorKind::ConnectionReset.into()));
        assert_eq!(lost.io_kind(), Some(io::ErrorKind::ConnectionReset));
        assert!(std::error::Error::source(&lost).is_some());
        assert_eq!(ClientError::Closed.io_kind(), None);
    }

    #[test]
    fn retryable_is_what_a_new_connection_can_fix() {
        let closed = |code| ClientError::ServerClosed {
            code,
            reason: String::new(),
        };
        let refused = |status| ClientError::HandshakeRejected {
            status,
            body: String::new(),
        };
        for retryable in [
            closed(1001),
            closed(4000),
            closed(4001),
            closed(4002),
            refused(503),
            refused(429),
            ClientError::PongTimeout(Duration::from_secs(1)),
            ClientError::Lagged {
                messages: 1,
                bytes: 1,
            },
        ] {
            assert!(retryable.is_retryable(), "{retryable:?}");
        }
        for fatal in [
            closed(1008),
            closed(1009),
            refused(401),
            refused(403),
            ClientError::InvalidUrl(String::new()),
            ClientError::Closed,
        ] {
            assert!(!fatal.is_retryable(), "{fatal:?}");
        }
    }
}
