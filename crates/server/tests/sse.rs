//! Server-Sent Events subscribers, end to end over a real HTTP client: the stream's headers
//! and `retry:` hint, payloads byte for byte in base64 and as text, resuming with
//! `Last-Event-ID`, `from=` and `since=`, the gap event, CORS, token auth, limits, heartbeats,
//! a stalled reader cut without slowing a fast one, and the end of the stream at a shutdown.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use tokio::io::AsyncReadExt;
use wspubsub_server::protocol::{Control, Role};
use wspubsub_server::{AuthKey, EventKind, Options, SlowSubscriber};
use wspubsub_testkit::{
    EventStream, Signer, SseEvent, SseItem, TIMEOUT, TestServer, connect, http_request, metric,
    now, scrape, send, stalled_client, wait_for_event, within,
};

/// Publishes each of `messages` to `path` over a WebSocket.
async fn publish(server: &TestServer, path: &str, messages: &[&[u8]]) {
    let mut publisher = connect(&server.url(path), Role::Publisher, None).await;
    for message in messages {
        send(&mut publisher, message.to_vec()).await;
    }
}

/// The payload of a base64 event.
fn decoded(event: &SseEvent) -> Vec<u8> {
    STANDARD
        .decode(&event.data)
        .expect("standard padded base64")
}

/// The next `count` events.
async fn events(stream: &mut EventStream, count: usize) -> Vec<SseEvent> {
    let mut events = Vec::with_capacity(count);
    for _ in 0..count {
        events.push(stream.next_event().await);
    }
    events
}

#[tokio::test]
async fn base64_events_carry_every_payload_byte_for_byte_with_increasing_ids() {
    let server = TestServer::start(Options::default()).await;
    let mut stream = EventStream::open(server.addr(), "/bin", &[]).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.headers["cache-control"], "no-cache");
    assert_eq!(stream.headers["x-accel-buffering"], "no");
    assert_eq!(stream.next_item().await, Some(SseItem::Retry(1000)));
    let all_bytes: Vec<u8> = (0..=255).collect();
    let messages: [&[u8]; 4] = [&all_bytes, b"", b"hello", &[0, 0, 10, 13]];
    publish(&server, "/bin", &messages).await;
    let received = events(&mut stream, messages.len()).await;
    for (event, message) in received.iter().zip(messages) {
        assert_eq!(event.event, None, "the default message type");
        assert_eq!(decoded(event), message);
    }
    let seqs: Vec<u64> = received.iter().map(SseEvent::seq).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    let head = http_request(
        server.addr(),
        Method::HEAD,
        "/bin",
        &[("accept", "text/event-stream")],
        "",
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-type"], "text/event-stream");
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn text_encoding_splits_lines_and_sends_other_bytes_as_binary_events() {
    let server = TestServer::start(Options::default()).await;
    let mut stream = EventStream::open(server.addr(), "/txt?encoding=text", &[]).await;
    publish(
        &server,
        "/txt",
        &[b"one\ntwo", b"", b"caf\xc3\xa9", b"\xff\xfe"],
    )
    .await;
    let received = events(&mut stream, 4).await;
    assert_eq!(received[0].data, "one\ntwo");
    assert_eq!(
        received[1].data, "",
        "an empty message is an empty data line"
    );
    assert_eq!(received[2].data, "café");
    assert_eq!(received[3].event.as_deref(), Some("binary"));
    assert_eq!(decoded(&received[3]), b"\xff\xfe");
    let bad = EventStream::open(server.addr(), "/txt?encoding=hex", &[]).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body().await.contains("encoding"));
}

