//! The wire protocol, end to end against a real server on a loopback port: roles, refusals,
//! close codes and liveness.

use std::time::Duration;

use futures_util::SinkExt;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use wspubsub_server::protocol::{CloseCode, Role};
use wspubsub_server::{EventKind, Options};
use wspubsub_testkit::{
    TIMEOUT, TestServer, connect, expect_close, next_binary, send, try_connect, wait_for_event,
    within,
};

/// Sends a raw HTTP request and returns the whole response as text.
async fn raw_http(server: &TestServer, request: &str) -> String {
    wspubsub_testkit::raw_http(server.addr(), request.as_bytes()).await
}

fn upgrade_request(path: &str, extra_headers: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra_headers}Connection: close\r\n\r\n"
    )
}

#[tokio::test]
async fn round_trip_reaches_a_subscriber_that_joined_at_its_handshake() {
    let server = TestServer::start(Options::default()).await;
    let mut subscriber = connect(&server.url("/chat/room%201"), Role::Subscriber, None).await;
    // No waiting: the subscriber is registered before its handshake is answered.
    let mut publisher = connect(&server.url("/chat/room%201"), Role::Publisher, Some("pub")).await;
    send(&mut publisher, &b"hello"[..]).await;
    assert_eq!(next_binary(&mut subscriber).await, &b"hello"[..]);
    server.stop().await;
}

#[tokio::test]
async fn role_and_name_may_come_from_the_query_string() {
    let server = TestServer::start(Options::default()).await;
    let mut events = server.handle().events();
    let url = format!("{}?pubsub=subscriber&name=browser", server.url("/q"));
    let (mut subscriber, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect by query");
    let joined = wait_for_event(&mut events, |e| e.kind == EventKind::SubscriberJoined).await;
    assert_eq!(
        joined.topic, "/q",
        "the query string is not part of the topic"
    );
    assert!(
        joined
            .client_id
            .as_deref()
            .is_some_and(|id| id.starts_with("browser-"))
    );
    let mut publisher = connect(&server.url("/q"), Role::Publisher, None).await;
    send(&mut publisher, &b"via query"[..]).await;
    assert_eq!(next_binary(&mut subscriber).await, &b"via query"[..]);
}

#[tokio::test]
async fn bad_role_is_refused_with_400_and_a_one_line_body() {
    let server = TestServer::start(Options::default()).await;
    let mut events = server.handle().events();
    let response = raw_http(&server, &upgrade_request("/t", "pubsub: admin\r\n")).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).expect("a body");
    assert_eq!(body.lines().count(), 1, "one-line body: {body:?}");
    assert!(
        body.contains("publisher") && body.contains("subscriber"),
        "{body}"
    );
    let event = wait_for_event(&mut events, |e| e.kind == EventKind::BadHeaders).await;
    assert_eq!(event.topic, "/t");

    let missing = try_connect(&server.url("/t"), Role::Subscriber, None).await;
    assert!(missing.is_ok(), "control: a good role is accepted");
    let response = raw_http(&server, &upgrade_request("/t", "")).await;
    assert!(
        response.starts_with("HTTP/1.1 400"),
        "missing role: {response}"
    );
}

#[tokio::test]
async fn plain_http_get_is_refused_with_400() {
    let server = TestServer::start(Options::default()).await;
    let response = raw_http(
        &server,
        "GET /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response.contains("expected a WebSocket upgrade"),
        "{response}"
    );
}

#[tokio::test]
async fn wrong_websocket_version_gets_426() {
    let server = TestServer::start(Options::default()).await;
    let request =
        upgrade_request("/t", "pubsub: publisher\r\n").replace("Version: 13", "Version: 8");
    let response = raw_http(&server, &request).await;
    assert!(response.starts_with("HTTP/1.1 426"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{response}"
    );
}

#[tokio::test]
async fn text_frame_from_a_publisher_is_closed_with_1003() {
    let server = TestServer::start(Options::default()).await;
    let mut publisher = connect(&server.url("/t"), Role::Publisher, None).await;
    publisher
        .send(Message::text("not binary"))
        .await
        .expect("send text");
    assert_eq!(
        expect_close(&mut publisher).await,
        CloseCode::UnsupportedData.code()
    );
}

#[tokio::test]
async fn oversize_message_is_closed_with_1009_and_not_delivered() {
    let options = Options {
        max_message_size: 1024,
        subscriber_queue_bytes: 1 << 20,
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let mut subscriber = connect(&server.url("/t"), Role::Subscriber, None).await;
    let mut publisher = connect(&server.url("/t"), Role::Publisher, None).await;
    send(&mut publisher, vec![7u8; 1024]).await;
    send(&mut publisher, vec![8u8; 1025]).await;
    assert_eq!(
        expect_close(&mut publisher).await,
        CloseCode::MessageTooBig.code()
    );
    assert_eq!(
        next_binary(&mut subscriber).await.len(),
        1024,
        "the message at the limit passes"
    );
    // The oversize one never arrives: the next thing is our own marker.
    let mut other = connect(&server.url("/t"), Role::Publisher, None).await;
    send(&mut other, &b"marker"[..]).await;
    assert_eq!(next_binary(&mut subscriber).await, &b"marker"[..]);
}

#[tokio::test]
async fn peer_close_is_echoed_with_its_code() {
    let server = TestServer::start(Options::default()).await;
    let mut subscriber = connect(&server.url("/t"), Role::Subscriber, None).await;
    let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 4321.into(),
        reason: "bye".into(),
    };
    subscriber.close(Some(frame)).await.expect("send close");
    let echoed = within(TIMEOUT, futures_util::StreamExt::next(&mut subscriber)).await;
    match echoed {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 4321),
        other => panic!("expected the close echo, got {other:?}"),
    }
}

