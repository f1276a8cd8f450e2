//! Test helpers shared by the workspace's integration tests: a real server on a free
//! loopback port ([`TestServer`]), raw protocol clients built on tokio-tungstenite (so tests
//! see exactly what goes over the wire), raw HTTP requests and metric scrapes, EventSource-style subscribers and plain HTTP requests, waits that are
//! always bounded by [`TIMEOUT`], token [`Signer`]s for auth tests, and real `nats-server`
//! processes for the cluster tests ([`NatsServer`], [`NatsCluster`]).
//!
//! Every helper panics with a clear message when its expectation fails: they are for tests.
#![allow(clippy::panic, clippy::expect_used)]

mod clients;
mod creds;
mod drain;
mod nats;
mod raw;
mod sse;
mod stream;
mod token;

pub use clients::{last_err, next_ok, self_signed, wait_for_left};
pub use creds::OperatorMode;
pub use drain::Drain;
pub use nats::{NatsCluster, NatsServer};
pub use raw::{
    RawAnswer, idle_connections, metric, raw_answer, raw_http, rejections, scrape, stalled_client,
    unread_subscriber, upgrade_request,
};
pub use sse::{EventStream, HttpAnswer, SseEvent, SseItem, http_request};
pub use stream::{PatternRead, StreamFrame, next_stream_frame, read_pattern};
pub use token::{Signer, now, p256};

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wspubsub_protocol::{CLIENT_NAME_HEADER, ROLE_HEADER, Role};
use wspubsub_server::{Event, Options, Server, ServerHandle};

/// The bound on every wait in a test: generous, so a loaded machine does not fail a test,
/// yet finite, so a hang fails instead of stalling CI.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A raw client socket, as tokio-tungstenite connects it.
pub type RawClient = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A wspubsub server running on 127.0.0.1 with a free port; shut down when dropped.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    handle: ServerHandle,
    run: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with `options` on 127.0.0.1, port 0.
    pub async fn start(options: Options) -> TestServer {
        TestServer::start_at("127.0.0.1:0", options).await
    }

    /// Starts a server with `options` on `addr` (the address of a server stopped before,
    /// to restart it).
    pub async fn start_at(addr: &str, options: Options) -> TestServer {
        let server = Server::bind(addr, options)
            .await
            .expect("bind a test server");
        let addr = server.local_addr().expect("test server address");
        let admin_addr = server
            .admin_addr()
            .map(|bound| bound.expect("admin listener address"));
        let handle = server.handle();
        let run = tokio::spawn(server.run());
        TestServer {
            addr,
            admin_addr,
            handle,
            run: Some(run),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the endpoints' own listener, when the options set `admin_addr`.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The `ws://` URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// The server's handle (topic count, events, shutdown).
    pub fn handle(&self) -> &ServerHandle {
        &self.handle
    }

    /// Shuts the server down and waits until `run` has returned.
    pub async fn stop(mut self) {
        self.handle.shutdown();
        if let Some(run) = self.run.take() {
            within(TIMEOUT, run).await.expect("server task panicked");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// Connects a raw client to `url` in `role`, optionally named.
pub async fn connect(url: &str, role: Role, name: Option<&str>) -> RawClient {
    try_connect(url, role, name)
        .await
        .expect("connect to the test server")
}

/// The HTTP status a handshake got: 101 when the client was admitted.
pub fn handshake_status(result: &Result<RawClient, WsError>) -> u16 {
    match result {
        Ok(_) => 101,
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP answer, got {other}"),
    }
}

/// The status and body of a refused handshake; panics, naming `what`, if it was not refused.
pub fn refusal(what: &str, result: Result<RawClient, WsError>) -> (u16, String) {
    match result {
        Err(WsError::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            (
                response.status().as_u16(),
                String::from_utf8_lossy(body).into_owned(),
            )
        }
        Ok(_) => panic!("{what}: expected a refusal, got an upgrade"),
        Err(other) => panic!("{what}: expected a refusal, got {other}"),
    }
}

/// Like [`connect`], but returns the handshake error instead of panicking.
pub async fn try_connect(url: &str, role: Role, name: Option<&str>) -> Result<RawClient, WsError> {
    let name = name.map(|name| (CLIENT_NAME_HEADER, name));
    try_connect_with(url, role, name.as_slice()).await
}

/// Connects a raw client to `url` in `role`, with these extra request headers (an `Origin`,
/// an `Authorization`, an `X-Forwarded-For`, ...); returns the handshake error if refused.
pub async fn try_connect_with(
    url: &str,
    role: Role,
    headers: &[(&str, &str)],
) -> Result<RawClient, WsError> {
    let mut request = url.into_client_request()?;
    let request_headers = request.headers_mut();
    request_headers.insert(ROLE_HEADER, HeaderValue::from_static(role.as_str()));
    for &(name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a header name");
        let value = HeaderValue::from_str(value).expect("a visible-ASCII header value");
        request_headers.append(name, value);
    }
    let (client, _response) = within(TIMEOUT, tokio_tungstenite::connect_async(request)).await?;
    Ok(client)
}

/// Sends one binary message.
pub async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut WebSocketStream<S>,
    message: impl Into<Bytes>,
) {
    within(TIMEOUT, client.send(Message::Binary(message.into())))
        .await
        .expect("send a message");
}

/// The next binary message, skipping control frames; panics on anything else.
pub async fn next_binary<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut WebSocketStream<S>,
) -> Bytes {
    next_binary_within(client, TIMEOUT).await
}

/// [`next_binary`], waiting up to `limit` (for waits known to be longer than [`TIMEOUT`]).
pub async fn next_binary_within<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut WebSocketStream<S>,
    limit: Duration,
) -> Bytes {
    // One bound for the whole wait: pings arrive more often than the limit, so a bound per
    // frame would wait forever for a message that never comes.
    within(limit, async {
        loop {
            match client.next().await {
                Some(Ok(Message::Binary(message))) => return message,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a binary message, got {other:?}"),
            }
        }
    })
    .await
}

/// Reads until the server's close frame, answers it, and returns its code and reason with
/// the binary messages read on the way.
pub async fn read_until_close<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut WebSocketStream<S>,
) -> (Vec<Bytes>, Option<(u16, String)>) {
    let mut messages = Vec::new();
    // One bound for the whole read, as in `next_binary`: pings alone never run out the clock.
    let close = within(TIMEOUT, async {
        loop {
            match client.next().await {
                Some(Ok(Message::Binary(message))) => messages.push(message),
                Some(Ok(Message::Close(frame))) => {
                    let close =
                        frame.map(|frame| (u16::from(frame.code), frame.reason.to_string()));
                    // Reading on sends our echo of the close, which completes the handshake.
                    let _ = tokio::time::timeout(TIMEOUT, client.next()).await;
                    return close;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("connection failed before a close frame: {error}"),
                None => panic!("connection ended without a close frame"),
            }
        }
    })
    .await;
    (messages, close)
}

/// Reads until the close frame and returns its code, failing on data in between.
pub async fn expect_close<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut WebSocketStream<S>,
) -> u16 {
    let (messages, close) = read_until_close(client).await;
    assert!(
        messages.is_empty(),
        "unexpected messages before the close: {}",
        messages.len()
    );
    close.expect("a close frame with a code").0
}