#[tokio::test]
async fn last_event_id_resumes_with_nothing_lost_or_duplicated() {
    let server = TestServer::start(Options::default()).await;
    let mut first = EventStream::open(server.addr(), "/r", &[]).await;
    let payloads: Vec<Vec<u8>> = (0..8u8).map(|n| vec![n]).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    publish(&server, "/r", &refs[..5]).await;
    let seen = events(&mut first, 3).await;
    drop(first);
    publish(&server, "/r", &refs[5..]).await;
    let last = seen[2].id.clone().expect("an id");
    // The URL's own start (as EventSource keeps it) loses to Last-Event-ID.
    let mut resumed =
        EventStream::open(server.addr(), "/r?from=latest", &[("last-event-id", &last)]).await;
    let rest = events(&mut resumed, 5).await;
    let mut all: Vec<Vec<u8>> = seen.iter().map(decoded).collect();
    all.extend(rest.iter().map(decoded));
    assert_eq!(all, payloads);
    let seqs: Vec<u64> = seen.iter().chain(&rest).map(SseEvent::seq).collect();
    assert!(
        seqs.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "{seqs:?}"
    );
}

#[tokio::test]
async fn from_and_since_start_where_websocket_subscribers_do() {
    let server = TestServer::start(Options::default()).await;
    let before = now() * 1000 - 1000;
    let mut witness = EventStream::open(server.addr(), "/h", &[]).await;
    publish(&server, "/h", &[b"a", b"b", b"c"]).await;
    let seqs: Vec<u64> = events(&mut witness, 3)
        .await
        .iter()
        .map(SseEvent::seq)
        .collect();
    let mut earliest = EventStream::open(server.addr(), "/h?from=earliest", &[]).await;
    let got: Vec<Vec<u8>> = events(&mut earliest, 3).await.iter().map(decoded).collect();
    assert_eq!(got, [b"a", b"b", b"c"]);
    let from = format!("/h?from={}", seqs[1]);
    let mut middle = EventStream::open(server.addr(), &from, &[]).await;
    assert_eq!(middle.next_event().await.seq(), seqs[1]);
    let since = format!("/h?since={before}");
    let mut timed = EventStream::open(server.addr(), &since, &[]).await;
    assert_eq!(timed.next_event().await.seq(), seqs[0]);
    let bad = EventStream::open(server.addr(), "/h?from=yesterday", &[]).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn an_uncovered_position_is_a_gap_event_before_the_replay() {
    let options = Options {
        history_messages: 2,
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let mut witness = EventStream::open(server.addr(), "/g", &[]).await;
    publish(&server, "/g", &[b"1", b"2", b"3", b"4"]).await;
    let seqs: Vec<u64> = events(&mut witness, 4)
        .await
        .iter()
        .map(SseEvent::seq)
        .collect();
    // A raw WebSocket subscriber would get 416 here; an EventSource gets the gap.
    let path = format!("/g?from={}", seqs[0]);
    let mut stream = EventStream::open(server.addr(), &path, &[]).await;
    assert_eq!(stream.status, 200);
    let gap = stream.next_event().await;
    assert_eq!(gap.event.as_deref(), Some("gap"));
    assert_eq!(gap.id, None, "a gap moves no Last-Event-ID");
    assert_eq!(
        Control::from_json(&gap.data).expect("the gap JSON"),
        Control::Gap {
            topic: "/g".into(),
            from: seqs[0],
            to: seqs[2],
            reason: "history_evicted".into(),
        }
    );
    let replayed: Vec<Vec<u8>> = events(&mut stream, 2).await.iter().map(decoded).collect();
    assert_eq!(replayed, [b"3", b"4"]);
}

#[tokio::test]
async fn cors_allows_configured_origins_and_answers_preflights() {
    let options = Options {
        allowed_origins: vec!["https://app.test".into()],
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let allowed = EventStream::open(server.addr(), "/c", &[("origin", "https://app.test")]).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "https://app.test"
    );
    assert_eq!(allowed.headers["vary"], "origin");
    let refused = EventStream::open(server.addr(), "/c", &[("origin", "https://evil.test")]).await;
    assert_eq!(refused.status, 403);
    assert!(!refused.headers.contains_key("access-control-allow-origin"));
    let answered = preflight(&server, "https://app.test").await;
    assert_eq!(answered.status, 204);
    assert_eq!(
        answered.headers["access-control-allow-origin"],
        "https://app.test"
    );
    let methods = answered.headers["access-control-allow-methods"]
        .to_str()
        .expect("ASCII");
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    assert_eq!(
        answered.headers["access-control-allow-headers"],
        "authorization"
    );
    assert_eq!(preflight(&server, "https://evil.test").await.status, 403);

    let open = TestServer::start(Options::default()).await;
    let any = EventStream::open(open.addr(), "/c", &[("origin", "https://any.test")]).await;
    assert_eq!(any.headers["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn a_token_in_the_query_is_checked_like_a_websocket_subscribers() {
    let secret = b"sse secret";
    let options = Options {
        auth: Some(AuthKey::Hs256(secret.to_vec())),
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let signer = Signer::hs256(secret);
    let missing = EventStream::open(server.addr(), "/news", &[]).await;
    assert_eq!(missing.status, 401);
    let other = signer.token(now() + 60, &[], &["/other"]);
    let forbidden = EventStream::open(server.addr(), &format!("/news?token={other}"), &[]).await;
    assert_eq!(forbidden.status, 403);
    let publishing_only = signer.token(now() + 60, &["/news"], &[]);
    let wrong_role = EventStream::open(
        server.addr(),
        &format!("/news?token={publishing_only}"),
        &[],
    )
    .await;
    assert_eq!(wrong_role.status, 403);
    let good = signer.token(now() + 60, &["/news"], &["/news"]);
    let mut stream = EventStream::open(server.addr(), &format!("/news?token={good}"), &[]).await;
    assert_eq!(stream.status, 200);
    let mut publisher = wspubsub_testkit::try_connect_with(
        &server.url("/news"),
        Role::Publisher,
        &[("authorization", &format!("Bearer {good}"))],
    )
    .await
    .expect("an authorized publisher");
    send(&mut publisher, &b"authorized"[..]).await;
    assert_eq!(decoded(&stream.next_event().await), b"authorized");
}

#[tokio::test]
async fn subscriber_limits_count_event_streams_and_metrics_name_them_sse() {
    let options = Options {
        max_subscribers_per_topic: 1,
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let first = EventStream::open(server.addr(), "/l", &[]).await;
    assert_eq!(first.status, 200);
    let second = EventStream::open(server.addr(), "/l", &[]).await;
    assert_eq!(second.status, 503);
    let gauge = "wspubsub_connections{role=\"sse\"}";
    assert_eq!(metric(&scrape(server.addr()).await, gauge), Some(1.0));
    let mut events = server.handle().events();
    drop(first);
    wait_for_event(&mut events, |event| event.kind == EventKind::SubscriberLeft).await;
    assert_eq!(metric(&scrape(server.addr()).await, gauge), Some(0.0));
}

#[tokio::test]
async fn a_quiet_stream_gets_heartbeats_at_the_ping_interval() {
    let options = Options {
        pong_deadline: Duration::from_millis(300),
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let mut stream = EventStream::open(server.addr(), "/quiet", &[]).await;
    assert_eq!(stream.next_item().await, Some(SseItem::Retry(1000)));
    let started = tokio::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(
            stream.next_item().await,
            Some(SseItem::Comment("ping".into()))
        );
    }
    // Three pings at 210 ms apart; generous above, exact below.
    assert!(started.elapsed() >= Duration::from_millis(3 * 210 - 50));
}

#[tokio::test]
async fn a_stalled_reader_is_cut_as_slow_while_a_fast_one_gets_everything() {
    let options = Options {
        write_timeout: Duration::from_secs(1),
        subscriber_queue_bytes: 1 << 20,
        slow_subscriber: SlowSubscriber::Hold,
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    // A stalled browser tab: it reads nothing after the answer's head.
    let request = "GET /s HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n";
    let mut stalled = stalled_client(server.addr(), request, "HTTP/1.1 200").await;
    let mut events = server.handle().events();
    let mut fast = EventStream::open(server.addr(), "/s", &[]).await;
    const COUNT: usize = 3000;
    let message = vec![7u8; 4096];
    let publishing = {
        let url = server.url("/s");
        let message = message.clone();
        tokio::spawn(async move {
            let mut publisher = connect(&url, Role::Publisher, None).await;
            for _ in 0..COUNT {
                send(&mut publisher, message.clone()).await;
            }
        })
    };
    let mut previous = None;
    for _ in 0..COUNT {
        let event = fast.next_event().await;
        assert_eq!(decoded(&event), message);
        if let Some(previous) = previous {
            assert_eq!(event.seq(), previous + 1);
        }
        previous = Some(event.seq());
    }
    within(TIMEOUT, publishing).await.expect("published");
    let left = wait_for_event(&mut events, |event| event.kind == EventKind::SubscriberLeft).await;
    let why = left.detail.unwrap_or_default();
    assert!(why.contains("took no bytes for the write timeout"), "{why}");
    let closes = "wspubsub_closes_total{reason=\"slow_subscriber\"}";
    assert_eq!(metric(&scrape(server.addr()).await, closes), Some(1.0));
    // The stalled reader's connection is dropped: reading it now ends.
    let mut rest = Vec::new();
    let _reset_or_end = within(TIMEOUT, stalled.read_to_end(&mut rest)).await;
    assert!(
        rest.len() < COUNT * message.len(),
        "it never got everything"
    );
}

/// An `OPTIONS` preflight of a page of `origin` that wants to POST with `Authorization`.
async fn preflight(server: &TestServer, origin: &str) -> wspubsub_testkit::HttpAnswer {
    let headers = [
        ("origin", origin),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "authorization"),
    ];
    http_request(server.addr(), Method::OPTIONS, "/c", &headers, "").await
}

#[tokio::test]
async fn a_shutdown_delivers_what_was_taken_then_ends_the_stream() {
    let server = TestServer::start(Options::default()).await;
    let mut stream = EventStream::open(server.addr(), "/d", &[]).await;
    publish(&server, "/d", &[b"last words"]).await;
    assert_eq!(decoded(&stream.next_event().await), b"last words");
    server.handle().shutdown();
    assert_eq!(
        stream.until_end().await,
        Vec::new(),
        "nothing more, and the end"
    );
    server.stop().await;
}

#[tokio::test]
async fn in_cluster_mode_a_post_on_one_node_reaches_event_streams_on_another_and_resumes() {
    let nats = wspubsub_testkit::NatsServer::start().await;
    let node = || async {
        let options = Options {
            nats_url: Some(nats.url()),
            ..Options::default()
        };
        TestServer::start(options).await
    };
    let (reading, publishing) = (node().await, node().await);
    let mut stream = EventStream::open(reading.addr(), "/cluster", &[]).await;
    assert_eq!(stream.status, 200);
    let mut seqs = Vec::new();
    for payload in [&b"one"[..], b"two"] {
        let answer = http_request(
            publishing.addr(),
            Method::POST,
            "/cluster",
            &[],
            payload.to_vec(),
        )
        .await;
        assert_eq!(answer.status, 202, "{answer:?}");
        let event = stream.next_event().await;
        assert_eq!(decoded(&event), payload);
        assert_eq!(
            String::from_utf8_lossy(&answer.body),
            format!("{{\"seq\":{}}}", event.seq()),
            "the stream's position, the same on every node"
        );
        seqs.push(event.seq());
    }
    // EventSource reconnecting to the other node resumes there.
    let last = seqs[0].to_string();
    let mut resumed =
        EventStream::open(publishing.addr(), "/cluster", &[("last-event-id", &last)]).await;
    let event = resumed.next_event().await;
    assert_eq!((event.seq(), decoded(&event)), (seqs[1], b"two".to_vec()));
}