#[tokio::test]
async fn client_that_never_answers_pings_is_closed_with_4001() {
    let options = Options {
        pong_deadline: Duration::from_millis(300),
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let mut events = server.handle().events();
    // tokio-tungstenite answers pings only while it is read from: this client is not read.
    let mut silent = connect(&server.url("/t"), Role::Subscriber, Some("silent")).await;
    let left = wait_for_event(&mut events, |e| e.kind == EventKind::SubscriberLeft).await;
    assert!(
        left.detail.as_deref().is_some_and(|d| d.contains("4001")),
        "{left:?}"
    );
    assert_eq!(
        expect_close(&mut silent).await,
        CloseCode::PongTimeout.code()
    );
    assert_eq!(server.handle().topic_count(), 0);
}

#[tokio::test]
async fn client_that_answers_pings_stays_connected_past_the_deadline() {
    let options = Options {
        pong_deadline: Duration::from_millis(200),
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let mut subscriber = connect(&server.url("/t"), Role::Subscriber, None).await;
    // Reading answers pings. Read through several ping rounds: at least five pings must come
    // (so at least 5 x 140 ms passed, well beyond the 200 ms deadline) before any close.
    let mut pings = 0;
    while pings < 5 {
        match within(TIMEOUT, futures_util::StreamExt::next(&mut subscriber)).await {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("expected pings only, got {other:?}"),
        }
    }
    let mut publisher = connect(&server.url("/t"), Role::Publisher, None).await;
    send(&mut publisher, &b"still here"[..]).await;
    assert_eq!(next_binary(&mut subscriber).await, &b"still here"[..]);
}

#[tokio::test]
async fn garbage_bytes_leave_the_server_serving_others() {
    let server = TestServer::start(Options::default()).await;
    let mut subscriber = connect(&server.url("/t"), Role::Subscriber, None).await;

    // Garbage instead of HTTP: refused, connection closed.
    let garbage = [
        0x00, 0xff, 0x13, 0x37, b'\r', b'\n', 0xfe, b'\r', b'\n', b'\r', b'\n',
    ];
    let refused = wspubsub_testkit::raw_http(server.addr(), &garbage).await;
    assert!(
        refused.is_empty() || refused.starts_with("HTTP/1.1 400"),
        "{refused}"
    );
    let text = wspubsub_testkit::scrape(server.addr()).await;
    let name = "wspubsub_handshake_rejections_total{status=\"400\",reason=\"malformed_http\"}";
    assert_eq!(wspubsub_testkit::metric(&text, name), Some(1.0), "{text}");

    // Garbage after the upgrade: a protocol error, closed with 1002.
    let mut broken = connect(&server.url("/t"), Role::Publisher, None).await;
    broken
        .get_mut()
        .get_mut_tcp()
        .write_all(&[0x8f, 0x00, 0x01])
        .await
        .expect("write garbage");
    match within(TIMEOUT, futures_util::StreamExt::next(&mut broken)).await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), CloseCode::ProtocolError.code());
        }
        Some(Err(WsError::Protocol(_) | WsError::Io(_) | WsError::ConnectionClosed)) | None => {}
        other => panic!("expected a close after garbage, got {other:?}"),
    }

    let mut publisher = connect(&server.url("/t"), Role::Publisher, None).await;
    send(&mut publisher, &b"unharmed"[..]).await;
    assert_eq!(next_binary(&mut subscriber).await, &b"unharmed"[..]);
}

/// Gives access to the TCP stream under a raw client.
trait TcpAccess {
    fn get_mut_tcp(&mut self) -> &mut tokio::net::TcpStream;
}

impl TcpAccess for tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream> {
    fn get_mut_tcp(&mut self) -> &mut tokio::net::TcpStream {
        match self {
            tokio_tungstenite::MaybeTlsStream::Plain(stream) => stream,
            _ => panic!("tests use plain TCP"),
        }
    }
}
