//! What a stream-mode subscriber yields: messages with their positions, and what happened to
//! the connection on the way.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::ClientError;
use crate::subscriber::inbox::Weigh;

/// One message of the topic, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// Its sequence number in the topic: strictly increasing, below 2^53. Resume after it with
    /// `StartPosition::Seq(seq + 1)`.
    pub seq: u64,
    /// When the server took it, in unix microseconds.
    pub time_micros: u64,
    /// The message as its publisher sent it.
    pub payload: Bytes,
    /// The topic it was published to, for a pattern subscription (`/chat/*`); `None` for a
    /// subscription to one topic.
    pub topic: Option<String>,
}

impl Message {
    /// When the server took it.
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.time_micros)
    }
}

/// What a stream-mode subscriber yields, in order.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The next message.
    Message(Message),
    /// The connection ended (`after` says how) and a new one resumed: the next message is
    /// the one at `from`, or a [`Event::Gap`] comes first to say why not.
    Reconnected {
        /// The position delivery resumed at.
        from: u64,
        /// Why the previous connection ended.
        after: ClientError,
    },
    /// Messages this subscriber wanted that it will never get: the position `from` it asked
    /// for is not covered, and delivery goes on at `to` (history evicted them, history is
    /// off, the topic restarted, the position was ahead of the topic).
    Gap {
        /// The first position wanted.
        from: u64,
        /// Where delivery goes on.
        to: u64,
        /// Why, as the server names it (`history_evicted`, `history_off`, `topic_restarted`,
        /// `position_ahead`).
        reason: String,
    },
}

impl Weigh for Event {
    fn weight(&self) -> usize {
        match self {
            Event::Message(message) => message.payload.len(),
            Event::Reconnected { .. } | Event::Gap { .. } => 0,
        }
    }
}
