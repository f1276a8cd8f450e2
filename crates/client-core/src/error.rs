//! Every way a client can fail or end.

use std::sync::Arc;
use std::time::Duration;

use wspubsub_protocol::CloseCode;

/// Why a client could not connect, or why its connection ended. Cheap to clone, so that every
/// task awaiting a client's end can have it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL cannot be used: unparsable, or a scheme this client does not speak.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// An option cannot be sent (a name or token that is not a valid header value).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// TLS cannot be set up for a `wss://` URL (no usable root or CA certificate).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// TCP connect, the TLS handshake or the WebSocket handshake failed.
    #[error("cannot connect: {0}")]
    Connect(#[source] Arc<tokio_tungstenite::tungstenite::Error>),
    /// Connecting took longer than the connect timeout.
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(std::time::Duration),
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
    /// The connection broke without a closing handshake.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// Nothing was heard from the server within the pong deadline.
    #[error("no pong from the server within {0:?}")]
    PongTimeout(Duration),
    /// The server took none of our writes within this time (the pong deadline).
    #[error("the server took no data for {0:?}")]
    WriteTimeout(Duration),
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
}
