//! The plain-HTTP endpoints on the main listener (health, readiness, metrics), and the drain
//! that shutdown starts.

use wspubsub_server::EventKind;
use wspubsub_server::Options;
use wspubsub_server::protocol::Role;
use wspubsub_testkit::{
    TIMEOUT, TestServer, connect, metric, next_binary, send, try_connect, wait_for_event, within,
};

/// Sends a plain GET and returns the status line and body.
async fn get(server: &TestServer, path: &str) -> (String, String) {
    get_from(server.addr(), path).await
}

/// Sends a plain GET to `addr` and returns the status line and body.
async fn get_from(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let answer = wspubsub_testkit::raw_answer(addr, request.as_bytes()).await;
    let status = answer.head.lines().next().unwrap_or_default().to_owned();
    (status, answer.body.trim().to_owned())
}

#[tokio::test]
async fn healthz_and_readyz_answer_plain_gets() {
    let server = TestServer::start(Options::default()).await;
    assert_eq!(
        get(&server, "/healthz").await,
        ("HTTP/1.1 200 OK".into(), "ok".into())
    );
    assert_eq!(
        get(&server, "/readyz").await,
        ("HTTP/1.1 200 OK".into(), "ready".into())
    );
    let (status, _) = get(&server, "/elsewhere").await;
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    // A WebSocket client of /healthz is a subscriber of the topic /healthz.
    assert!(
        try_connect(&server.url("/healthz"), Role::Subscriber, None)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn draining_says_not_ready_refuses_new_clients_and_ends_when_clients_are_gone() {
    let server = TestServer::start(Options {
        close_deadline: TIMEOUT,
        ..Options::default()
    })
    .await;
    // Never read: it will not answer the 1001 close, so the drain waits for it.
    let stuck = connect(&server.url("/t"), Role::Subscriber, None).await;
    server.handle().shutdown();

    let (status, body) = get(&server, "/readyz").await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 503 Service Unavailable", "draining")
    );
    assert_eq!(
        get(&server, "/healthz").await.1,
        "ok",
        "still alive while draining"
    );
    let refused = try_connect(&server.url("/t"), Role::Publisher, None).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!("expected 503 during the drain, got {other:?}"),
    }

    // Once the last client is gone the drain ends, long before the 30 s close deadline.
    drop(stuck);
    within(TIMEOUT / 2, server.stop()).await;
}

#[tokio::test]
async fn metrics_count_a_known_workload() {
    let server = TestServer::start(Options::default()).await;
    let mut events = server.handle().events();
    let mut subscribers = vec![
        connect(&server.url("/m"), Role::Subscriber, None).await,
        connect(&server.url("/m"), Role::Subscriber, None).await,
    ];
    let mut publisher = connect(&server.url("/m"), Role::Publisher, None).await;
    for _ in 0..3 {
        send(&mut publisher, vec![7u8; 10]).await;
    }
    for subscriber in &mut subscribers {
        for _ in 0..3 {
            assert_eq!(next_binary(subscriber).await.len(), 10);
        }
    }
    let (status, _) = get(&server, "/no-such-endpoint").await;
    assert!(status.contains("400"));
    publisher.close(None).await.expect("close");
    wait_for_event(&mut events, |e| e.kind == EventKind::PublisherLeft).await;

    // Deliveries are counted right after each write returns: poll until the last one is in.
    let text = within(TIMEOUT, async {
        loop {
            let (_, text) = get(&server, "/metrics").await;
            if metric(&text, "wspubsub_messages_delivered_total") == Some(6.0) {
                return text;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    for (name, value) in [
        ("wspubsub_connections{role=\"subscriber\"}", 2.0),
        ("wspubsub_connections{role=\"publisher\"}", 0.0),
        ("wspubsub_topics", 1.0),
        ("wspubsub_messages_received_total", 3.0),
        ("wspubsub_bytes_received_total", 30.0),
        ("wspubsub_messages_delivered_total", 6.0),
        ("wspubsub_bytes_delivered_total", 72.0),
        ("wspubsub_closes_total{reason=\"peer_closed\"}", 1.0),
        (
            "wspubsub_handshake_rejections_total{status=\"400\",reason=\"not_websocket\"}",
            1.0,
        ),
    ] {
        assert_eq!(metric(&text, name), Some(value), "{name} in\n{text}");
    }
    assert!(
        metric(&text, "wspubsub_publish_to_write_seconds_count").is_some_and(|count| count >= 2.0)
    );
}

#[tokio::test]
async fn with_an_admin_address_the_endpoints_move_there() {
    let admin_addr = Some("127.0.0.1:0".parse().expect("address"));
    let server = wspubsub_server::Server::bind(
        "127.0.0.1:0",
        Options {
            admin_addr,
            ..Options::default()
        },
    )
    .await
    .expect("bind");
    let main = server.local_addr().expect("main address");
    let admin = server
        .admin_addr()
        .expect("admin listener")
        .expect("admin address");
    let handle = server.handle();
    let run = tokio::spawn(server.run());

    assert_eq!(get_from(admin, "/healthz").await.1, "ok");
    assert!(
        get_from(admin, "/metrics")
            .await
            .1
            .contains("wspubsub_topics")
    );
    assert!(
        get_from(admin, "/topic")
            .await
            .0
            .starts_with("HTTP/1.1 404")
    );
    assert!(
        get_from(main, "/healthz")
            .await
            .0
            .starts_with("HTTP/1.1 400"),
        "not on the topic listener"
    );
    let url = format!("ws://{main}/t");
    assert!(
        try_connect(&url, Role::Subscriber, None).await.is_ok(),
        "topics stay on the main listener"
    );

    handle.shutdown();
    within(TIMEOUT, run).await.expect("server task");
}
