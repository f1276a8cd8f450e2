//! Stream mode (`wspubsub.v2`) as a test client reads it: each frame a control message or
//! an enveloped message, pings and pongs skipped.

use bytes::Bytes;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use wspubsub_protocol::{Control, Envelope};

use crate::{RawClient, TIMEOUT, within};

/// One stream-mode frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFrame {
    /// A control message (a text frame of JSON).
    Control(Control),
    /// An enveloped message.
    Message {
        /// The topic its envelope names (empty unless the subscription is a pattern).
        topic: String,
        /// Its seq.
        seq: u64,
        /// When the server took it, unix µs.
        time: u64,
        /// The payload.
        payload: Bytes,
    },
}

/// The next stream-mode frame of `client`, within [`TIMEOUT`], skipping pings and pongs;
/// panics on anything else (a close, an error, a frame that is not stream mode's).
pub async fn next_stream_frame(client: &mut RawClient) -> StreamFrame {
    within(TIMEOUT, async {
        loop {
            match client.next().await {
                Some(Ok(Message::Text(text))) => {
                    let control = Control::from_json(&text).expect("a control message");
                    return StreamFrame::Control(control);
                }
                Some(Ok(Message::Binary(frame))) => {
                    let envelope = Envelope::decode(&frame).expect("an envelope");
                    return StreamFrame::Message {
                        topic: String::from_utf8(envelope.topic.to_vec()).expect("a path"),
                        seq: envelope.seq,
                        time: envelope.time,
                        payload: Bytes::copy_from_slice(envelope.payload),
                    };
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a stream-mode frame, got {other:?}"),
            }
        }
    })
    .await
}

/// What a stream-mode pattern subscriber read, in order.
#[derive(Debug, Default)]
pub struct PatternRead {
    /// Each topic's `subscribed` frame: the topic and its `head`.
    pub subscribed: Vec<(String, u64)>,
    /// The messages: topic, seq, payload.
    pub messages: Vec<(String, u64, Bytes)>,
}

impl PatternRead {
    /// The payloads of `topic`'s messages, in order.
    pub fn payloads_of(&self, topic: &str) -> Vec<Bytes> {
        self.messages
            .iter()
            .filter(|(of, _, _)| of == topic)
            .map(|(_, _, payload)| payload.clone())
            .collect()
    }

    /// The seqs of `topic`'s messages, in order.
    pub fn seqs_of(&self, topic: &str) -> Vec<u64> {
        self.messages
            .iter()
            .filter(|(of, _, _)| of == topic)
            .map(|(_, seq, _)| *seq)
            .collect()
    }
}

/// Reads a stream-mode pattern subscriber (past its `following` frame) until it has `count`
/// messages; panics on a control message other than `subscribed`, and on a message of a topic
/// whose `subscribed` frame did not come before it.
pub async fn read_pattern(client: &mut RawClient, count: usize) -> PatternRead {
    let mut read = PatternRead::default();
    while read.messages.len() < count {
        match next_stream_frame(client).await {
            StreamFrame::Control(Control::Subscribed { topic, head, .. }) => {
                read.subscribed.push((topic, head));
            }
            StreamFrame::Control(other) => panic!("unexpected {other:?}"),
            StreamFrame::Message {
                topic,
                seq,
                payload,
                ..
            } => {
                assert!(
                    read.subscribed.iter().any(|(of, _)| *of == topic),
                    "{topic}'s subscribed frame before its messages"
                );
                read.messages.push((topic, seq, payload));
            }
        }
    }
    read
}
