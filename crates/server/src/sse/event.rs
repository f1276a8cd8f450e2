//! The text of a Server-Sent Events stream: each message as one event (`id: <seq>`, then its
//! payload as `data:` lines, or as one JSON line naming its topic), a gap as `event: gap` with
//! the stream-mode gap JSON, the `retry:` hint and the heartbeat comment.
//!
//! A subscriber's events are made from the stream-mode frames its topic already builds once
//! per chunk for every stream-mode reader (each message's seq and payload behind an
//! envelope), so this module only reads frames: binary frames are messages, text frames are
//! control messages, of which the gap becomes an event and the rest are left out.

use std::fmt::Write as _;
use std::io::Cursor;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{BufMut, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use wspubsub_fanout::FrameQueue;
use wspubsub_protocol::{Control, Envelope};

use super::shared::SharedEvents;

/// The query parameter that picks the encoding of the payloads (`encoding=text`).
pub(crate) const ENCODING_QUERY: &str = "encoding";

/// The query parameter that asks for each message's data as a JSON object naming its topic
/// (`envelope=json`).
pub(crate) const ENVELOPE_QUERY: &str = "envelope";

/// How long a client waits before it reconnects, in milliseconds: the stream's first line.
pub(crate) const RETRY_MILLIS: u64 = 1000;

/// The heartbeat: a comment, which EventSource ignores, that keeps proxies and the write
/// timeout honest while the topic is quiet.
pub(crate) const PING: &[u8] = b": ping\n\n";

/// How payloads are written in `data:` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Encoding {
    /// Standard base64, padded: binary-safe (the default).
    #[default]
    Base64,
    /// UTF-8 payloads as text, one `data:` line per line; others as `event: binary` in base64.
    Text,
}

/// An `encoding=` value that is neither `base64` nor `text` (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid encoding={0:?}: expected base64 or text")]
pub(crate) struct BadEncoding(String);

impl Encoding {
    /// The encoding an `encoding=` query value names (`None`: absent, the default).
    pub(crate) fn parse(value: Option<&str>) -> Result<Self, BadEncoding> {
        match value {
            None | Some("base64") => Ok(Encoding::Base64),
            Some("text") => Ok(Encoding::Text),
            Some(other) => Err(BadEncoding(other.to_owned())),
        }
    }
}

/// A format query an EventSource subscriber cannot get (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadFormat {
    /// `encoding=` is neither `base64` nor `text`.
    #[error(transparent)]
    Encoding(#[from] BadEncoding),
    /// `envelope=` is not `json`.
    #[error("invalid envelope={0:?}: expected json")]
    Envelope(String),
}

/// How a subscriber's events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Format {
    /// How payloads are written.
    pub(crate) encoding: Encoding,
    /// Each message's data is one JSON object, `{"topic","seq","time","data"}`: asked with
    /// `envelope=json`, and always so for a pattern subscription, whose messages come from
    /// many topics.
    pub(crate) json: bool,
    /// Each message's event has an `id:` (its seq), which EventSource resumes from; not for
    /// a pattern subscription, whose seqs are each topic's own (and which is live only).
    pub(crate) ids: bool,
}

impl From<Encoding> for Format {
    /// Plain events of one topic in `encoding`.
    fn from(encoding: Encoding) -> Self {
        Format {
            encoding,
            json: false,
            ids: true,
        }
    }
}

impl Format {
    /// The format of a subscription: `encoding=` and `envelope=` (`None`: absent) read, for a
    /// pattern or not.
    pub(crate) fn parse(
        encoding: Option<&str>,
        envelope: Option<&str>,
        pattern: bool,
    ) -> Result<Self, BadFormat> {
        let encoding = Encoding::parse(encoding)?;
        let json = match envelope {
            None => false,
            Some("json") => true,
            Some(other) => return Err(BadFormat::Envelope(other.to_owned())),
        };
        Ok(Format {
            encoding,
            json: json || pattern,
            ids: !pattern,
        })
    }
}

/// A message's event data as JSON.
#[derive(serde::Serialize)]
struct JsonData<'a> {
    topic: &'a str,
    seq: u64,
    time: u64,
    data: &'a str,
}

/// The first bytes of every stream: the reconnection delay.
pub(crate) fn preamble() -> Bytes {
    Bytes::from(format!("retry: {RETRY_MILLIS}\n\n"))
}

