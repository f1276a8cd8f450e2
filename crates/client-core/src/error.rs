//! Every way a client can fail or end.

use std::sync::Arc;
use std::time::Duration;

use tokio_tungstenite::tungstenite;
use wspubsub_protocol::CloseCode;

/// Why a client could not connect, or why its connection ended.
///
/// Cheap to clone (sources are shared behind an [`Arc`]), so that every task awaiting a
/// client's end gets the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL cannot be used: unparsable, or a scheme this client does not speak (`ws://`
    /// only for now; `wss://` is refused with a clear message).
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// An option cannot go into the handshake request (a client name that is not a valid
    /// header value).
    #[error("invalid client option: {0}")]
    InvalidOption(String),
    /// TCP connect or the WebSocket handshake failed.
    #[error("cannot connect: {0}")]
    Connect(#[source] Arc<tungstenite::Error>),
    /// TCP connect plus the handshake took longer than the connect timeout.
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// The server answered the upgrade request with this HTTP status instead of 101.
    #[error("server refused the connection with HTTP {status}: {body}")]
    HandshakeRejected {
        /// The HTTP status code.
        status: u16,
        /// The server's explanation: its text body, trimmed and truncated to 1 KiB.
        body: String,
    },
    /// The server closed the connection with this close code and reason.
    #[error("server closed the connection with {code}{}", reason_suffix(reason))]
    ServerClosed {
        /// The WebSocket close code; [`ClientError::close_code`] says what it means.
        code: u16,
        /// The server's reason.
        reason: String,
    },
    /// The connection broke without a closing handshake (reset, EOF, write failure).
    #[error("connection lost: {0}")]
    ConnectionLost(#[source] Arc<tungstenite::Error>),
    /// Nothing at all was heard from the server within the pong deadline.
    #[error("nothing heard from the server within the pong deadline of {0:?}")]
    PongTimeout(Duration),
    /// The client had already ended when this operation was asked of it.
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

    /// A lost connection, from the socket error that says how.
    pub(crate) fn lost(error: tungstenite::Error) -> ClientError {
        ClientError::ConnectionLost(Arc::new(error))
    }
}

/// ` (reason)`, or nothing for an empty reason.
fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
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
        assert_eq!(odd.to_string(), "server closed the connection with 4999");
        assert_eq!(ClientError::Closed.close_code(), None);
        assert_eq!(
            ClientError::PongTimeout(Duration::from_secs(1)).close_code(),
            None
        );
    }

    #[test]
    fn errors_are_shared_not_copied() {
        let lost = ClientError::lost(tungstenite::Error::ConnectionClosed);
        let copy = lost.clone();
        match (lost, copy) {
            (ClientError::ConnectionLost(a), ClientError::ConnectionLost(b)) => {
                assert!(Arc::ptr_eq(&a, &b));
            }
            other => panic!("expected two ConnectionLost, got {other:?}"),
        }
    }
}
