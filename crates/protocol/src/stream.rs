//! Stream mode (`wspubsub.v2`): the opt-in subprotocol whose messages carry their position.
//!
//! A client that offers [`STREAM_SUBPROTOCOL`] in `Sec-WebSocket-Protocol` gets it echoed in
//! the 101 and then, as a subscriber, each message as one binary frame: the [`Envelope`]
//! header ([`ENVELOPE_HEADER_LEN`] bytes) followed by the payload; control messages
//! ([`Control`]) come as text frames of JSON. Clients that do not offer it stay raw (v1).

use serde::{Deserialize, Serialize};

/// The subprotocol name a client offers to get stream mode.
pub const STREAM_SUBPROTOCOL: &str = "wspubsub.v2";

/// First byte of an enveloped message frame.
pub const ENVELOPE_MESSAGE: u8 = 0x01;

/// Bytes before the topic name and payload: kind (1), seq (8), time (8), topic length (2).
pub const ENVELOPE_HEADER_LEN: usize = 19;

/// Whether a `Sec-WebSocket-Protocol` header value (a comma list) offers stream mode.
pub fn offers_stream(header: &str) -> bool {
    header
        .split(',')
        .any(|item| item.trim() == STREAM_SUBPROTOCOL)
}

/// One enveloped message, as decoded from a binary frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The message's sequence number in its topic.
    pub seq: u64,
    /// When the server took it, in unix microseconds.
    pub time: u64,
    /// The topic it was published to, for a pattern subscription; empty otherwise.
    pub topic: &'a [u8],
    /// The message as its publisher sent it.
    pub payload: &'a [u8],
}

/// A binary frame that is not an enveloped message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadEnvelope {
    /// Shorter than its header (or than the topic name it announces).
    #[error("enveloped message truncated")]
    Truncated,
    /// The first byte is not [`ENVELOPE_MESSAGE`].
    #[error("unknown envelope kind {0:#04x}")]
    Kind(u8),
}

impl<'a> Envelope<'a> {
    /// The header of a message `seq` taken at `time` (unix µs) with a topic name of
    /// `topic_len` bytes (0: not a pattern subscription).
    pub fn header(seq: u64, time: u64, topic_len: u16) -> [u8; ENVELOPE_HEADER_LEN] {
        let mut header = [0; ENVELOPE_HEADER_LEN];
        header[0] = ENVELOPE_MESSAGE;
        header[1..9].copy_from_slice(&seq.to_be_bytes());
        header[9..17].copy_from_slice(&time.to_be_bytes());
        header[17..19].copy_from_slice(&topic_len.to_be_bytes());
        header
    }

    /// Reads an enveloped message from a binary frame's payload.
    pub fn decode(frame: &'a [u8]) -> Result<Self, BadEnvelope> {
        let (header, rest) = frame
            .split_first_chunk::<ENVELOPE_HEADER_LEN>()
            .ok_or(BadEnvelope::Truncated)?;
        if header[0] != ENVELOPE_MESSAGE {
            return Err(BadEnvelope::Kind(header[0]));
        }
        let be64 = |range: std::ops::Range<usize>| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&header[range]);
            u64::from_be_bytes(bytes)
        };
        let topic_len = usize::from(u16::from_be_bytes([header[17], header[18]]));
        if rest.len() < topic_len {
            return Err(BadEnvelope::Truncated);
        }
        let (topic, payload) = rest.split_at(topic_len);
        Ok(Envelope {
            seq: be64(1..9),
            time: be64(9..17),
            topic,
            payload,
        })
    }
}

/// A control message: one text frame of JSON, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// A subscriber's first frame: where its delivery begins and where the topic stands.
    Subscribed {
        /// The topic.
        topic: String,
        /// The seq this subscriber's delivery begins with.
        from: u64,
        /// The seq the next new message will get.
        head: u64,
        /// The oldest seq history holds (`head` when it holds none).
        earliest: u64,
    },
    /// Messages this subscriber asked for that it will not get, announced before any message.
    Gap {
        /// The topic.
        topic: String,
        /// The position asked for.
        from: u64,
        /// Where delivery resumes instead.
        to: u64,
        /// Why (`history_evicted`, `history_off`, `topic_restarted`, `position_ahead`).
        reason: String,
    },
    /// A pattern subscriber's first frame: the pattern it follows. Each topic it comes to
    /// follow then gets its own [`Control::Subscribed`] before that topic's messages.
    Following {
        /// The pattern (`/chat/*`, `/sensors/**`).
        pattern: String,
    },
    /// To a publisher: its first `count` messages are stored, the last as `seq`.
    Ack {
        /// Messages of this connection stored so far.
        count: u64,
        /// The seq of the last of them.
        seq: u64,
    },
}

impl Control {
    /// The JSON text of the frame.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a control message from a text frame.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_with_the_documented_layout() {
        let mut frame = Envelope::header(0x0102_0304_0506_0708, 42, 0).to_vec();
        frame.extend_from_slice(b"payload");
        assert_eq!(frame[0], 0x01);
        assert_eq!(&frame[1..9], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&frame[9..17], &42u64.to_be_bytes());
        assert_eq!(&frame[17..19], &[0, 0]);
        let decoded = Envelope::decode(&frame).expect("valid");
        assert_eq!(
            decoded,
            Envelope {
                seq: 0x0102_0304_0506_0708,
                time: 42,
                topic: b"",
                payload: b"payload",
            }
        );
    }

    #[test]
    fn envelope_with_a_topic_and_bad_envelopes() {
        let mut frame = Envelope::header(7, 8, 2).to_vec();
        frame.extend_from_slice(b"/ax");
        let decoded = Envelope::decode(&frame).expect("valid");
        assert_eq!((decoded.topic, decoded.payload), (&b"/a"[..], &b"x"[..]));
        assert_eq!(Envelope::decode(&frame[..18]), Err(BadEnvelope::Truncated));
        assert_eq!(Envelope::decode(&frame[..20]), Err(BadEnvelope::Truncated));
        frame[0] = 2;
        assert_eq!(Envelope::decode(&frame), Err(BadEnvelope::Kind(2)));
    }

    #[test]
    fn control_messages_are_tagged_json() {
        let subscribed = Control::Subscribed {
            topic: "/a".into(),
            from: 5,
            head: 9,
            earliest: 3,
        };
        assert_eq!(
            subscribed.to_json(),
            r#"{"type":"subscribed","topic":"/a","from":5,"head":9,"earliest":3}"#
        );
        let ack = Control::from_json(r#"{"type":"ack","count":2,"seq":11}"#).expect("valid");
        assert_eq!(ack, Control::Ack { count: 2, seq: 11 });
    }

    #[test]
    fn a_pattern_subscription_begins_with_following() {
        let following = Control::Following {
            pattern: "/chat/*".into(),
        };
        assert_eq!(
            following.to_json(),
            r#"{"type":"following","pattern":"/chat/*"}"#
        );
    }

    #[test]
    fn only_an_exact_offer_selects_stream_mode() {
        assert!(offers_stream("chat, wspubsub.v2"));
        assert!(!offers_stream("wspubsub.v1, wspubsub.v22"));
    }
}