/// Waits for the first event that matches `wanted`, skipping others.
pub async fn wait_for_event(
    events: &mut broadcast::Receiver<Event>,
    wanted: impl Fn(&Event) -> bool,
) -> Event {
    within(TIMEOUT, async {
        loop {
            match events.recv().await {
                Ok(event) if wanted(&event) => return event,
                Ok(_) => {}
                Err(error) => panic!("event stream failed: {error}"),
            }
        }
    })
    .await
}

/// Awaits `future`, panicking if it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, future: F) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {limit:?}"),
    }
}

/// A fake server for what a real one never does (refuse oddly, go silent, vanish): binds
/// 127.0.0.1 on a free port, hands its first connection to `serve`, and returns the address.
pub async fn fake_server<F, Fut>(serve: F) -> SocketAddr
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a fake server");
    let addr = listener.local_addr().expect("fake server address");
    tokio::spawn(async move {
        if let Ok((stream, _)) = listener.accept().await {
            serve(stream).await;
        }
    });
    addr
}

/// An address on 127.0.0.1 where nothing listens (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().expect("address")
}

/// A WebSocket server that completes the handshake, then never reads again, so that pings
/// go unanswered: what a hung server looks like to a client.
pub async fn silent_server() -> SocketAddr {
    fake_server(|stream| async move {
        let _socket = tokio_tungstenite::accept_async(stream)
            .await
            .expect("handshake");
        std::future::pending::<()>().await;
    })
    .await
}

/// A WebSocket server that completes the handshake, then drops the TCP connection without a
/// close frame: what a crashed server looks like to a client.
pub async fn vanishing_server() -> SocketAddr {
    fake_server(|stream| async move {
        let socket = tokio_tungstenite::accept_async(stream)
            .await
            .expect("handshake");
        drop(socket.into_inner());
    })
    .await
}
