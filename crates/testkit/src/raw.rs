//! Raw HTTP against a server: requests written byte for byte, answers read as the server
//! sent them, and the metrics it exposes.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use wspubsub_protocol::{ROLE_HEADER, Role};

use crate::{TIMEOUT, within};

/// An upgrade request for `path` (role and other headers in `extra_headers`, each ending in
/// `\r\n`) with a valid key and version, that asks the server to close after answering.
pub fn upgrade_request(path: &str, extra_headers: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra_headers}Connection: close\r\n\r\n"
    )
}

/// Sends raw `request` bytes to `addr` and returns everything the server answers until it
/// closes the connection (lossily as text).
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write the request");
    let mut response = Vec::new();
    // A reset after the answer still leaves the answer in `response`.
    let _ended = within(TIMEOUT, stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// `count` TCP connections to `addr` that never send a byte: a flood of idle connections.
pub async fn idle_connections(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut flood = Vec::with_capacity(count);
    for _ in 0..count {
        let stream = within(TIMEOUT, TcpStream::connect(addr)).await;
        flood.push(stream.expect("the kernel takes the connection"));
    }
    flood
}

/// One HTTP answer, as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAnswer {
    /// The status code of the status line.
    pub status: u16,
    /// The status line and headers, without the blank line.
    pub head: String,
    /// The body (empty after a 101).
    pub body: String,
}

/// Sends raw `request` bytes to `addr` and reads one answer: its head, then its body by
/// `Content-Length` or to the end of the connection (none after a 101, whose connection
/// stays open). Panics if the connection ends before a whole status line and head: an empty
/// answer is never taken for a status.
pub async fn raw_answer(addr: SocketAddr, request: &[u8]) -> RawAnswer {
    within(TIMEOUT, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request).await.expect("write the request");
        let mut bytes = Vec::new();
        let head_end = loop {
            if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => panic!(
                    "the connection ended before a whole answer: {:?}",
                    String::from_utf8_lossy(&bytes)
                ),
                Ok(read) => bytes.extend_from_slice(&chunk[..read]),
            }
        };
        let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP status line: {head:?}"));
        let mut body = bytes.split_off(head_end + 4);
        if status != 101 {
            match content_length(&head) {
                Some(length) => {
                    let missing = length.saturating_sub(body.len());
                    let mut rest = vec![0u8; missing];
                    stream.read_exact(&mut rest).await.expect("the whole body");
                    body.extend_from_slice(&rest);
                }
                // A reset after the answer still leaves the answer in `body`.
                None => drop(stream.read_to_end(&mut body).await),
            }
        }
        RawAnswer {
            status,
            head,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    })
    .await
}

/// The `Content-Length` of an answer's head, if it has one.
fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// Fetches `GET /metrics` from `addr` and returns the exposition text (the body).
pub async fn scrape(addr: SocketAddr) -> String {
    let request = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let answer = raw_answer(addr, request).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body
}

/// The value of the metric line that starts with `name` (labels included), if present.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// How many handshakes the server at `addr` refused with `status` for `reason`, by its
/// `/metrics` (0 when the series does not exist yet).
pub async fn rejections(addr: SocketAddr, status: u16, reason: &str) -> f64 {
    let name =
        format!("wspubsub_handshake_rejections_total{{status=\"{status}\",reason=\"{reason}\"}}");
    metric(&scrape(addr).await, &name).unwrap_or(0.0)
}

/// A subscriber of `path` that reads nothing after its 101: its receive buffer is tiny (which
/// turns the kernel's autotuning off), so that what it does not read stays on the server, the
/// way a stalled client's would.
pub async fn unread_subscriber(addr: SocketAddr, path: &str) -> TcpStream {
    let role = format!("{ROLE_HEADER}: {}\r\n", Role::Subscriber.as_str());
    stalled_client(addr, &upgrade_request(path, &role), "HTTP/1.1 101").await
}

/// A client that sends `request`, reads the answer's head (which must start with `status`,
/// such as `HTTP/1.1 200`) and then nothing more, with a tiny receive buffer: a stalled
/// subscriber, over a WebSocket or an event stream.
pub async fn stalled_client(addr: SocketAddr, request: &str, status: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let mut stream = within(TIMEOUT, socket.connect(addr))
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("request");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(within(TIMEOUT, stream.read_u8()).await.expect("the answer"));
    }
    assert!(
        head.starts_with(status.as_bytes()),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}