/// Appends the event of `message`. A JSON event names the message's topic: the one its
/// envelope names (a pattern's), else `topic`, the subscription's.
pub(crate) fn put_message(out: &mut BytesMut, message: &Envelope<'_>, topic: &str, format: Format) {
    let payload = message.payload;
    let text = match format.encoding {
        Encoding::Text => std::str::from_utf8(payload).ok(),
        Encoding::Base64 => None,
    };
    if text.is_none() && format.encoding == Encoding::Text {
        out.put_slice(b"event: binary\n");
    }
    if format.ids {
        // Writing into a BytesMut cannot fail.
        let _ = writeln!(out, "id: {}", message.seq);
    }
    if format.json {
        let base64;
        let data = match text {
            Some(text) => text,
            None => {
                base64 = STANDARD.encode(payload);
                &base64
            }
        };
        let named = String::from_utf8_lossy(message.topic);
        let json = JsonData {
            topic: if named.is_empty() { topic } else { &named },
            seq: message.seq,
            time: message.time,
            data,
        };
        out.put_slice(b"data: ");
        // JSON escapes line breaks: the object is one `data:` line. Writing it cannot fail.
        let _ = serde_json::to_writer((&mut *out).writer(), &json);
        out.put_slice(b"\n\n");
        return;
    }
    match text {
        Some(text) => {
            // EventSource joins `data:` lines with `\n`: each line of the payload is one.
            for line in lines(text) {
                out.put_slice(b"data: ");
                out.put_slice(line.as_bytes());
                out.put_u8(b'\n');
            }
        }
        None => {
            out.put_slice(b"data: ");
            let start = out.len();
            out.resize(
                start + base64::encoded_len(payload.len(), true).unwrap_or(0),
                0,
            );
            let written = STANDARD
                .encode_slice(payload, &mut out[start..])
                .unwrap_or(0);
            out.truncate(start + written);
            out.put_u8(b'\n');
        }
    }
    out.put_u8(b'\n');
}

/// The lines of `text` as the SSE format reads them: split at `\r\n`, `\r` or `\n`, so that
/// no line holds a line break (an empty text is one empty line).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(current)
            }
            Some(at) => {
                let skip = if current[at..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[at + skip..]);
                Some(&current[..at])
            }
        }
    })
}

/// Appends a gap event: `json` is the stream-mode gap message (design.md section 6).
pub(crate) fn put_gap(out: &mut BytesMut, json: &str) {
    out.put_slice(b"event: gap\ndata: ");
    out.put_slice(json.as_bytes());
    out.put_slice(b"\n\n");
}

/// Turns every stream-mode frame queued in `frames`, of `topic` (or of the topics their
/// envelopes name), into events in `format` (taking them all out), each buffer's events
/// shared with every other subscriber that reads the same buffer.
pub(crate) fn transcode(
    frames: &mut FrameQueue,
    topic: &str,
    format: Format,
    shared: &SharedEvents,
) -> FrameQueue {
    let mut out = FrameQueue::default();
    // Each buffer queued is whole frames: a shared chunk, a replayed record or a notice.
    while let Some(part) = frames.pop_front() {
        out.push(shared.events(&part, topic, format));
    }
    out
}

/// The events of the whole stream-mode frames of `part`, of `topic` unless they name theirs.
pub(crate) fn events_of(part: &[u8], topic: &str, format: Format) -> Bytes {
    // Base64 grows payloads by a third; ids and field names come on top.
    let mut out = BytesMut::with_capacity(part.len() / 3 * 4 + 64);
    transcode_part(part, topic, format, &mut out);
    out.freeze()
}

/// Turns the whole frames of `part` into events appended to `out`.
fn transcode_part(mut part: &[u8], topic: &str, format: Format, out: &mut BytesMut) {
    while !part.is_empty() {
        let mut cursor = Cursor::new(part);
        // Frames here are the server's own encoding, always whole and valid.
        let Ok(Some((header, length))) = FrameHeader::parse(&mut cursor) else {
            return;
        };
        let start = usize::try_from(cursor.position()).unwrap_or(part.len());
        let end = start
            .saturating_add(usize::try_from(length).unwrap_or(usize::MAX))
            .min(part.len());
        let payload = &part[start..end];
        match header.opcode {
            OpCode::Data(Data::Binary) => {
                if let Ok(envelope) = Envelope::decode(payload) {
                    put_message(out, &envelope, topic, format);
                }
            }
            OpCode::Data(Data::Text) => {
                let control = std::str::from_utf8(payload)
                    .ok()
                    .and_then(|text| Control::from_json(text).ok().map(|c| (text, c)));
                if let Some((json, Control::Gap { .. })) = control {
                    put_gap(out, json);
                }
            }
            _ => {}
        }
        part = &part[end..];
    }
}

