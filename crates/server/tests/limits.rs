//! Client and topic limits, refused before the upgrade with their status.

use tokio_tungstenite::tungstenite::Error as WsError;
use wspubsub_server::protocol::Role;
use wspubsub_server::{EventKind, Options};
use wspubsub_testkit::{
    RawClient, TestServer, connect, idle_connections, metric, raw_answer, raw_http, refusal,
    rejections, scrape, try_connect, try_connect_with, wait_for_event,
};

/// The HTTP status a refused handshake got.
fn refused_status(result: Result<RawClient, WsError>) -> u16 {
    refusal("a client over a limit", result).0
}

/// How many refusals `/metrics` counts with this status and rule.
async fn refusals(server: &TestServer, status: u16, rule: &str) -> f64 {
    rejections(server.addr(), status, rule).await
}

#[tokio::test]
async fn connection_limit_refuses_with_503_until_a_client_leaves() {
    let server = TestServer::start(Options {
        max_connections: 2,
        ..Options::default()
    })
    .await;
    let mut events = server.handle().events();
    let first = connect(&server.url("/a"), Role::Subscriber, None).await;
    let _second = connect(&server.url("/b"), Role::Publisher, None).await;
    assert_eq!(server.handle().connection_count(), 2);
    assert_eq!(
        refused_status(try_connect(&server.url("/c"), Role::Subscriber, None).await),
        503
    );
    assert_eq!(refusals(&server, 503, "max_connections").await, 1.0);
    drop(first);
    wait_for_event(&mut events, |e| e.kind == EventKind::SubscriberLeft).await;
    assert!(
        try_connect(&server.url("/c"), Role::Subscriber, None)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn per_address_limit_refuses_with_429() {
    let server = TestServer::start(Options {
        max_connections_per_ip: 1,
        ..Options::default()
    })
    .await;
    let _first = connect(&server.url("/a"), Role::Subscriber, None).await;
    assert_eq!(
        refused_status(try_connect(&server.url("/a"), Role::Publisher, None).await),
        429
    );
    assert_eq!(refusals(&server, 429, "max_connections_per_ip").await, 1.0);
}

/// A server allowing one client per address, believing `X-Forwarded-For` from `proxies`.
async fn one_client_per_address(proxies: &[&str]) -> TestServer {
    TestServer::start(Options {
        max_connections_per_ip: 1,
        trusted_proxies: proxies
            .iter()
            .map(|network| network.parse().expect("a network"))
            .collect(),
        ..Options::default()
    })
    .await
}

/// Connects a subscriber whose request names `client` in `X-Forwarded-For`.
async fn forwarded_for(server: &TestServer, client: &str) -> Result<RawClient, WsError> {
    let headers = [("x-forwarded-for", client)];
    try_connect_with(&server.url("/a"), Role::Subscriber, &headers).await
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_address_is_limited() {
    let server = one_client_per_address(&["127.0.0.0/8"]).await;
    let _first = forwarded_for(&server, "203.0.113.1")
        .await
        .expect("one client");
    let _second = forwarded_for(&server, "203.0.113.2")
        .await
        .expect("another client behind the same proxy");
    assert_eq!(
        refused_status(forwarded_for(&server, "203.0.113.1").await),
        429
    );
    // The client's own claims left of the proxy's hop are not believed.
    let spoofed = forwarded_for(&server, "198.51.100.7, 203.0.113.2").await;
    assert_eq!(refused_status(spoofed), 429);
}

#[tokio::test]
async fn forwarded_addresses_from_untrusted_peers_are_ignored() {
    let server = one_client_per_address(&[]).await;
    let _first = forwarded_for(&server, "203.0.113.1")
        .await
        .expect("one client");
    assert_eq!(
        refused_status(forwarded_for(&server, "203.0.113.2").await),
        429,
        "a claimed address does not make a second client"
    );
}

#[tokio::test]
async fn topic_and_subscriber_limits_refuse_with_503() {
    let options = Options {
        max_topics: 1,
        max_subscribers_per_topic: 1,
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let _subscriber = connect(&server.url("/a"), Role::Subscriber, None).await;
    assert_eq!(
        refused_status(try_connect(&server.url("/b"), Role::Publisher, None).await),
        503
    );
    assert_eq!(
        refused_status(try_connect(&server.url("/a"), Role::Subscriber, None).await),
        503
    );
    assert_eq!(refusals(&server, 503, "max_topics").await, 1.0);
    assert_eq!(
        refusals(&server, 503, "max_subscribers_per_topic").await,
        1.0
    );
    assert!(
        try_connect(&server.url("/a"), Role::Publisher, None)
            .await
            .is_ok(),
        "publishers are not capped"
    );
    assert_eq!(server.handle().topic_count(), 1);
}

#[tokio::test]
async fn browser_origins_outside_the_allowed_list_get_403() {
    let options = Options {
        allowed_origins: vec!["https://app.example.com".into(), "*.trusted.org".into()],
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let url = server.url("/t");
    let with_origin =
        async |origin: &str| try_connect_with(&url, Role::Subscriber, &[("origin", origin)]).await;
    assert!(with_origin("https://app.example.com").await.is_ok());
    assert!(with_origin("https://chat.trusted.org").await.is_ok());
    assert_eq!(
        refused_status(with_origin("https://evil.example.net").await),
        403
    );
    assert_eq!(refusals(&server, 403, "origin").await, 1.0);
    assert!(
        try_connect(&server.url("/t"), Role::Subscriber, None)
            .await
            .is_ok(),
        "no Origin: not a browser, allowed"
    );
}

#[tokio::test]
async fn oversized_request_heads_get_431_and_silent_connections_are_dropped() {
    use std::time::Duration;

    let options = Options {
        handshake_timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let huge = "x".repeat(20_000);
    let request = format!("GET /t HTTP/1.1\r\nHost: localhost\r\nX-Big: {huge}\r\n\r\n");
    let answer = raw_answer(server.addr(), request.as_bytes()).await;
    assert_eq!(answer.status, 431, "{answer:?}");
    assert_eq!(refusals(&server, 431, "header_too_large").await, 1.0);

    // Slowloris: send half a request line, then nothing; the server closes the connection
    // without a word (`raw_http` fails the test if it keeps the silent connection open).
    let slow = raw_http(server.addr(), b"GET /t HT").await;
    assert_eq!(slow, "", "no answer to half a request");
    let timeouts = metric(
        &scrape(server.addr()).await,
        "wspubsub_handshake_timeouts_total",
    );
    assert_eq!(timeouts, Some(1.0));
}

/// With `max_handshakes` connections idle before their request, the server takes no more:
/// a real client waits in the backlog instead of being served, and is served as soon as the
/// flood ends (within the handshake timeout, not after it).
#[tokio::test]
async fn a_flood_of_idle_connections_holds_newcomers_until_it_ends() {
    use std::time::Duration;

    const PERMITS: usize = 4;
    let handshake_timeout = wspubsub_testkit::TIMEOUT;
    let server = TestServer::start(Options {
        max_handshakes: PERMITS,
        handshake_timeout,
        ..Options::default()
    })
    .await;
    let flood = idle_connections(server.addr(), PERMITS * 2).await;
    let url = server.url("/t");
    let mut newcomer =
        tokio::spawn(async move { try_connect(&url, Role::Subscriber, None).await.is_ok() });
    // A bounded look, not a synchronisation: without the bound the newcomer is served at once.
    let early = tokio::time::timeout(Duration::from_millis(500), &mut newcomer).await;
    assert!(early.is_err(), "served during the flood: {early:?}");
    drop(flood);
    let served = wspubsub_testkit::within(handshake_timeout / 2, newcomer)
        .await
        .expect("the newcomer's task");
    assert!(served, "the newcomer was refused");
}

/// A flood that does not end is cut by the handshake timeout: permits come back, and a real
/// client behind twice as many idle connections as permits is served.
#[tokio::test]
async fn idle_connections_time_out_and_free_their_places() {
    use std::time::Duration;

    const PERMITS: usize = 2;
    let server = TestServer::start(Options {
        max_handshakes: PERMITS,
        handshake_timeout: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let flood = idle_connections(server.addr(), PERMITS * 2).await;
    // Two rounds of timeouts (0.6 s) free the way; the bound is generous for a loaded machine.
    let served = try_connect(&server.url("/t"), Role::Subscriber, None).await;
    assert!(served.is_ok(), "{:?}", served.err());
    assert_eq!(
        metric(
            &scrape(server.addr()).await,
            "wspubsub_handshake_timeouts_total"
        ),
        Some((PERMITS * 2) as f64),
        "every idle connection timed out"
    );
    drop(flood);
}

/// Upgraded clients give their handshake place back: with one place, clients still connect
/// one after another while the earlier ones stay; and the admin listener answers probes while
/// the main listener's only place is taken.
#[tokio::test]
async fn upgraded_clients_and_probes_do_not_use_up_handshake_places() {
    let server = TestServer::start(Options {
        max_handshakes: 1,
        admin_addr: Some("127.0.0.1:0".parse().expect("an address")),
        ..Options::default()
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect(&server.url("/t"), Role::Subscriber, None).await);
    }
    let _idle = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    let admin = server.admin_addr().expect("an admin listener");
    let health = raw_answer(
        admin,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(server.handle().connection_count(), clients.len());
}
