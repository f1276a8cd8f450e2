//! An EventSource-style subscriber for the bench: a plain HTTP/1.1 `GET` of a topic path with
//! `Accept: text/event-stream` (default base64 encoding), its event stream read and checked
//! event by event.
//!
//! Every event must be a plain message (no `event:` type: a gap or a non-base64 payload is an
//! error in a live stream), carry an `id:` that is the previous event's plus one (strictly
//! increasing, no gap, no repeat), and a `data:` line in standard base64; the decoded bytes
//! are the publisher's payload, which the load checks as it checks a WebSocket's. Comments
//! (`: ping`) and the `retry:` hint carry nothing and are skipped.

use std::net::SocketAddr;

use anyhow::{Context, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The media type of an event stream.
const EVENT_STREAM: &str = "text/event-stream";

/// An open event stream: the response body and what has been parsed of it.
#[derive(Debug)]
pub(crate) struct EventStream {
    body: Incoming,
    parser: Parser,
}

impl EventStream {
    /// Subscribes to `path` on `addr` as EventSource does; fails unless the answer is `200`
    /// with `content-type: text/event-stream`.
    pub(crate) async fn open(addr: SocketAddr, path: &str) -> anyhow::Result<EventStream> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        // The connection's own task; a failure ends the body, which the reader then reports.
        tokio::spawn(connection);
        let request = Request::get(path)
            .header(HOST, addr.to_string())
            .header(ACCEPT, EVENT_STREAM)
            .body(Empty::<Bytes>::new())
            .context("an event-stream request")?;
        let response = sender
            .send_request(request)
            .await
            .with_context(|| format!("GET {path}"))?;
        ensure!(
            response.status() == StatusCode::OK,
            "GET {path} as an event stream: {}",
            response.status()
        );
        let media = response.headers().get(CONTENT_TYPE);
        ensure!(
            media.is_some_and(|value| value.as_bytes().starts_with(EVENT_STREAM.as_bytes())),
            "GET {path} answered content-type {media:?}, not {EVENT_STREAM}"
        );
        Ok(EventStream {
            body: response.into_body(),
            parser: Parser::default(),
        })
    }

    /// The payload of the next event, checked; `None` when the stream ended.
    pub(crate) async fn next(&mut self) -> Option<anyhow::Result<&[u8]>> {
        loop {
            match self.parser.advance() {
                Ok(true) => break,
                Ok(false) => {}
                Err(error) => return Some(Err(error)),
            }
            match self.body.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        self.parser.feed(&data);
                    }
                }
                Err(error) => return Some(Err(error.into())),
            }
        }
        Some(Ok(self.parser.payload()))
    }
}

/// The event-stream format, read line by line from the bytes received so far.
#[derive(Debug, Default)]
struct Parser {
    /// Bytes received; those before `start` are parsed.
    buffer: Vec<u8>,
    start: usize,
    /// The `id:` of the event being read.
    id: Option<u64>,
    /// Its base64 `data:`.
    data: Vec<u8>,
    /// Whether it had a `data:` line.
    has_data: bool,
    /// Its `event:` type, when it named one.
    kind: Option<String>,
    /// The id of the last event dispatched.
    last: Option<u64>,
    /// The last event's decoded payload.
    payload: Vec<u8>,
}

