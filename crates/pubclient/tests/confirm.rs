//! The stream-mode publisher against a real server: acknowledgements, a close that waits
//! for them, and reconnects that re-send what was not acknowledged (at-least-once).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use wspubsub_netfault::Proxy;
use wspubsub_pubclient::{ClientError, ClientOptions, Publisher, PublisherOptions, Reconnect};
use wspubsub_server::Options;
use wspubsub_server::protocol::{Role, STREAM_SUBPROTOCOL};
use wspubsub_testkit::{TestServer, connect, fake_server, next_binary, within};

/// A server whose history holds every message these tests publish.
async fn roomy_server() -> TestServer {
    TestServer::start(Options {
        history_messages: 20_000,
        ..Options::default()
    })
    .await
}

/// The numbers (4 little-endian bytes each) `server` holds in the history of `path`.
async fn stored_numbers(server: &TestServer, path: &str, count: usize) -> Vec<u32> {
    let url = server.url(&format!("{path}?from=earliest"));
    let mut reader = connect(&url, Role::Subscriber, None).await;
    let mut numbers = Vec::with_capacity(count);
    for _ in 0..count {
        let message = next_binary(&mut reader).await;
        let bytes: [u8; 4] = message.as_ref().try_into().expect("4 bytes");
        numbers.push(u32::from_le_bytes(bytes));
    }
    numbers
}

fn quick_reconnect() -> PublisherOptions {
    PublisherOptions::default().reconnect(Reconnect::new(
        Duration::from_millis(10),
        Duration::from_millis(200),
    ))
}

#[tokio::test]
async fn a_confirmed_message_is_in_history() {
    let server = roomy_server().await;
    let publisher = Publisher::connect_stream(
        &server.url("/confirmed"),
        ClientOptions::default(),
        PublisherOptions::default(),
    )
    .await
    .expect("connect");
    for n in 0..50u32 {
        publisher
            .publish_confirmed(n.to_le_bytes().to_vec())
            .await
            .expect("acknowledged");
    }
    assert_eq!(
        stored_numbers(&server, "/confirmed", 50).await,
        (0..50).collect::<Vec<u32>>()
    );
    publisher.close().await.expect("clean close");
}

#[tokio::test]
async fn close_returns_once_every_message_is_acknowledged() {
    let server = roomy_server().await;
    let publisher = Publisher::connect_stream(
        &server.url("/closing"),
        ClientOptions::default(),
        PublisherOptions::default().max_unacked(100, 1 << 20),
    )
    .await
    .expect("connect");
    for n in 0..5000u32 {
        publisher
            .publish(n.to_le_bytes().to_vec())
            .await
            .expect("queued");
    }
    publisher.close().await.expect("every message acknowledged");
    assert_eq!(
        stored_numbers(&server, "/closing", 5000).await,
        (0..5000).collect::<Vec<u32>>()
    );
}

#[tokio::test]
async fn resets_are_survived_by_resending_what_was_not_acknowledged() {
    let server = roomy_server().await;
    let proxy = Proxy::start(server.addr()).await.expect("proxy");
    let publisher = Publisher::connect_stream(
        &format!("ws://{}/resent", proxy.addr()),
        ClientOptions::default(),
        quick_reconnect(),
    )
    .await
    .expect("connect");
    let mut resets = 0;
    for n in 0..3000u32 {
        publisher
            .publish(n.to_le_bytes().to_vec())
            .await
            .expect("queued");
        if n % 1000 == 500 {
            // Wait for a connection to break: one that is up and has taken messages.
            publisher.flush().await.expect("written");
            resets += proxy.reset();
        }
    }
    publisher
        .close()
        .await
        .expect("every message acknowledged in the end");
    assert!(resets >= 1, "the resets hit live connections");
    // At-least-once: every message is stored, in order, some perhaps twice.
    let stored = {
        let url = server.url("/resent?from=earliest");
        let mut reader = connect(&url, Role::Subscriber, None).await;
        let mut stored = Vec::new();
        while stored.last() != Some(&2999) {
            let message = next_binary(&mut reader).await;
            let bytes: [u8; 4] = message.as_ref().try_into().expect("4 bytes");
            stored.push(u32::from_le_bytes(bytes));
        }
        stored
    };
    let mut first_seen = stored.clone();
    let mut seen = std::collections::HashSet::new();
    first_seen.retain(|n| seen.insert(*n));
    assert_eq!(first_seen, (0..3000).collect::<Vec<u32>>());
    assert!(
        stored.len() - first_seen.len() <= resets * quick_reconnect_window(),
        "{} repeats",
        stored.len() - first_seen.len()
    );
}

/// The most messages one break can make a publisher send twice: its unacknowledged bound.
fn quick_reconnect_window() -> usize {
    wspubsub_pubclient::DEFAULT_MAX_UNACKED_MESSAGES
}

