//! The publisher SDK against a real server (and a fake one for what a real server never does).

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use wspubsub_pubclient::{ClientError, ClientOptions, Publisher};
use wspubsub_server::protocol::{CLIENT_NAME_HEADER, CloseCode, ROLE_HEADER, Role};
use wspubsub_server::{EventKind, Options};
use wspubsub_testkit::{
    TIMEOUT, TestServer, closed_port, connect, fake_server, next_binary, silent_server,
    vanishing_server, wait_for_event, within,
};

#[tokio::test]
async fn published_messages_arrive_in_order_and_close_flushes_them_first() {
    let server = TestServer::start(Options::default()).await;
    let mut events = server.handle().events();
    let mut subscriber = connect(&server.url("/p"), Role::Subscriber, None).await;
    let options = ClientOptions::default().name("sdk");
    let publisher = Publisher::connect(&server.url("/p"), options)
        .await
        .expect("connect");
    let joined = wait_for_event(&mut events, |e| e.kind == EventKind::PublisherJoined).await;
    assert!(
        joined
            .client_id
            .as_deref()
            .is_some_and(|id| id.starts_with("sdk-")),
        "{joined:?}"
    );
    for n in 0..1000u32 {
        publisher
            .publish(n.to_be_bytes().to_vec())
            .await
            .expect("publish");
    }
    // Close right away: every message must still go out before the close frame.
    within(TIMEOUT, publisher.close())
        .await
        .expect("clean close");
    for n in 0..1000u32 {
        assert_eq!(
            next_binary(&mut subscriber).await,
            n.to_be_bytes().as_slice()
        );
    }
    let left = wait_for_event(&mut events, |e| e.kind == EventKind::PublisherLeft).await;
    assert!(
        left.detail.as_deref().is_some_and(|d| d.contains("1000")),
        "{left:?}"
    );
    assert!(matches!(
        publisher.publish(&b"late"[..]).await,
        Err(ClientError::Closed)
    ));
    assert!(publisher.error().is_none(), "a clean close is not an error");
}

#[tokio::test]
async fn oversize_message_ends_with_the_servers_1009() {
    let options = Options {
        max_message_size: 100,
        subscriber_queue_bytes: 1 << 20,
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let publisher = Publisher::connect(&server.url("/p"), ClientOptions::default())
        .await
        .expect("connect");
    publisher.publish(vec![0u8; 101]).await.expect("queued");
    let ended = within(TIMEOUT, publisher.done())
        .await
        .expect_err("closed by the server");
    assert_eq!(
        ended.close_code(),
        Some(CloseCode::MessageTooBig),
        "{ended}"
    );
    assert!(matches!(
        publisher.publish(&b"more"[..]).await,
        Err(ClientError::ServerClosed { code: 1009, .. })
    ));
}

#[tokio::test]
async fn server_shutdown_is_reported_as_going_away() {
    let server = TestServer::start(Options::default()).await;
    let publisher = Publisher::connect(&server.url("/p"), ClientOptions::default())
        .await
        .expect("connect");
    server.handle().shutdown();
    let ended = within(TIMEOUT, publisher.done())
        .await
        .expect_err("closed by the server");
    assert_eq!(ended.close_code(), Some(CloseCode::GoingAway));
}

#[tokio::test]
async fn refused_handshake_reports_status_and_body() {
    let addr = fake_server(|mut stream| async move {
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request).await;
        let body = "missing role\n";
        let response = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
    })
    .await;
    let refused = Publisher::connect(&format!("ws://{addr}/p"), ClientOptions::default()).await;
    match refused {
        Err(ClientError::HandshakeRejected { status, body }) => {
            assert_eq!(status, 400);
            assert_eq!(body, "missing role");
        }
        other => panic!("expected HandshakeRejected, got {other:?}"),
    }
}

#[tokio::test]
async fn unreachable_server_and_bad_urls_fail_clearly() {
    let addr = closed_port().await;
    let refused = Publisher::connect(&format!("ws://{addr}/p"), ClientOptions::default()).await;
    assert!(
        matches!(refused, Err(ClientError::Connect(_))),
        "{refused:?}"
    );
    let tls = Publisher::connect("wss://127.0.0.1:1/p", ClientOptions::default()).await;
    assert!(matches!(tls, Err(ClientError::InvalidUrl(_))), "{tls:?}");
    let garbage = Publisher::connect("not a url", ClientOptions::default()).await;
    assert!(
        matches!(garbage, Err(ClientError::InvalidUrl(_))),
        "{garbage:?}"
    );
}