impl Parser {
    /// Adds received bytes.
    fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Reads whole lines until one completes an event: true when it did (its payload is then
    /// [`Parser::payload`]), false when the buffer holds no more whole lines.
    fn advance(&mut self) -> anyhow::Result<bool> {
        while let Some(length) = self.buffer[self.start..].iter().position(|&b| b == b'\n') {
            let (from, to) = (self.start, self.start + length);
            self.start = to + 1;
            // A line may end in `\r\n`; a lone `\r` is not used by the server and would fail
            // the field it lands in.
            let to = if to > from && self.buffer[to - 1] == b'\r' {
                to - 1
            } else {
                to
            };
            let line = std::mem::take(&mut self.buffer);
            let dispatched = self.line(&line[from..to]);
            self.buffer = line;
            if dispatched? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Applies one line (without its end); true when it dispatched an event.
    fn line(&mut self, line: &[u8]) -> anyhow::Result<bool> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return Ok(false);
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => (&line[..colon], &line[colon + 1..]),
            None => (line, &[][..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match field {
            b"data" => {
                ensure!(!self.has_data, "an event with more than one data line");
                self.data.clear();
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"id" => {
                let id = std::str::from_utf8(value)
                    .ok()
                    .and_then(|id| id.parse().ok())
                    .with_context(|| {
                        format!(
                            "an id that is not a seq: {}",
                            String::from_utf8_lossy(value)
                        )
                    })?;
                self.id = Some(id);
            }
            b"event" => self.kind = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
        Ok(false)
    }

    /// Ends the event being read: checks it and decodes its payload; false when there was
    /// none (a blank line after a hint).
    fn dispatch(&mut self) -> anyhow::Result<bool> {
        let (id, has_data, kind) = (
            self.id.take(),
            std::mem::take(&mut self.has_data),
            self.kind.take(),
        );
        if !has_data {
            ensure!(id.is_none() && kind.is_none(), "an event without data");
            return Ok(false);
        }
        if let Some(kind) = kind {
            bail!("an `event: {kind}` event in a live base64 stream");
        }
        let id = id.context("an event without an id")?;
        if let Some(last) = self.last {
            ensure!(
                id == last + 1,
                "event id {id} after {last}: ids must go up by one"
            );
        }
        self.last = Some(id);
        self.payload.clear();
        STANDARD
            .decode_vec(&self.data, &mut self.payload)
            .with_context(|| format!("the data of event {id} is not padded standard base64"))?;
        Ok(true)
    }

    /// The payload of the event [`Parser::advance`] last completed.
    fn payload(&self) -> &[u8] {
        &self.payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after another, collecting every payload; the first error ends it.
    fn parse(chunks: &[&str]) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut parser = Parser::default();
        let mut payloads = Vec::new();
        for chunk in chunks {
            parser.feed(chunk.as_bytes());
            while parser.advance()? {
                payloads.push(parser.payload().to_vec());
            }
        }
        Ok(payloads)
    }

    #[test]
    fn events_give_their_decoded_payloads_across_chunk_boundaries() -> anyhow::Result<()> {
        let payloads = parse(&[
            "retry: 1000\n\n: ping\nid: 7\nda",
            "ta: AP8B\n",
            "\r\nid: 8\r\ndata: YWI=\r\n\r\nid: 9\ndata: \n",
            "\n",
        ])?;
        assert_eq!(payloads, [vec![0, 255, 1], b"ab".to_vec(), Vec::new()]);
        Ok(())
    }

    #[test]
    fn an_incomplete_event_waits_for_its_blank_line() -> anyhow::Result<()> {
        assert_eq!(parse(&["id: 1\ndata: YQ==\n"])?, Vec::<Vec<u8>>::new());
        Ok(())
    }

    #[test]
    fn ids_must_go_up_by_one() {
        let error = |chunks: &[&str]| parse(chunks).err().map(|e| format!("{e:#}"));
        assert!(error(&["id: 3\ndata: YQ==\n\nid: 4\ndata: YQ==\n\n"]).is_none());
        let gap = error(&["id: 3\ndata: YQ==\n\nid: 5\ndata: YQ==\n\n"]);
        assert!(gap.is_some_and(|e| e.contains("id 5 after 3")));
        let repeat = error(&["id: 3\ndata: YQ==\n\nid: 3\ndata: YQ==\n\n"]);
        assert!(repeat.is_some_and(|e| e.contains("id 3 after 3")));
        let back = error(&["id: 3\ndata: YQ==\n\nid: 2\ndata: YQ==\n\n"]);
        assert!(back.is_some_and(|e| e.contains("id 2 after 3")));
    }

    #[test]
    fn malformed_events_are_errors() {
        let fails = |chunk: &str| parse(&[chunk]).is_err();
        assert!(fails("data: YQ==\n\n"), "no id");
        assert!(fails("id: x\ndata: YQ==\n\n"), "an id that is no seq");
        assert!(fails("id: 1\ndata: YQ\n\n"), "unpadded base64");
        assert!(fails("id: 1\ndata: *\n\n"), "not base64");
        assert!(fails("event: gap\ndata: {}\n\n"), "a gap");
        assert!(
            fails("event: binary\nid: 1\ndata: YQ==\n\n"),
            "a typed event"
        );
        assert!(fails("id: 1\ndata: YQ==\ndata: YQ==\n\n"), "two data lines");
        assert!(fails("id: 1\n\n"), "an id without data");
    }
}