/// Accepts a WebSocket connection in stream mode, as a wspubsub server would.
#[expect(
    clippy::result_large_err,
    reason = "the callback's error type is tungstenite's"
)]
async fn accept_stream(stream: TcpStream) -> Option<WebSocketStream<TcpStream>> {
    let offer = |_: &Request, mut response: Response| {
        response.headers_mut().insert(
            "sec-websocket-protocol",
            STREAM_SUBPROTOCOL.parse().expect("header value"),
        );
        Ok(response)
    };
    tokio_tungstenite::accept_hdr_async(stream, offer)
        .await
        .ok()
}

#[tokio::test]
async fn what_a_broken_connection_left_unacknowledged_is_sent_again_first() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    // The first connection takes two messages and breaks without acknowledging them; the
    // second acknowledges everything and reports what it got.
    let server = tokio::spawn(async move {
        let (first, _) = listener.accept().await.expect("first connection");
        let mut first = accept_stream(first).await.expect("handshake");
        for _ in 0..2 {
            first.next().await.expect("a message").expect("a message");
        }
        drop(first);
        let (second, _) = listener.accept().await.expect("second connection");
        let mut second = accept_stream(second).await.expect("handshake");
        let mut got = Vec::new();
        while got.len() < 3 {
            let Some(Ok(WsMessage::Binary(message))) = second.next().await else {
                panic!("expected a message");
            };
            got.push(message);
            let ack = format!(
                r#"{{"type":"ack","count":{},"seq":{}}}"#,
                got.len(),
                got.len()
            );
            second.send(WsMessage::text(ack)).await.expect("ack");
        }
        got
    });
    let publisher = Publisher::connect_stream(
        &format!("ws://{addr}/again"),
        ClientOptions::default(),
        quick_reconnect(),
    )
    .await
    .expect("connect");
    publisher.publish(&b"one"[..]).await.expect("queued");
    publisher.publish(&b"two"[..]).await.expect("queued");
    within(
        Duration::from_secs(30),
        publisher.publish_confirmed(&b"three"[..]),
    )
    .await
    .expect("acknowledged by the second connection");
    let got = within(Duration::from_secs(30), server)
        .await
        .expect("server");
    assert_eq!(got, [&b"one"[..], &b"two"[..], &b"three"[..]]);
}

#[tokio::test]
async fn without_a_policy_a_break_fails_what_was_not_acknowledged() {
    // A server that accepts stream mode and never acknowledges anything.
    let addr = fake_server(|stream| async move {
        let Some(mut socket) = accept_stream(stream).await else {
            return;
        };
        // Take one message, then vanish.
        let _first = socket.next().await;
    })
    .await;
    let publisher = Publisher::connect_stream(
        &format!("ws://{addr}/never"),
        ClientOptions::default(),
        PublisherOptions::default(),
    )
    .await
    .expect("connect");
    let confirmed = within(
        Duration::from_secs(30),
        publisher.publish_confirmed(&b"lost?"[..]),
    )
    .await;
    assert!(
        matches!(confirmed, Err(ClientError::ConnectionLost(_))),
        "{confirmed:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_acknowledges_fails_the_close() {
    let addr = fake_server(|stream| async move {
        let Some(mut socket) = accept_stream(stream).await else {
            return;
        };
        // Reads (and answers pings) without ever acknowledging.
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
    let options = ClientOptions::default().write_timeout(Duration::from_millis(300));
    let publisher = Publisher::connect_stream(
        &format!("ws://{addr}/silent"),
        options,
        PublisherOptions::default(),
    )
    .await
    .expect("connect");
    for _ in 0..3 {
        publisher.publish(&b"x"[..]).await.expect("queued");
    }
    let closed = within(Duration::from_secs(30), publisher.close()).await;
    assert!(
        matches!(closed, Err(ClientError::Unacknowledged { messages: 3 })),
        "{closed:?}"
    );
}

#[tokio::test]
async fn a_raw_publisher_has_no_acknowledgements() {
    let server = TestServer::start(Options::default()).await;
    let publisher = Publisher::connect(&server.url("/raw"), ClientOptions::default())
        .await
        .expect("connect");
    let refused = publisher.publish_confirmed(&b"x"[..]).await;
    assert!(matches!(refused, Err(ClientError::NoAcks)), "{refused:?}");
}

#[tokio::test]
async fn the_confirmed_publisher_example_stores_every_message_before_it_exits() {
    let server = roomy_server().await;
    // Cargo builds the examples next to the test binaries' directory.
    let example = std::env::current_exe()
        .expect("test binary")
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target directory")
        .join("examples/publisher_confirmed");
    let output = tokio::process::Command::new(example)
        .env("PUBSUB_URL", server.url("/example"))
        .output();
    let output = within(Duration::from_secs(60), output)
        .await
        .expect("run the example");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "all messages stored\n"
    );
    let url = server.url("/example?from=earliest");
    let mut reader = connect(&url, Role::Subscriber, None).await;
    assert_eq!(next_binary(&mut reader).await, &b"first"[..]);
    for n in 0..1000 {
        assert_eq!(
            next_binary(&mut reader).await,
            format!("message {n}").as_bytes()
        );
    }
}
