//! Pattern subscriptions, end to end: a subscriber of `/chat/*` or `/sensors/**` gets every
//! matching topic's messages, of topics that exist and of topics created later, each topic in
//! its order; stream mode and SSE name each message's topic; publishing to a pattern, starting
//! a pattern anywhere but the latest message, and a token that does not cover the whole
//! pattern are refused; `%2A` is a literal star.

use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::Method;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use wspubsub_server::protocol::{Control, ROLE_HEADER, Role, STREAM_SUBPROTOCOL};
use wspubsub_server::{AuthKey, Event, EventKind, Options};
use wspubsub_testkit::{
    EventStream, RawClient, Signer, StreamFrame, TIMEOUT, TestServer, connect, http_request,
    next_binary, next_stream_frame, now, read_pattern, refusal, send, try_connect,
    try_connect_with, wait_for_event, within,
};

/// `count` messages `<topic>#<n>` for n in 0..count.
fn numbered(topic: &str, count: usize) -> Vec<Bytes> {
    (0..count)
        .map(|n| Bytes::from(format!("{topic}#{n}")))
        .collect()
}

/// The messages of `received` grouped by the topic their text names, in arrival order.
fn by_topic(received: &[Bytes]) -> BTreeMap<String, Vec<Bytes>> {
    let mut topics: BTreeMap<String, Vec<Bytes>> = BTreeMap::new();
    for message in received {
        let text = String::from_utf8_lossy(message);
        let topic = text.split('#').next().unwrap_or_default().to_owned();
        topics.entry(topic).or_default().push(message.clone());
    }
    topics
}

/// Publishes `messages` in turn over the publishers given, one message each round.
async fn interleave(publishers: &mut [(&mut RawClient, Vec<Bytes>)]) {
    let rounds = publishers.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
    for round in 0..rounds {
        for (publisher, messages) in publishers.iter_mut() {
            if let Some(message) = messages.get(round) {
                send(publisher, message.clone()).await;
            }
        }
    }
}

fn left(kind: EventKind) -> impl Fn(&Event) -> bool {
    move |event| event.kind == kind
}

#[tokio::test]
async fn a_pattern_follows_existing_and_new_topics_each_in_order_and_nothing_else() {
    let server = TestServer::start(Options::default()).await;
    let mut on_a = connect(&server.url("/chat/a"), Role::Publisher, None).await;
    let mut follower = connect(&server.url("/chat/*"), Role::Subscriber, None).await;
    // Created after the pattern subscriber came: followed from its first message.
    let mut on_b = connect(&server.url("/chat/b"), Role::Publisher, None).await;
    let mut deeper = connect(&server.url("/chat/a/log"), Role::Publisher, None).await;
    let mut elsewhere = connect(&server.url("/news/a"), Role::Publisher, None).await;
    let (a, b) = (numbered("/chat/a", 50), numbered("/chat/b", 50));
    interleave(&mut [
        (&mut on_a, a.clone()),
        (&mut deeper, numbered("/chat/a/log", 10)),
        (&mut on_b, b.clone()),
        (&mut elsewhere, numbered("/news/a", 10)),
    ])
    .await;
    let mut received = Vec::new();
    for _ in 0..a.len() + b.len() {
        received.push(next_binary(&mut follower).await);
    }
    let topics = by_topic(&received);
    assert_eq!(
        topics.len(),
        2,
        "only /chat/a and /chat/b: {:?}",
        topics.keys()
    );
    assert_eq!(topics["/chat/a"], a, "/chat/a in order");
    assert_eq!(topics["/chat/b"], b, "/chat/b in order");
    assert_eq!(server.handle().pattern_subscriber_count(), 1);
    let mut events = server.handle().events();
    drop(follower);
    wait_for_event(&mut events, left(EventKind::SubscriberLeft)).await;
    assert_eq!(server.handle().pattern_subscriber_count(), 0);
}

