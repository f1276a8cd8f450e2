//! Why a connection ended, and what that means on the wire.

use std::fmt;

use tokio_tungstenite::tungstenite::{self, error::CapacityError, protocol::CloseFrame};
use wspubsub_fanout::Lagged;
use wspubsub_protocol::CloseCode;

/// Why a connection task stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The peer sent a close frame (echoed with the same code).
    PeerClosed(Option<(u16, String)>),
    /// The server is shutting down.
    Shutdown,
    /// A publisher sent a text frame.
    TextFromPublisher,
    /// A message exceeded the maximum message size.
    TooBig,
    /// The peer broke the WebSocket protocol.
    ProtocolError(String),
    /// A subscriber fell too far behind or its socket stopped taking writes.
    SlowSubscriber(SlowReason),
    /// Nothing was heard from the peer within the pong deadline.
    PongTimeout,
    /// The connection broke (reset, EOF without close, write failure): no close possible.
    ConnectionLost(String),
    /// The client's token expired.
    TokenExpired,
    /// Something in the server went wrong (a topic's actor failed under a live publisher).
    Internal(&'static str),
    /// Cluster mode: the stream lost messages of the topic this subscriber had not received.
    StreamLost,
}

/// Which of the two slow-subscriber bounds was crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlowReason {
    /// Its pending queue overflowed by this many messages.
    QueueOverflow {
        /// Messages the subscriber would have missed.
        missed: u64,
    },
    /// Its socket took no bytes for the write timeout.
    WriteTimeout,
}

impl From<Lagged> for Ending {
    /// A subscriber that fell out of its topic's backlog is slow.
    fn from(lagged: Lagged) -> Self {
        Ending::SlowSubscriber(SlowReason::QueueOverflow {
            missed: lagged.missed,
        })
    }
}

impl Ending {
    /// The close code the server sends for this ending; `None` when no close frame of ours
    /// goes out (the peer closed first, or the connection is gone).
    pub(crate) fn close_code(&self) -> Option<CloseCode> {
        match self {
            Ending::PeerClosed(_) | Ending::ConnectionLost(_) => None,
            Ending::Shutdown => Some(CloseCode::GoingAway),
            Ending::TextFromPublisher => Some(CloseCode::UnsupportedData),
            Ending::TooBig => Some(CloseCode::MessageTooBig),
            Ending::ProtocolError(_) => Some(CloseCode::ProtocolError),
            Ending::SlowSubscriber(_) => Some(CloseCode::SlowSubscriber),
            Ending::PongTimeout => Some(CloseCode::PongTimeout),
            Ending::Internal(_) => Some(CloseCode::InternalError),
            Ending::TokenExpired => Some(CloseCode::PolicyViolation),
            Ending::StreamLost => Some(CloseCode::StreamLost),
        }
    }

    /// A short label for metrics.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Ending::PeerClosed(_) => "peer_closed",
            Ending::Shutdown => "shutdown",
            Ending::TextFromPublisher => "text_frame",
            Ending::TooBig => "too_big",
            Ending::ProtocolError(_) => "protocol_error",
            Ending::SlowSubscriber(_) => "slow_subscriber",
            Ending::PongTimeout => "pong_timeout",
            Ending::ConnectionLost(_) => "connection_lost",
            Ending::Internal(_) => "internal_error",
            Ending::TokenExpired => "token_expired",
            Ending::StreamLost => "stream_lost",
        }
    }

    /// Whether the peer started the closing handshake.
    pub(crate) fn peer_closed(&self) -> bool {
        matches!(self, Ending::PeerClosed(_))
    }

    /// The ending for a peer's close frame.
    pub(crate) fn from_close_frame(frame: Option<CloseFrame>) -> Self {
        Ending::PeerClosed(frame.map(|frame| (u16::from(frame.code), frame.reason.to_string())))
    }

    /// The ending for an error reading from the peer.
    pub(crate) fn from_read_error(error: tungstenite::Error) -> Self {
        use tungstenite::Error;
        match error {
            Error::Capacity(CapacityError::MessageTooLong { .. }) => Ending::TooBig,
            Error::Capacity(other) => Ending::ProtocolError(other.to_string()),
            Error::Protocol(problem) => Ending::ProtocolError(problem.to_string()),
            Error::Utf8(_) => Ending::ProtocolError("invalid UTF-8 in a text frame".into()),
            other => Ending::ConnectionLost(other.to_string()),
        }
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::PeerClosed(Some((code, reason))) if reason.is_empty() => {
                write!(f, "closed by peer with {code}")
            }
            Ending::PeerClosed(Some((code, reason))) => {
                write!(f, "closed by peer with {code} ({reason})")
            }
            Ending::PeerClosed(None) => f.write_str("closed by peer without a code"),
            Ending::ConnectionLost(why) => write!(f, "connection lost: {why}"),
            Ending::ProtocolError(why) => {
                write!(f, "closed with {}: {why}", CloseCode::ProtocolError.code())
            }
            Ending::SlowSubscriber(SlowReason::QueueOverflow { missed }) => write!(
                f,
                "closed with {}: pending queue overflowed ({missed} messages behind the bound)",
                CloseCode::SlowSubscriber.code()
            ),
            Ending::SlowSubscriber(SlowReason::WriteTimeout) => write!(
                f,
                "closed with {}: the socket took no bytes for the write timeout",
                CloseCode::SlowSubscriber.code()
            ),
            Ending::Internal(why) => {
                write!(f, "closed with {}: {why}", CloseCode::InternalError.code())
            }
            Ending::TokenExpired => write!(
                f,
                "closed with {}: token expired",
                CloseCode::PolicyViolation.code()
            ),
            Ending::Shutdown
            | Ending::TextFromPublisher
            | Ending::TooBig
            | Ending::PongTimeout
            | Ending::StreamLost => match self.close_code() {
                Some(code) => write!(f, "closed with {code}"),
                None => Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_protocol_table() {
        assert_eq!(
            Ending::Shutdown.close_code().map(CloseCode::code),
            Some(1001)
        );
        assert_eq!(
            Ending::TextFromPublisher.close_code().map(CloseCode::code),
            Some(1003)
        );
        assert_eq!(Ending::TooBig.close_code().map(CloseCode::code), Some(1009));
        assert_eq!(
            Ending::SlowSubscriber(SlowReason::WriteTimeout)
                .close_code()
                .map(CloseCode::code),
            Some(4000)
        );
        assert_eq!(
            Ending::PongTimeout.close_code().map(CloseCode::code),
            Some(4001)
        );
        assert_eq!(Ending::PeerClosed(None).close_code(), None);
    }

    #[test]
    fn oversize_read_maps_to_too_big() {
        let error = tungstenite::Error::Capacity(CapacityError::MessageTooLong {
            size: 10,
            max_size: 5,
        });
        assert_eq!(Ending::from_read_error(error), Ending::TooBig);
        let reset = tungstenite::Error::ConnectionClosed;
        assert!(matches!(
            Ending::from_read_error(reset),
            Ending::ConnectionLost(_)
        ));
    }

    #[test]
    fn display_names_the_code() {
        assert_eq!(
            Ending::PeerClosed(Some((1000, String::new()))).to_string(),
            "closed by peer with 1000"
        );
        assert!(Ending::TooBig.to_string().contains("1009"));
    }
}