#[tokio::test]
async fn silent_server_ends_with_pong_timeout() {
    let addr = silent_server().await;
    let options = ClientOptions::default().pong_deadline(Duration::from_millis(300));
    let publisher = Publisher::connect(&format!("ws://{addr}/p"), options)
        .await
        .expect("connect");
    let ended = within(TIMEOUT, publisher.done()).await;
    assert!(
        matches!(ended, Err(ClientError::PongTimeout(_))),
        "{ended:?}"
    );
}

#[tokio::test]
async fn vanished_server_is_a_lost_connection() {
    let addr = vanishing_server().await;
    let publisher = Publisher::connect(&format!("ws://{addr}/p"), ClientOptions::default())
        .await
        .expect("connect");
    let ended = within(TIMEOUT, publisher.done()).await;
    assert!(
        matches!(ended, Err(ClientError::ConnectionLost(_))),
        "{ended:?}"
    );
}

#[tokio::test]
async fn a_token_opens_a_server_with_auth_and_its_absence_is_a_401() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use wspubsub_server::AuthKey;

    let secret = b"client test secret";
    let options = Options {
        auth: Some(AuthKey::Hs256(secret.to_vec())),
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let claims = serde_json::json!({ "exp": exp, "publish": ["/p"] });
    let token = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("encode");

    let refused = Publisher::connect(&server.url("/p"), ClientOptions::default()).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::HandshakeRejected { status: 401, .. })
        ),
        "{refused:?}"
    );
    let publisher = Publisher::connect(&server.url("/p"), ClientOptions::default().token(token))
        .await
        .expect("admitted with the token");
    publisher
        .publish(&b"authorised"[..])
        .await
        .expect("publish");
    publisher.close().await.expect("clean close");
}

/// Accepts a WebSocket handshake on `stream`, keeping the request's headers.
// The callback's `Result` type (with its large error response) is tungstenite's, not ours.
#[allow(clippy::result_large_err)]
async fn accept_keeping_headers(stream: TcpStream) -> (WebSocketStream<TcpStream>, HeaderMap) {
    let mut headers = HeaderMap::new();
    let socket =
        tokio_tungstenite::accept_hdr_async(stream, |request: &Request, response: Response| {
            headers = request.headers().clone();
            Ok(response)
        })
        .await
        .expect("handshake");
    (socket, headers)
}

/// What a fake server saw of one publisher: its headers, its binary messages, and the code of
/// its close frame (None when the connection ended without one).
type Seen = (HeaderMap, Vec<Vec<u8>>, Option<u16>);

