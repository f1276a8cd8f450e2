//! Close codes the server sends, and what each means to a client.

use std::fmt;

/// A WebSocket close code with its meaning in wspubsub.
///
/// Codes below 4000 are the standard ones of RFC 6455; 4000 and up are wspubsub's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// 1000: the client or the server is done.
    Normal,
    /// 1001: the server is shutting down.
    GoingAway,
    /// 1002: the peer broke the WebSocket protocol (bad framing, unmasked frames, ...).
    ProtocolError,
    /// 1003: a publisher sent a text frame; wspubsub carries binary frames only.
    UnsupportedData,
    /// 1008: policy: the client's token expired while it was connected.
    PolicyViolation,
    /// 1009: a message exceeded the server's maximum message size.
    MessageTooBig,
    /// 1011: the server hit an internal error.
    InternalError,
    /// 4000: the subscriber fell too far behind (its pending queue overflowed, or one write
    /// took longer than the write timeout) and was cut so that it never stalls the others.
    SlowSubscriber,
    /// 4001: nothing was heard from the peer (no pong, no frame) within the pong deadline.
    PongTimeout,
    /// 4002: cluster mode: the broker's stream lost messages of the topic this subscriber
    /// had not yet received (its servers restarted with memory storage, or it evicted them
    /// before this node read them). Everything before was delivered in order; a subscriber
    /// that resumes from its position is told of the gap.
    StreamLost,
}

impl CloseCode {
    /// Every code, in numeric order; the README's close-code table lists exactly these.
    pub const ALL: [CloseCode; 10] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::ProtocolError,
        CloseCode::UnsupportedData,
        CloseCode::PolicyViolation,
        CloseCode::MessageTooBig,
        CloseCode::InternalError,
        CloseCode::SlowSubscriber,
        CloseCode::PongTimeout,
        CloseCode::StreamLost,
    ];

    /// The numeric code on the wire.
    pub const fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::ProtocolError => 1002,
            CloseCode::UnsupportedData => 1003,
            CloseCode::PolicyViolation => 1008,
            CloseCode::MessageTooBig => 1009,
            CloseCode::InternalError => 1011,
            CloseCode::SlowSubscriber => 4000,
            CloseCode::PongTimeout => 4001,
            CloseCode::StreamLost => 4002,
        }
    }

    /// The code for a number, if wspubsub defines one.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        Self::ALL.into_iter().find(|known| known.code() == code)
    }

    /// The short reason the server puts in the close frame.
    pub const fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "done",
            CloseCode::GoingAway => "server shutting down",
            CloseCode::ProtocolError => "websocket protocol error",
            CloseCode::UnsupportedData => "text frames are not accepted; send binary frames",
            CloseCode::PolicyViolation => "policy violation: token expired",
            CloseCode::MessageTooBig => "message exceeds the server's maximum message size",
            CloseCode::InternalError => "internal server error",
            CloseCode::SlowSubscriber => "slow subscriber: fell too far behind",
            CloseCode::PongTimeout => "no pong within the pong deadline",
            CloseCode::StreamLost => "the broker lost messages: resume from your position",
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        for code in CloseCode::ALL {
            assert_eq!(CloseCode::from_code(code.code()), Some(code));
        }
        assert_eq!(CloseCode::from_code(1005), None);
        let mut numbers: Vec<u16> = CloseCode::ALL.iter().map(|c| c.code()).collect();
        numbers.dedup();
        assert_eq!(numbers.len(), CloseCode::ALL.len());
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "ALL is in numeric order"
        );
    }

    #[test]
    fn private_codes_are_in_the_private_range() {
        assert!((4000..5000).contains(&CloseCode::SlowSubscriber.code()));
        assert!((4000..5000).contains(&CloseCode::PongTimeout.code()));
    }

    #[test]
    fn reasons_fit_in_a_control_frame() {
        for code in CloseCode::ALL {
            assert!(code.reason().len() <= 123, "{code:?} reason too long");
        }
    }
}
