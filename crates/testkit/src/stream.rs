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
