//! How a bench client speaks to the server: raw (protocol v1, the default), stream mode
//! (`wspubsub.v2`) or, for subscribers only, Server-Sent Events over plain HTTP ([`Mode::Sse`],
//! read by [`crate::sse`]), and how a WebSocket subscriber's frames become the payloads its
//! publisher sent.
//!
//! In stream mode every message frame is an envelope whose seq must follow the one before it
//! (the first one being the `from` of the `subscribed` frame that comes first), so that a
//! lost, duplicated or reordered envelope is an error even before the payload is looked at.

use anyhow::{Context, bail, ensure};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use wspubsub_server::protocol::{Control, Envelope, STREAM_SUBPROTOCOL};

/// The protocol a client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Protocol v1: messages are the publisher's bytes, nothing else.
    #[default]
    Raw,
    /// `wspubsub.v2`: enveloped messages and JSON control frames.
    Stream,
    /// An EventSource-style HTTP subscriber: one base64 event per message (subscribers only).
    Sse,
}

impl Mode {
    /// The mode's name in the table and the JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Raw => "raw",
            Mode::Stream => "stream",
            Mode::Sse => "sse",
        }
    }

    /// Adds the subprotocol offer to `request` in stream mode.
    pub(crate) fn offer(self, request: &mut Request) {
        if self == Mode::Stream {
            request.headers_mut().insert(
                SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(STREAM_SUBPROTOCOL),
            );
        }
    }
}

/// Where the topic stood when a stream-mode subscriber joined (its `subscribed` frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Joined {
    /// The seq its delivery begins with.
    pub(crate) from: u64,
    /// The seq the next new message gets.
    pub(crate) head: u64,
    /// The oldest seq history holds.
    pub(crate) earliest: u64,
}

/// A subscriber's frames as payloads, checked as they come.
#[derive(Debug)]
pub(crate) struct Frames {
    mode: Mode,
    /// The `subscribed` frame, once it came (stream mode).
    joined: Option<Joined>,
    /// The seq the next envelope must carry (stream mode).
    next: u64,
}

impl Frames {
    /// A fresh subscriber's frames in `mode`.
    pub(crate) fn new(mode: Mode) -> Frames {
        Frames {
            mode,
            joined: None,
            next: 0,
        }
    }

    /// The `subscribed` frame's positions, once it came (stream mode only).
    pub(crate) fn joined(&self) -> Option<Joined> {
        self.joined
    }