#[tokio::test]
async fn a_topic_that_ends_and_comes_back_is_followed_again() {
    let options = Options {
        // Without history a topic ends with its last client.
        history_messages: 0,
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let mut follower = connect(&server.url("/rooms/*"), Role::Subscriber, None).await;
    let mut events = server.handle().events();
    for round in 0..3 {
        let mut publisher = connect(&server.url("/rooms/1"), Role::Publisher, None).await;
        let message = Bytes::from(format!("round {round}"));
        send(&mut publisher, message.clone()).await;
        assert_eq!(next_binary(&mut follower).await, message);
        drop(publisher);
        wait_for_event(&mut events, left(EventKind::PublisherLeft)).await;
        assert_eq!(server.handle().topic_count(), 0, "the topic ended");
    }
}

/// Connects to `url` as a stream-mode subscriber.
async fn stream_subscriber(url: &str) -> RawClient {
    let mut request = url.into_client_request().expect("a valid url");
    let headers = request.headers_mut();
    headers.insert(ROLE_HEADER, HeaderValue::from_static("subscriber"));
    headers.insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(STREAM_SUBPROTOCOL),
    );
    within(TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .expect("a stream-mode subscriber")
        .0
}

#[tokio::test]
async fn stream_mode_follows_then_names_each_messages_topic_after_its_subscribed_frame() {
    let server = TestServer::start(Options::default()).await;
    let mut follower = stream_subscriber(&server.url("/sensors/**")).await;
    match next_stream_frame(&mut follower).await {
        StreamFrame::Control(Control::Following { pattern }) => {
            assert_eq!(pattern, "/sensors/**");
        }
        other => panic!("expected following first, got {other:?}"),
    }
    let mut first = connect(&server.url("/sensors/a/temp"), Role::Publisher, None).await;
    let mut second = connect(&server.url("/sensors/b"), Role::Publisher, None).await;
    let (temps, others) = (numbered("/sensors/a/temp", 5), numbered("/sensors/b", 5));
    interleave(&mut [(&mut first, temps.clone()), (&mut second, others.clone())]).await;
    let read = read_pattern(&mut follower, temps.len() + others.len()).await;
    let mut topics: Vec<&str> = read.subscribed.iter().map(|(t, _)| t.as_str()).collect();
    topics.sort_unstable();
    assert_eq!(topics, ["/sensors/a/temp", "/sensors/b"]);
    for (topic, head) in &read.subscribed {
        let expected: Vec<u64> = (*head..*head + 5).collect();
        assert_eq!(
            read.seqs_of(topic),
            expected,
            "{topic}: consecutive from its head"
        );
    }
    for (topic, _, payload) in &read.messages {
        assert!(payload.starts_with(topic.as_bytes()), "{topic} named");
    }
    assert_eq!(read.payloads_of("/sensors/a/temp"), temps);
    assert_eq!(read.payloads_of("/sensors/b"), others);
}

#[tokio::test]
async fn patterns_refuse_publishers_past_positions_and_misplaced_double_stars() {
    let server = TestServer::start(Options::default()).await;
    let (status, body) = refusal(
        "a publisher of a pattern",
        try_connect(&server.url("/chat/*"), Role::Publisher, None).await,
    );
    assert_eq!(status, 400);
    assert!(body.contains("pattern"), "{body}");
    for query in ["from=earliest", "from=5", "since=0"] {
        let url = format!("{}?{query}", server.url("/chat/*"));
        let (status, body) = refusal(query, try_connect(&url, Role::Subscriber, None).await);
        assert_eq!(status, 400, "{query}");
        assert!(body.contains("live only"), "{body}");
    }
    let (status, body) = refusal(
        "** in the middle",
        try_connect(&server.url("/a/**/b"), Role::Subscriber, None).await,
    );
    assert_eq!(status, 400);
    assert!(body.contains("last segment"), "{body}");
    let posted = http_request(server.addr(), Method::POST, "/chat/*", &[], "m").await;
    assert_eq!(posted.status, 400);
    let resumed = EventStream::open(server.addr(), "/chat/*", &[("last-event-id", "7")]).await;
    assert_eq!(resumed.status, 400, "an SSE pattern is live only too");
    assert_eq!(server.handle().topic_count(), 0, "no topic made for any");
}

#[tokio::test]
async fn an_encoded_star_is_a_literal_topic_not_a_pattern() {
    let server = TestServer::start(Options::default()).await;
    let mut literal = connect(&server.url("/chat/%2A"), Role::Subscriber, None).await;
    let mut follower = connect(&server.url("/chat/*"), Role::Subscriber, None).await;
    let mut to_literal = connect(&server.url("/chat/%2A"), Role::Publisher, None).await;
    let mut to_other = connect(&server.url("/chat/x"), Role::Publisher, None).await;
    send(&mut to_other, &b"to x"[..]).await;
    send(&mut to_literal, &b"to the star"[..]).await;
    assert_eq!(
        next_binary(&mut literal).await,
        "to the star",
        "not /chat/x's"
    );
    let mut both = vec![
        next_binary(&mut follower).await,
        next_binary(&mut follower).await,
    ];
    both.sort();
    assert_eq!(
        both,
        ["to the star", "to x"],
        "a literal star is one more topic"
    );
}

#[tokio::test]
async fn a_token_must_cover_everything_the_pattern_reaches() {
    const SECRET: &[u8] = b"pattern secret";
    let options = Options {
        auth: Some(AuthKey::Hs256(SECRET.to_vec())),
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let signer = Signer::hs256(SECRET);
    let cases = [
        ("/chat/**", "/chat/*", 101),
        ("/chat/*", "/chat/*", 101),
        ("/*/*", "/chat/*", 101),
        ("/chat/room1", "/chat/*", 403),
        ("/chat/*", "/chat/**", 403),
        ("/chat/*", "/*/room1", 403),
    ];
    for (claim, path, expected) in cases {
        let token = signer.token(now() + 3600, &[], &[claim]);
        let bearer = format!("Bearer {token}");
        let result = try_connect_with(
            &server.url(path),
            Role::Subscriber,
            &[("authorization", &bearer)],
        )
        .await;
        let status = match result {
            Ok(_) => 101,
            Err(error) => refusal(path, Err(error)).0,
        };
        assert_eq!(status, expected, "claim {claim} for {path}");
    }
}

#[tokio::test]
async fn sse_pattern_events_are_json_naming_their_topic_without_ids() {
    let server = TestServer::start(Options::default()).await;
    let mut stream = EventStream::open(server.addr(), "/chat/*?encoding=text", &[]).await;
    assert_eq!(stream.status, 200);
    let mut a = connect(&server.url("/chat/a"), Role::Publisher, None).await;
    send(&mut a, &b"hello\nworld"[..]).await;
    let event = stream.next_event().await;
    assert_eq!(event.id, None, "live only: nothing to resume from");
    let json: serde_json::Value = serde_json::from_str(&event.data).expect("JSON data");
    assert_eq!(json["topic"], "/chat/a");
    assert_eq!(json["data"], "hello\nworld");
    assert!(json["seq"].as_u64().is_some() && json["time"].as_u64().is_some());
    // One topic with `envelope=json`: the same JSON, with ids to resume from.
    let mut single = EventStream::open(server.addr(), "/chat/a?envelope=json", &[]).await;
    send(&mut a, vec![0u8, 255]).await;
    let event = single.next_event().await;
    let json: serde_json::Value = serde_json::from_str(&event.data).expect("JSON data");
    assert_eq!(json["topic"], "/chat/a");
    assert_eq!(json["data"], "AP8=", "base64 by default");
    assert_eq!(event.id, Some(json["seq"].to_string()));
}
