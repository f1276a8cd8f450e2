//! Plain-HTTP clients of topics, on hyper's own client: an EventSource-style subscriber that
//! parses the event stream as browsers do ([`EventStream`]), and one-shot requests such as
//! an HTTP publish ([`http_request`]).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{TIMEOUT, within};

/// One thing an event stream carries, as the SSE format reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A dispatched event.
    Event(SseEvent),
    /// A comment line (`: ping`), without its colon and leading space.
    Comment(String),
    /// A `retry:` hint, in milliseconds.
    Retry(u64),
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` type; `None` for the default `message`.
    pub event: Option<String>,
    /// The `id:` of the event, if it had one.
    pub id: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// The id as a seq; panics if the event has none.
    pub fn seq(&self) -> u64 {
        self.id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("an event with a numeric id: {self:?}"))
    }
}

/// An HTTP answer read whole.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    /// Its status code.
    pub status: u16,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

/// Sends one request over a new connection to `addr` and reads the whole answer.
pub async fn http_request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> HttpAnswer {
    within(TIMEOUT, async {
        let response = send(addr, method, path, headers, body.into()).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the whole body")
            .to_bytes();
        HttpAnswer {
            status,
            headers,
            body,
        }
    })
    .await
}

/// Sends one request over a new connection and returns the answer's head and body stream.
async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> hyper::Response<Incoming> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("an HTTP/1.1 connection");
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body)).expect("a valid request");
    sender.send_request(request).await.expect("an answer")
}

/// An EventSource-style subscriber: a `GET` with `Accept: text/event-stream`, read item by
/// item as the SSE format says (lines end at `\r\n`, `\r` or `\n`; a blank line dispatches).
#[derive(Debug)]
pub struct EventStream {
    /// The answer's status code.
    pub status: u16,
    /// The answer's headers.
    pub headers: HeaderMap,
    body: Incoming,
    /// Bytes received and not yet parsed into lines.
    buffer: Vec<u8>,
    /// The event being read.
    pending: SseEvent,
    /// Whether any `data:` line was read for it.
    has_data: bool,
}

impl EventStream {
    /// Subscribes to `path` (with its query) on `addr`, with these extra headers.
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> EventStream {
        let mut all = vec![("accept", "text/event-stream")];
        all.extend_from_slice(headers);
        let response = within(TIMEOUT, send(addr, Method::GET, path, &all, Bytes::new())).await;
        EventStream {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.into_body(),
            buffer: Vec::new(),
            pending: SseEvent::default(),
            has_data: false,
        }
    }

    /// The answer's body, read whole (for a refusal).
    pub async fn body(self) -> String {
        let bytes = within(TIMEOUT, self.body.collect())
            .await
            .expect("the whole body")
            .to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The next item, waiting at most `limit`; `None` when the stream ended.
    pub async fn next_within(&mut self, limit: Duration) -> Option<SseItem> {
        within(limit, async {
            loop {
                if let Some(item) = self.parse_line() {
                    return Some(item);
                }
                if !self.fill().await {
                    return None;
                }
            }
        })
        .await
    }

    /// The next item within [`TIMEOUT`]; `None` when the stream ended.
    pub async fn next_item(&mut self) -> Option<SseItem> {
        self.next_within(TIMEOUT).await
    }

    /// The next event, skipping comments and hints; panics if the stream ends first.
    pub async fn next_event(&mut self) -> SseEvent {
        loop {
            match self.next_item().await {
                Some(SseItem::Event(event)) => return event,
                Some(_) => {}
                None => panic!("the stream ended before the next event"),
            }
        }
    }

    /// Reads until the stream ends, within [`TIMEOUT`], returning the events it still had.
    pub async fn until_end(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(item) = self.next_item().await {
            if let SseItem::Event(event) = item {
                events.push(event);
            }
        }
        events
    }

    /// Reads more of the body into the buffer; false at its end (or a broken connection).
    async fn fill(&mut self) -> bool {
        loop {
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                        return true;
                    }
                }
                Some(Err(_)) | None => return false,
            }
        }
    }

    /// Parses whole lines from the buffer until one completes an item.
    fn parse_line(&mut self) -> Option<SseItem> {
        loop {
            let end = self
                .buffer
                .iter()
                .position(|b| *b == b'\n' || *b == b'\r')?;
            // A `\r` at the end of the buffer may be the start of a `\r\n`: wait for more.
            let skip = match (self.buffer[end], self.buffer.get(end + 1)) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => return None,
                _ => 1,
            };
            let line: Vec<u8> = self.buffer.drain(..end + skip).take(end).collect();
            let line = String::from_utf8(line).expect("event streams are UTF-8");
            if let Some(item) = self.take_line(&line) {
                return Some(item);
            }
        }
    }

    /// Applies one line; returns the item it completes, if any.
    fn take_line(&mut self, line: &str) -> Option<SseItem> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.pending);
            return std::mem::take(&mut self.has_data).then_some(SseItem::Event(event));
        }
        if let Some(comment) = line.strip_prefix(':') {
            return Some(SseItem::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_owned(),
            ));
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => {
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.pending.event = Some(value.to_owned()),
            "id" => self.pending.id = Some(value.to_owned()),
            "retry" => return value.parse().ok().map(SseItem::Retry),
            _ => {}
        }
        None
    }
}