#[cfg(test)]
mod tests {
    use bytes::Buf;
    use wspubsub_fanout::{RecordBuilder, text_frame};

    use super::*;

    fn event(seq: u64, payload: &[u8], encoding: Encoding) -> String {
        event_in(seq, payload, Format::from(encoding))
    }

    fn event_in(seq: u64, payload: &[u8], format: Format) -> String {
        let message = Envelope {
            seq,
            time: 99,
            topic: b"",
            payload,
        };
        let mut out = BytesMut::new();
        put_message(&mut out, &message, "/t", format);
        String::from_utf8(out.to_vec()).expect("events are text")
    }

    #[test]
    fn base64_events_are_padded_and_binary_safe() {
        assert_eq!(
            event(7, &[0, 255, 1], Encoding::Base64),
            "id: 7\ndata: AP8B\n\n"
        );
        assert_eq!(event(8, b"ab", Encoding::Base64), "id: 8\ndata: YWI=\n\n");
        assert_eq!(event(9, b"", Encoding::Base64), "id: 9\ndata: \n\n");
    }

    #[test]
    fn text_events_have_one_data_line_per_line() {
        assert_eq!(
            event(1, b"a\nb\r\nc\rd", Encoding::Text),
            "id: 1\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(
            event(2, b"end\n", Encoding::Text),
            "id: 2\ndata: end\ndata: \n\n"
        );
        assert_eq!(event(3, b"", Encoding::Text), "id: 3\ndata: \n\n");
        assert_eq!(
            event(4, &[0xff, 0xfe], Encoding::Text),
            "event: binary\nid: 4\ndata: //4=\n\n"
        );
    }

    #[test]
    fn json_events_name_their_topic_on_one_line_and_patterns_have_no_ids() {
        let json = Format::parse(None, Some("json"), false).expect("valid");
        assert_eq!(
            event_in(7, &[0, 255, 1], json),
            "id: 7\ndata: {\"topic\":\"/t\",\"seq\":7,\"time\":99,\"data\":\"AP8B\"}\n\n"
        );
        let pattern = Format::parse(Some("text"), None, true).expect("valid");
        let named = Envelope {
            seq: 3,
            time: 5,
            topic: b"/chat/a",
            payload: b"hi\nthere",
        };
        let mut out = BytesMut::new();
        put_message(&mut out, &named, "/chat/*", pattern);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "data: {\"topic\":\"/chat/a\",\"seq\":3,\"time\":5,\"data\":\"hi\\nthere\"}\n\n"
        );
        assert!(event_in(1, &[0xff], pattern).starts_with("event: binary\ndata: {"));
        assert!(Format::parse(None, Some("xml"), false).is_err());
    }

    #[test]
    fn encodings_parse() {
        assert_eq!(Encoding::parse(None), Ok(Encoding::Base64));
        assert_eq!(Encoding::parse(Some("text")), Ok(Encoding::Text));
        assert!(Encoding::parse(Some("hex")).is_err());
    }

    #[test]
    fn stream_mode_frames_become_events_and_gaps() {
        let mut builder = RecordBuilder::new(usize::MAX);
        for (seq, payload) in [(5u64, &b"x"[..]), (6, b"")] {
            let _ = builder.push(payload, std::time::Instant::now(), seq, 0);
        }
        let mut record = builder.finish().expect("a record");
        record.envelop();
        let gap = Control::Gap {
            topic: "/t".into(),
            from: 1,
            to: 5,
            reason: "history_evicted".into(),
        };
        let subscribed = Control::Subscribed {
            topic: "/t".into(),
            from: 5,
            head: 7,
            earliest: 5,
        };
        let mut frames = FrameQueue::default();
        frames.push(text_frame(&subscribed.to_json()));
        frames.push(text_frame(&gap.to_json()));
        frames.push(record.chunk.enveloped.clone().expect("enveloped"));
        let mut events = transcode(
            &mut frames,
            "/t",
            Format::from(Encoding::Base64),
            &SharedEvents::default(),
        );
        assert!(frames.is_empty());
        let events = events.copy_to_bytes(events.remaining());
        let expected = format!(
            "event: gap\ndata: {}\n\nid: 5\ndata: eA==\n\nid: 6\ndata: \n\n",
            gap.to_json()
        );
        assert_eq!(String::from_utf8_lossy(&events), expected);
    }
}
