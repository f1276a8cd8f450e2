//! The wire protocol, end to end against a real server on a loopback port: roles, refusals,
//! close codes and liveness.

use std::time::Duration;

use futures_util::SinkExt;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use wspubsub_server::protocol::{CloseCode, Role};
use wspubsub_server::{EventKind, Options};
use wspubsub_testkit::{
    RawAnswer, TIMEOUT, TestServer, connect, expect_close, next_binary, raw_answer, rejections,
    send, try_connect, upgrade_request, wait_for_event, within,
};

/// Sends a raw HTTP request and reads the answer.
async fn raw(server: &TestServer, request: &str) -> RawAnswer {
    raw_answer(server.addr(), request.as_bytes()).await
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
    let answer = raw(&server, &upgrade_request("/t", "pubsub: admin\r\n")).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    let body = answer.body;
    assert_eq!(body.lines().count(), 1, "one-line body: {body:?}");
    assert!(
        body.contains("publisher") && body.contains("subscriber"),
        "{body}"
    );
    let event = wait_for_event(&mut events, |e| e.kind == EventKind::BadHeaders).await;
    assert_eq!(event.topic, "/t");

    let missing = try_connect(&server.url("/t"), Role::Subscriber, None).await;
    assert!(missing.is_ok(), "control: a good role is accepted");
    let answer = raw(&server, &upgrade_request("/t", "")).await;
    assert_eq!(answer.status, 400, "missing role: {answer:?}");
}

#[tokio::test]
async fn plain_http_get_is_refused_with_400() {
    let server = TestServer::start(Options::default()).await;
    let answer = raw(
        &server,
        "GET /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(
        answer.body.contains("expected a WebSocket upgrade"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn wrong_websocket_version_gets_426() {
    let server = TestServer::start(Options::default()).await;
    let request =
        upgrade_request("/t", "pubsub: publisher\r\n").replace("Version: 13", "Version: 8");
    let answer = raw(&server, &request).await;
    assert_eq!(answer.status, 426, "{answer:?}");
    assert!(
        answer
            .head
            .to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{answer:?}"
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
        pong_deadline: Duration::from_millis(500),
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let mut subscriber = connect(&server.url("/t"), Role::Subscriber, None).await;
    // Reading answers pings. Read through several ping rounds: at least four pings must come
    // (so at least 4 x 350 ms passed, well beyond the 500 ms deadline) before any close.
    let mut pings = 0;
    while pings < 4 {
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
    let refused = raw_answer(server.addr(), &garbage).await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(rejections(server.addr(), 400, "malformed_http").await, 1.0);

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
        other => panic!("expected a 1002 close after garbage, got {other:?}"),
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

/// A subscriber's upgrade request whose request line is `request_line` and whose headers are
/// the good ones with `name` set to `value` (or left out, for `None`).
fn handshake(request_line: &str, name: &str, value: Option<&str>) -> String {
    let good = [
        ("Host", "localhost"),
        ("Connection", "keep-alive, Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("pubsub", "subscriber"),
    ];
    let mut request = format!("{request_line}\r\n");
    for (header, good) in good {
        let value = if header.eq_ignore_ascii_case(name) {
            value
        } else {
            Some(good)
        };
        if let Some(value) = value {
            request.push_str(&format!("{header}: {value}\r\n"));
        }
    }
    request + "\r\n"
}

/// What RFC 6455 (section 4.2.1) rejects is refused with 400, a one-line body that says what
/// was wrong, and the `bad_handshake` reason; tokens are case-insensitive and `Connection`
/// may be a list.
#[tokio::test]
async fn handshakes_rfc_6455_rejects_get_400_with_one_line() {
    let server = TestServer::start(Options::default()).await;
    let get = "GET /t HTTP/1.1";
    let refused = [
        (
            "a key that is not base64",
            handshake(get, "Sec-WebSocket-Key", Some("not a key!")),
            "Sec-WebSocket-Key",
        ),
        // 20 base64 characters: 15 bytes, not 16.
        (
            "a key of 15 bytes",
            handshake(get, "Sec-WebSocket-Key", Some("AAAAAAAAAAAAAAAAAAAA")),
            "Sec-WebSocket-Key",
        ),
        (
            "no key",
            handshake(get, "Sec-WebSocket-Key", None),
            "Sec-WebSocket-Key",
        ),
        (
            "HTTP/1.0",
            handshake("GET /t HTTP/1.0", "", None),
            "HTTP/1.1",
        ),
        ("POST", handshake("POST /t HTTP/1.1", "", None), "GET"),
        (
            "no Connection",
            handshake(get, "Connection", None),
            "Connection: upgrade",
        ),
        (
            "Connection without upgrade",
            handshake(get, "Connection", Some("keep-alive")),
            "Connection: upgrade",
        ),
    ];
    for (what, request, says) in &refused {
        let answer = raw(&server, request).await;
        assert_eq!(answer.status, 400, "{what}: {answer:?}");
        assert_eq!(answer.body.lines().count(), 1, "{what}: {answer:?}");
        assert!(answer.body.contains(says), "{what}: {answer:?}");
    }
    assert_eq!(
        rejections(server.addr(), 400, "bad_handshake").await,
        refused.len() as f64
    );

    let not_websocket = raw(&server, &handshake(get, "Upgrade", Some("h2c"))).await;
    assert_eq!(not_websocket.status, 400, "{not_websocket:?}");
    assert!(not_websocket.body.contains("expected a WebSocket upgrade"));
    assert_eq!(rejections(server.addr(), 400, "not_websocket").await, 1.0);

    for (name, value) in [
        ("Connection", "keep-alive, Upgrade"),
        ("Connection", "UPGRADE"),
        ("Upgrade", "WebSocket"),
    ] {
        let answer = raw(&server, &handshake(get, name, Some(value))).await;
        assert_eq!(answer.status, 101, "{name}: {value}: {answer:?}");
    }
}