/// A fake server that records one publisher until its close frame (or the end of the
/// connection) and reports what it saw.
async fn recording_server() -> (std::net::SocketAddr, oneshot::Receiver<Seen>) {
    let (report, seen) = oneshot::channel();
    let addr = fake_server(|stream| async move {
        let (mut socket, headers) = accept_keeping_headers(stream).await;
        let mut messages = Vec::new();
        let close = loop {
            match socket.next().await {
                Some(Ok(Message::Binary(message))) => messages.push(message.to_vec()),
                Some(Ok(Message::Close(frame))) => break frame.map(|frame| u16::from(frame.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break None,
            }
        };
        // Reading on sends the echo of the close.
        while let Some(Ok(_)) = socket.next().await {}
        let _ = report.send((headers, messages, close));
    })
    .await;
    (addr, seen)
}

#[tokio::test]
async fn close_writes_every_message_before_the_close_frame_and_sends_the_headers() {
    let (addr, seen) = recording_server().await;
    let options = ClientOptions::default().name("pub-test").header(
        HeaderName::from_static("x-trace"),
        HeaderValue::from_static("t-1"),
    );
    let publisher = Publisher::connect(&format!("ws://{addr}/topic"), options)
        .await
        .expect("connect");
    // Sizes from tiny to larger than a socket buffer, so that writes back up on the way.
    let sent: Vec<Vec<u8>> = (0..600u32)
        .map(|n| {
            let mut message = n.to_be_bytes().to_vec();
            message.resize(4 + (n as usize % 7) * 3000, n as u8);
            message
        })
        .collect();
    for message in &sent {
        publisher.publish(message.clone()).await.expect("publish");
    }
    within(TIMEOUT, publisher.close())
        .await
        .expect("clean close");
    let (headers, received, close) = within(TIMEOUT, seen).await.expect("a report");
    assert_eq!(
        headers.get(ROLE_HEADER).map(HeaderValue::as_bytes),
        Some(&b"publisher"[..])
    );
    assert_eq!(
        headers.get(CLIENT_NAME_HEADER).map(HeaderValue::as_bytes),
        Some(&b"pub-test"[..])
    );
    assert_eq!(
        headers.get("x-trace").map(HeaderValue::as_bytes),
        Some(&b"t-1"[..])
    );
    assert_eq!(
        received.len(),
        sent.len(),
        "every message before the close frame"
    );
    assert!(received == sent, "same messages, same order");
    assert_eq!(close, Some(CloseCode::Normal.code()));
    assert!(matches!(publisher.done().await, Ok(())));
}

#[tokio::test]
async fn dropping_every_clone_closes_after_what_was_published() {
    let (addr, seen) = recording_server().await;
    let publisher = Publisher::connect(&format!("ws://{addr}/topic"), ClientOptions::default())
        .await
        .expect("connect");
    let clone = publisher.clone();
    publisher.publish(&b"one"[..]).await.expect("publish");
    clone.publish(&b"two"[..]).await.expect("publish");
    drop(publisher);
    clone.publish(&b"three"[..]).await.expect("publish");
    drop(clone);
    let (_, received, close) = within(TIMEOUT, seen).await.expect("a report");
    assert_eq!(received, [&b"one"[..], b"two", b"three"]);
    assert_eq!(close, Some(CloseCode::Normal.code()));
}

#[tokio::test]
async fn close_reports_a_server_that_closed_for_its_own_reason() {
    let addr = fake_server(|stream| async move {
        let (mut socket, _) = accept_keeping_headers(stream).await;
        // Take the one message, refuse it as too big, and finish the closing handshake.
        while !matches!(socket.next().await, Some(Ok(Message::Binary(_))) | None) {}
        let frame = CloseFrame {
            code: CloseCode::MessageTooBig.code().into(),
            reason: CloseCode::MessageTooBig.reason().into(),
        };
        let _ = socket.close(Some(frame)).await;
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
    let publisher = Publisher::connect(&format!("ws://{addr}/topic"), ClientOptions::default())
        .await
        .expect("connect");
    publisher.publish(vec![7u8; 100]).await.expect("queued");
    let closed = within(TIMEOUT, publisher.close()).await;
    match closed {
        Err(ref error @ ClientError::ServerClosed { code, .. }) => {
            assert_eq!(code, 1009);
            assert_eq!(error.close_code(), Some(CloseCode::MessageTooBig));
        }
        other => panic!("expected the server's 1009, got {other:?}"),
    }
}

#[tokio::test]
async fn a_backed_up_publisher_still_notices_a_silent_server() {
    // The server never reads: our writes back up and `publish` waits, yet the silence must
    // still end the connection instead of blocking forever.
    let addr = silent_server().await;
    let options = ClientOptions::default().pong_deadline(Duration::from_millis(500));
    let publisher = Publisher::connect(&format!("ws://{addr}/p"), options)
        .await
        .expect("connect");
    let flooding = publisher.clone();
    let flood = tokio::spawn(async move {
        let message = bytes::Bytes::from(vec![0u8; 64 << 10]);
        loop {
            if let Err(error) = flooding.publish(message.clone()).await {
                return error;
            }
        }
    });
    let ended = within(TIMEOUT, publisher.done()).await;
    assert!(
        matches!(ended, Err(ClientError::PongTimeout(_))),
        "{ended:?}"
    );
    let refused = within(TIMEOUT, flood).await.expect("flood task");
    assert!(
        matches!(refused, ClientError::PongTimeout(_)),
        "{refused:?}"
    );
}