    /// The payload `message` carries, `None` for a frame that carries none (pings, a raw
    /// subscriber's text, a stream-mode `subscribed`), or an error for a frame that breaks
    /// the protocol or the order.
    pub(crate) fn payload<'a>(&mut self, message: &'a Message) -> anyhow::Result<Option<&'a [u8]>> {
        match (self.mode, message) {
            (Mode::Raw, Message::Binary(data)) => Ok(Some(data)),
            (Mode::Raw, _) => Ok(None),
            (Mode::Stream, Message::Text(text)) => {
                self.control(text.as_str())?;
                Ok(None)
            }
            (Mode::Stream, Message::Binary(data)) => self.envelope(data).map(Some),
            (Mode::Stream, _) => Ok(None),
            (Mode::Sse, _) => bail!("an SSE subscriber got a WebSocket frame"),
        }
    }

    /// Checks an envelope against the expected seq; returns its payload.
    fn envelope<'a>(&mut self, frame: &'a [u8]) -> anyhow::Result<&'a [u8]> {
        ensure!(
            self.joined.is_some(),
            "a message came before the subscribed frame"
        );
        let envelope = Envelope::decode(frame)?;
        ensure!(
            envelope.seq == self.next,
            "expected seq {}, got {}",
            self.next,
            envelope.seq
        );
        ensure!(
            envelope.topic.is_empty(),
            "a topic name in the envelope of a plain subscription"
        );
        self.next += 1;
        Ok(envelope.payload)
    }

    /// Reads a control frame: `subscribed` once, first; anything else is an error here.
    fn control(&mut self, text: &str) -> anyhow::Result<()> {
        let control = Control::from_json(text).with_context(|| format!("control frame {text}"))?;
        match control {
            Control::Subscribed {
                from,
                head,
                earliest,
                ..
            } => {
                ensure!(self.joined.is_none(), "a second subscribed frame: {text}");
                self.joined = Some(Joined {
                    from,
                    head,
                    earliest,
                });
                self.next = from;
                Ok(())
            }
            other => bail!("unexpected control frame {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    use super::*;

    fn subscribed(from: u64) -> Message {
        let control = Control::Subscribed {
            topic: "/t".into(),
            from,
            head: from,
            earliest: from,
        };
        Message::text(control.to_json())
    }

    fn envelope(seq: u64, topic: &[u8], payload: &[u8]) -> Message {
        let mut frame = Envelope::header(seq, 1, topic.len() as u16).to_vec();
        frame.extend_from_slice(topic);
        frame.extend_from_slice(payload);
        Message::Binary(Bytes::from(frame))
    }

    #[test]
    fn stream_frames_give_their_payloads_in_order() -> anyhow::Result<()> {
        let mut frames = Frames::new(Mode::Stream);
        assert_eq!(frames.payload(&subscribed(7))?, None);
        assert_eq!(
            frames.joined(),
            Some(Joined {
                from: 7,
                head: 7,
                earliest: 7
            })
        );
        assert_eq!(frames.payload(&envelope(7, b"", b"a"))?, Some(&b"a"[..]));
        assert_eq!(frames.payload(&envelope(8, b"", b"bc"))?, Some(&b"bc"[..]));
        assert_eq!(frames.payload(&Message::Ping(Bytes::new()))?, None);
        Ok(())
    }

    #[test]
    fn stream_frames_out_of_order_or_malformed_are_errors() {
        let mut frames = Frames::new(Mode::Stream);
        assert!(
            frames.payload(&envelope(0, b"", b"x")).is_err(),
            "before subscribed"
        );
        assert!(frames.payload(&subscribed(3)).is_ok());
        assert!(frames.payload(&subscribed(3)).is_err(), "subscribed twice");
        assert!(frames.payload(&envelope(4, b"", b"x")).is_err(), "a gap");
        let mut frames = Frames::new(Mode::Stream);
        assert!(frames.payload(&subscribed(3)).is_ok());
        assert!(frames.payload(&envelope(3, b"", b"x")).is_ok());
        assert!(
            frames.payload(&envelope(3, b"", b"x")).is_err(),
            "a duplicate"
        );
        let mut frames = Frames::new(Mode::Stream);
        assert!(frames.payload(&subscribed(0)).is_ok());
        assert!(
            frames.payload(&envelope(0, b"/t", b"x")).is_err(),
            "a topic"
        );
        let raw = Message::Binary(Bytes::from_static(&[0; 32]));
        assert!(frames.payload(&raw).is_err(), "a raw frame");
        let gap = Control::Gap {
            topic: "/t".into(),
            from: 0,
            to: 5,
            reason: "history_evicted".into(),
        };
        assert!(frames.payload(&Message::text(gap.to_json())).is_err());
    }

    #[test]
    fn raw_frames_are_their_payloads() -> anyhow::Result<()> {
        let mut frames = Frames::new(Mode::Raw);
        let data = Message::Binary(Bytes::from_static(b"\x01payload"));
        assert_eq!(frames.payload(&data)?, Some(&b"\x01payload"[..]));
        assert_eq!(frames.payload(&Message::text("hello"))?, None);
        assert_eq!(frames.joined(), None);
        Ok(())
    }

    #[test]
    fn sse_mode_has_no_websocket_frames() {
        let mut frames = Frames::new(Mode::Sse);
        let data = Message::Binary(Bytes::from_static(b"payload"));
        assert!(frames.payload(&data).is_err());
    }

    #[test]
    fn only_stream_mode_offers_the_subprotocol() -> anyhow::Result<()> {
        let offered = |mode: Mode| -> anyhow::Result<Option<HeaderValue>> {
            let mut request = "ws://127.0.0.1:1/t".into_client_request()?;
            mode.offer(&mut request);
            Ok(request.headers().get(SEC_WEBSOCKET_PROTOCOL).cloned())
        };
        assert_eq!(
            offered(Mode::Stream)?,
            Some(HeaderValue::from_static("wspubsub.v2"))
        );
        assert_eq!(offered(Mode::Raw)?, None);
        assert_eq!(offered(Mode::Sse)?, None);
        Ok(())
    }
}
