//! Cluster mode (`--nats-url`), end to end against a real `nats-server -js` on loopback:
//! several in-process wspubsub nodes sharing one stream deliver every message to every
//! subscriber on every node in one order, with the same positions everywhere, and
//! stream-mode publishers are acked with the positions subscribers see.

use std::net::TcpListener;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use wspubsub_server::protocol::{Control, Envelope, Role, STREAM_SUBPROTOCOL};
use wspubsub_server::{Options, Server, ServerError};
use wspubsub_testkit::{
    EventStream, NatsServer, RawClient, TIMEOUT, TestServer, connect, expect_close,
    handshake_status, next_binary, next_binary_within, read_pattern, send, try_connect_with,
    within,
};

/// A wspubsub node in cluster mode on `nats`.
async fn node(nats: &NatsServer) -> TestServer {
    TestServer::start(Options {
        nats_url: Some(nats.url()),
        ..Options::default()
    })
    .await
}

/// A client of `path` on `server` in stream mode (`wspubsub.v2`).
async fn connect_stream(server: &TestServer, path: &str, role: Role) -> RawClient {
    let protocol = [("sec-websocket-protocol", STREAM_SUBPROTOCOL)];
    try_connect_with(&server.url(path), role, &protocol)
        .await
        .expect("a stream-mode client")
}

/// The next text frame of a stream-mode client, as a control message, skipping pings.
async fn next_control(client: &mut RawClient) -> Control {
    within(TIMEOUT, async {
        loop {
            match client.next().await {
                Some(Ok(Message::Text(text))) => {
                    return Control::from_json(&text).expect("a control message");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a control message, got {other:?}"),
            }
        }
    })
    .await
}

/// The next `count` messages of a stream-mode subscriber (after its `subscribed`), as
/// (seq, payload).
async fn next_enveloped(client: &mut RawClient, count: usize) -> Vec<(u64, Bytes)> {
    next_enveloped_within(client, count, TIMEOUT).await
}

/// [`next_enveloped`], waiting up to `limit` for each message.
async fn next_enveloped_within(
    client: &mut RawClient,
    count: usize,
    limit: std::time::Duration,
) -> Vec<(u64, Bytes)> {
    let mut messages = Vec::with_capacity(count);
    while messages.len() < count {
        let frame = next_binary_within(client, limit).await;
        let envelope = Envelope::decode(&frame).expect("an envelope");
        messages.push((envelope.seq, Bytes::copy_from_slice(envelope.payload)));
    }
    messages
}

/// The next `count` binary messages of a raw subscriber.
async fn next_raw(client: &mut RawClient, count: usize) -> Vec<Bytes> {
    let mut messages = Vec::with_capacity(count);
    while messages.len() < count {
        messages.push(next_binary(client).await);
    }
    messages
}

#[tokio::test]
async fn a_pattern_follows_topics_published_on_any_node_each_in_order() {
    let nats = NatsServer::start().await;
    let (a, b) = (node(&nats).await, node(&nats).await);
    let mut raw = connect(&a.url("/chat/*"), Role::Subscriber, None).await;
    let mut stream = connect_stream(&b, "/chat/*", Role::Subscriber).await;
    let mut events = EventStream::open(a.addr(), "/chat/*?encoding=text", &[]).await;
    assert_eq!(events.status, 200);
    assert_eq!(
        next_control(&mut stream).await,
        Control::Following {
            pattern: "/chat/*".into()
        }
    );
    // /chat/b has no client on node A, /chat/a none on node B.
    let mut on_a = connect(&a.url("/chat/a"), Role::Publisher, None).await;
    let mut on_b = connect(&b.url("/chat/b"), Role::Publisher, None).await;
    let mut elsewhere = connect(&a.url("/news/a"), Role::Publisher, None).await;
    let mut sent: Vec<(&str, Bytes)> = Vec::new();
    for i in 0..20 {
        for (topic, publisher) in [("/chat/a", &mut on_a), ("/chat/b", &mut on_b)] {
            let message = Bytes::from(format!("{topic}#{i}"));
            send(publisher, message.clone()).await;
            sent.push((topic, message));
        }
        send(&mut elsewhere, Bytes::from_static(b"not followed")).await;
    }
    let per_topic = |topic: &str| -> Vec<Bytes> {
        sent.iter()
            .filter(|(t, _)| *t == topic)
            .map(|(_, m)| m.clone())
            .collect()
    };
    let mut received = Vec::new();
    for _ in 0..sent.len() {
        received.push(next_binary(&mut raw).await);
    }
    for topic in ["/chat/a", "/chat/b"] {
        let got: Vec<Bytes> = received
            .iter()
            .filter(|m| m.starts_with(topic.as_bytes()))
            .cloned()
            .collect();
        assert_eq!(got, per_topic(topic), "raw, {topic} in order");
    }
    assert_eq!(received.len(), sent.len(), "nothing from /news");
    let read = read_pattern(&mut stream, sent.len()).await;
    for topic in ["/chat/a", "/chat/b"] {
        let payloads = read.payloads_of(topic);
        assert_eq!(payloads, per_topic(topic), "stream mode, {topic} in order");
        let seqs = read.seqs_of(topic);
        assert!(
            seqs.windows(2).all(|pair| pair[0] < pair[1]),
            "{topic}: increasing seqs"
        );
    }
    // Over SSE: one JSON event per message, naming its topic.
    let mut by_sse: Vec<(String, Bytes)> = Vec::new();
    while by_sse.len() < sent.len() {
        let event = events.next_event().await;
        let json: serde_json::Value = serde_json::from_str(&event.data).expect("JSON data");
        let topic = json["topic"].as_str().expect("a topic").to_owned();
        let data = json["data"].as_str().expect("text data").to_owned();
        by_sse.push((topic, Bytes::from(data)));
    }
    for topic in ["/chat/a", "/chat/b"] {
        let payloads: Vec<Bytes> = by_sse
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, m)| m.clone())
            .collect();
        assert_eq!(payloads, per_topic(topic), "SSE, {topic} in order");
    }
}

#[tokio::test]
async fn a_raw_publisher_on_one_node_reaches_raw_subscribers_on_every_node_in_order() {
    let nats = NatsServer::start().await;
    let (a, b) = (node(&nats).await, node(&nats).await);
    let mut on_a = connect(&a.url("/news"), Role::Subscriber, None).await;
    let mut on_b = connect(&b.url("/news"), Role::Subscriber, None).await;
    let mut publisher = connect(&a.url("/news"), Role::Publisher, None).await;
    let sent: Vec<Bytes> = (0..200).map(|i| Bytes::from(format!("m{i}"))).collect();
    for message in &sent {
        send(&mut publisher, message.clone()).await;
    }
    assert_eq!(next_raw(&mut on_a, sent.len()).await, sent, "node A");
    assert_eq!(next_raw(&mut on_b, sent.len()).await, sent, "node B");
}

#[tokio::test]
async fn publishers_on_two_nodes_and_subscribers_on_three_see_one_order() {
    let nats = NatsServer::start().await;
    let nodes = [node(&nats).await, node(&nats).await, node(&nats).await];
    let mut subscribers = Vec::new();
    for node in &nodes {
        subscribers.push(connect(&node.url("/mixed"), Role::Subscriber, None).await);
    }
    // A second topic on the same stream, so that the positions of /mixed have holes.
    let mut other = connect(&nodes[2].url("/other"), Role::Publisher, None).await;
    let publishers = [&nodes[0], &nodes[1]].map(|node| node.url("/mixed"));
    let tasks = publishers.clone().map(|url| {
        tokio::spawn(async move {
            let mut publisher = connect(&url, Role::Publisher, None).await;
            for i in 0..150 {
                send(&mut publisher, format!("{url} {i}")).await;
            }
            publisher
        })
    });
    for i in 0..50 {
        send(&mut other, format!("other {i}")).await;
    }
    let mut orders = Vec::new();
    for subscriber in &mut subscribers {
        orders.push(next_raw(subscriber, 300).await);
    }
    for task in tasks {
        task.await.expect("publisher task");
    }
    assert_eq!(orders[0], orders[1], "nodes 1 and 2 agree");
    assert_eq!(orders[0], orders[2], "nodes 1 and 3 agree");
    for url in &publishers {
        // Each publisher's own messages keep its order within the shared one.
        let own: Vec<&Bytes> = orders[0]
            .iter()
            .filter(|message| message.starts_with(url.as_bytes()))
            .collect();
        let expected: Vec<Bytes> = (0..150)
            .map(|i| Bytes::from(format!("{url} {i}")))
            .collect();
        assert_eq!(own, expected.iter().collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn stream_mode_positions_and_acks_are_the_same_on_every_node() {
    let nats = NatsServer::start().await;
    let (a, b) = (node(&nats).await, node(&nats).await);
    let mut on_a = connect_stream(&a, "/pos", Role::Subscriber).await;
    let mut on_b = connect_stream(&b, "/pos", Role::Subscriber).await;
    for subscriber in [&mut on_a, &mut on_b] {
        assert!(matches!(
            next_control(subscriber).await,
            Control::Subscribed { .. }
        ));
    }
    // Messages of another topic in between: positions are the stream's, not per node.
    let mut other = connect(&b.url("/elsewhere"), Role::Publisher, None).await;
    let mut publisher = connect_stream(&a, "/pos", Role::Publisher).await;
    let mut last_ack = None;
    for i in 0..20 {
        send(&mut publisher, format!("p{i}")).await;
        send(&mut other, "noise").await;
    }
    while last_ack.is_none_or(|(count, _)| count < 20) {
        match next_control(&mut publisher).await {
            Control::Ack { count, seq } => last_ack = Some((count, seq)),
            other => panic!("expected an ack, got {other:?}"),
        }
    }
    let seen_a = next_enveloped(&mut on_a, 20).await;
    let seen_b = next_enveloped(&mut on_b, 20).await;
    assert_eq!(
        seen_a, seen_b,
        "same seqs for the same messages on both nodes"
    );
    let payloads: Vec<Bytes> = (0..20).map(|i| Bytes::from(format!("p{i}"))).collect();
    assert_eq!(
        seen_a.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
        payloads
    );
    assert!(
        seen_a.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "seqs increase"
    );
    let (_, last_seq) = last_ack.expect("acked");
    assert_eq!(
        last_seq,
        seen_a.last().expect("twenty").0,
        "the last ack names the seq subscribers saw for the last message"
    );
}

/// A wspubsub node in cluster mode on `nats` keeping `history` messages per topic (every
/// node of a cluster has the same history flags: they are the stream's limits).
async fn node_keeping(nats: &NatsServer, history: usize) -> TestServer {
    TestServer::start(Options {
        nats_url: Some(nats.url()),
        history_messages: history,
        ..Options::default()
    })
    .await
}

/// A stream-mode subscriber of `path` on `server` starting as `query` says (`from=5`), and
/// its `subscribed` notice.
async fn subscribe_at(server: &TestServer, path: &str, query: &str) -> (RawClient, Control) {
    let url = format!("{}?{query}", server.url(path));
    let protocol = [("sec-websocket-protocol", STREAM_SUBPROTOCOL)];
    let mut client = try_connect_with(&url, Role::Subscriber, &protocol)
        .await
        .expect("a stream-mode subscriber");
    let subscribed = next_control(&mut client).await;
    (client, subscribed)
}

/// The handshake status of a raw subscriber of `path` on `server` starting at `query`.
async fn raw_status(server: &TestServer, path: &str, query: &str) -> u16 {
    let url = format!("{}?{query}", server.url(path));
    handshake_status(&try_connect_with(&url, Role::Subscriber, &[]).await)
}

/// Publishes `count` messages `{prefix}{i}` to `path` on `server`, each once `watcher` (a
/// stream-mode subscriber of `path`) received the one before, and returns them as `watcher`
/// saw them (seq, payload).
async fn publish_numbered(
    server: &TestServer,
    path: &str,
    prefix: &str,
    count: usize,
    watcher: &mut RawClient,
) -> Vec<(u64, Bytes)> {
    let mut publisher = connect(&server.url(path), Role::Publisher, None).await;
    let mut seen = Vec::with_capacity(count);
    for i in 0..count {
        let payload = Bytes::from(format!("{prefix}{i}"));
        send(&mut publisher, payload.clone()).await;
        let (seq, received) = next_enveloped(watcher, 1).await.remove(0);
        assert_eq!(received, payload);
        seen.push((seq, received));
    }
    seen
}

#[tokio::test]
async fn a_subscriber_resumes_on_another_node_where_it_was() {
    let nats = NatsServer::start().await;
    let [a, b, c] = [node(&nats).await, node(&nats).await, node(&nats).await];
    let (mut on_a, _) = subscribe_at(&a, "/resume", "from=latest").await;
    let first = publish_numbered(&a, "/resume", "m", 10, &mut on_a).await;
    // Gone after the 10th; 10 more are published while it is away, on node A.
    drop(on_a);
    let (mut still_on_a, _) = subscribe_at(&a, "/resume", "from=latest").await;
    let second = publish_numbered(&a, "/resume", "n", 10, &mut still_on_a).await;

    // Node B has never read /resume: it loads what the stream holds.
    let resume_at = first.last().expect("ten").0 + 1;
    let (mut on_b, subscribed) = subscribe_at(&b, "/resume", &format!("from={resume_at}")).await;
    match subscribed {
        Control::Subscribed { from, head, .. } => {
            assert_eq!(from, resume_at);
            assert_eq!(head, second.last().expect("ten").0 + 1);
        }
        other => panic!("expected subscribed, got {other:?}"),
    }
    assert_eq!(
        next_enveloped(&mut on_b, 10).await,
        second,
        "exactly what it missed"
    );
    // Live after the replay, with no duplicate.
    let third = publish_numbered(&c, "/resume", "o", 3, &mut still_on_a).await;
    assert_eq!(next_enveloped(&mut on_b, 3).await, third);

    // Node C: from=earliest is everything the stream holds; since= starts at a message's
    // time; a raw subscriber starting at a held position is accepted.
    let (mut on_c, _) = subscribe_at(&c, "/resume", "from=earliest").await;
    let everything: Vec<(u64, Bytes)> = [first.clone(), second, third].concat();
    assert_eq!(
        next_enveloped(&mut on_c, everything.len()).await,
        everything
    );
    assert_eq!(
        raw_status(&c, "/resume", &format!("from={}", first[3].0)).await,
        101
    );
    assert_eq!(
        raw_status(&c, "/resume", "since=1").await,
        101,
        "nothing evicted"
    );
}

#[tokio::test]
async fn what_the_stream_evicted_is_a_gap_on_every_node() {
    let nats = NatsServer::start().await;
    let (a, b) = (node_keeping(&nats, 3).await, node_keeping(&nats, 3).await);
    let (mut on_a, _) = subscribe_at(&a, "/few", "from=latest").await;
    let sent = publish_numbered(&a, "/few", "m", 8, &mut on_a).await;
    // The stream keeps the last 3 of /few: a start before them missed something.
    assert_eq!(
        raw_status(&b, "/few", &format!("from={}", sent[0].0)).await,
        416
    );
    let (mut on_b, subscribed) =
        subscribe_at(&b, "/few", &format!("from={}&gap=ok", sent[0].0)).await;
    assert!(matches!(subscribed, Control::Subscribed { from, .. } if from == sent[5].0));
    match next_control(&mut on_b).await {
        Control::Gap {
            from, to, reason, ..
        } => {
            assert_eq!((from, to), (sent[0].0, sent[5].0));
            assert_eq!(reason, "history_evicted");
        }
        other => panic!("expected a gap notice, got {other:?}"),
    }
    assert_eq!(next_enveloped(&mut on_b, 3).await, sent[5..].to_vec());
    // The oldest the stream holds is no gap; a position from before the stream existed is
    // one of a restarted topic.
    assert_eq!(
        raw_status(&b, "/few", &format!("from={}", sent[5].0)).await,
        101
    );
    let (mut on_b, _) = subscribe_at(&b, "/few", "from=1&gap=ok").await;
    match next_control(&mut on_b).await {
        Control::Gap { reason, .. } => assert_eq!(reason, "topic_restarted"),
        other => panic!("expected a gap notice, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_nats_stops_the_start() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let options = Options {
        nats_url: Some(format!("nats://127.0.0.1:{port}")),
        ..Options::default()
    };
    let started = within(TIMEOUT, Server::bind("127.0.0.1:0", options)).await;
    match started {
        Err(ServerError::Cluster(error)) => {
            assert!(error.to_string().contains("NATS"), "{error}");
        }
        other => panic!("expected a cluster error, got {other:?}"),
    }
}

/// The status code and body of a plain `GET path` on `server`.
async fn get(server: &TestServer, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let answer = wspubsub_testkit::raw_answer(server.addr(), request.as_bytes()).await;
    let status = answer
        .head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, answer.body.trim().to_owned())
}

/// Polls `/readyz` (every 50 ms) until it answers `status`, for at most `limit`; returns
/// its body then.
async fn readyz_becomes(server: &TestServer, status: u16, limit: std::time::Duration) -> String {
    within(limit, async {
        loop {
            let (now, body) = get(server, "/readyz").await;
            if now == status {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_nats_restart_that_loses_the_stream_is_announced_never_silent() {
    let mut nats = NatsServer::start().await;
    // The test's clients answer no pings while it waits on NATS: a deadline they meet.
    let node = TestServer::start(Options {
        nats_url: Some(nats.url()),
        pong_deadline: TIMEOUT,
        ..Options::default()
    })
    .await;
    let (mut in_stream_mode, _) = subscribe_at(&node, "/t", "from=latest").await;
    let mut raw = connect(&node.url("/t"), Role::Subscriber, None).await;
    let before = publish_numbered(&node, "/t", "m", 3, &mut in_stream_mode).await;
    assert_eq!(next_raw(&mut raw, 3).await.len(), 3);
    assert_eq!(get(&node, "/readyz").await.0, 200);
    let metrics = get(&node, "/metrics").await.1;
    assert!(metrics.contains("wspubsub_nats_connected 1"), "{metrics}");
    assert!(
        metrics.contains("wspubsub_nats_publish_ack_seconds_count 3"),
        "{metrics}"
    );
    // Every message read: no consumer lag.
    assert!(
        metrics.contains("wspubsub_nats_consumer_pending 0"),
        "{metrics}"
    );

    let mut publisher = connect(&node.url("/t"), Role::Publisher, None).await;

    // Every NATS server gone: the node is not ready, within 5 s, and says why.
    nats.stop().await;
    let why = readyz_becomes(&node, 503, std::time::Duration::from_secs(5)).await;
    assert!(why.contains("NATS"), "{why}");
    assert!(
        get(&node, "/metrics")
            .await
            .1
            .contains("wspubsub_nats_connected 0")
    );

    // A publisher that goes on publishing is closed with 1011 once NATS has not acked a
    // message within its request timeout (5 s): it knows that what it sent may be lost.
    let closed = within(TIMEOUT, async {
        loop {
            if publisher.send(Message::binary("during")).await.is_err() {
                return None;
            }
            let frame =
                tokio::time::timeout(std::time::Duration::from_millis(200), publisher.next()).await;
            match frame {
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return frame.map(|frame| u16::from(frame.code));
                }
                Ok(None | Some(Err(_))) => return None,
                Ok(Some(Ok(_))) | Err(_) => {}
            }
        }
    })
    .await;
    assert_eq!(closed, Some(1011));

    // Back, with memory storage: the stream is created again, empty. The subscribers are
    // told that they may have missed something: 4002 for both.
    nats.restart().await;
    assert_eq!(expect_close(&mut raw).await, 4002);
    assert_eq!(expect_close(&mut in_stream_mode).await, 4002);
    readyz_becomes(&node, 200, TIMEOUT).await;

    // Resuming where it was is a gap of a restarted topic, then delivery goes on above the
    // old positions.
    let resume_at = before.last().expect("three").0 + 1;
    let (mut resumed, _) = subscribe_at(&node, "/t", &format!("from={resume_at}&gap=ok")).await;
    match next_control(&mut resumed).await {
        Control::Gap { from, reason, .. } => {
            assert_eq!(from, resume_at);
            assert_eq!(reason, "topic_restarted");
        }
        other => panic!("expected a gap notice, got {other:?}"),
    }
    let after = publish_numbered(&node, "/t", "n", 2, &mut resumed).await;
    assert!(after[0].0 > resume_at, "{after:?} after {before:?}");
    let metrics = get(&node, "/metrics").await.1;
    assert!(
        metrics.contains("wspubsub_nats_stream_losses_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_reading_as_far_behind_as_the_stream_keeps_closes_its_subscribers_with_4002() {
    // The stream keeps 2 messages of a topic. A subscriber that stops reading holds the
    // topic (`--slow-subscriber hold`) until the write timeout cuts it, and the node's
    // reading of the stream waits meanwhile: by then the stream has dropped messages the
    // node never read, which its other subscriber must hear of.
    let nats = NatsServer::start().await;
    let node = TestServer::start(Options {
        nats_url: Some(nats.url()),
        history_messages: 2,
        write_timeout: std::time::Duration::from_secs(1),
        subscriber_queue_messages: 1,
        topic_queue: 1,
        ..Options::default()
    })
    .await;
    let stalled = connect(&node.url("/behind"), Role::Subscriber, None).await;
    let mut reading = connect(&node.url("/behind"), Role::Subscriber, None).await;
    let mut publisher = connect(&node.url("/behind"), Role::Publisher, None).await;
    let message = Bytes::from(vec![7u8; 256 << 10]);
    for _ in 0..64 {
        send(&mut publisher, message.clone()).await;
    }
    let (received, close) = wspubsub_testkit::read_until_close(&mut reading).await;
    assert_eq!(
        close.map(|(code, _)| code),
        Some(4002),
        "after {}",
        received.len()
    );
    assert!(received.len() < 64, "{} received", received.len());
    let metrics = get(&node, "/metrics").await.1;
    assert!(
        metrics.contains("wspubsub_nats_stream_losses_total 1"),
        "{metrics}"
    );
    drop(stalled);
}

#[tokio::test]
async fn three_replicas_lose_nothing_when_a_following_nats_server_stops_mid_run() {
    replicated_run_losing(Replica::Follower).await;
}

#[tokio::test]
async fn three_replicas_lose_nothing_when_the_leading_nats_server_stops_mid_run() {
    // The stream elects a new leader; meanwhile NATS takes no publish ("no responders"),
    // and the node sends again, in order, what it did not take.
    replicated_run_losing(Replica::Leader).await;
}

/// Which NATS server a replicated run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replica {
    /// The server leading the stream.
    Leader,
    /// One that holds a replica without leading.
    Follower,
}

/// Two nodes on a 3-server NATS cluster with 3 replicas: a stream-mode subscriber on node B
/// gets 20 messages published on node A, `stopped` goes away, 20 more are published: all 40
/// arrive in order, nothing twice, and replay from the replicas left.
async fn replicated_run_losing(stopped: Replica) {
    use wspubsub_cluster::{Broker, ConnectConfig, StreamSpec};
    use wspubsub_testkit::NatsCluster;

    let mut cluster = NatsCluster::start(3).await;
    // The stream first, to learn its leader; the nodes connect to a server that stays, so
    // that what is tested is the loss of a replica, not a node's reconnection (a publish in
    // flight while a node's own NATS connection moves may time out: 1011, see README).
    let broker = within(
        TIMEOUT,
        Broker::connect(&ConnectConfig::new(cluster.urls())),
    )
    .await
    .expect("connect to NATS");
    let spec = StreamSpec {
        replicas: 3,
        ..StreamSpec::default()
    };
    let leader = within(TIMEOUT, broker.ensure_stream(&spec))
        .await
        .expect("stream state")
        .leader
        .expect("a replicated stream has a leader");
    let leads = |i: usize| format!("n{i}") == leader;
    let server = (0..3)
        .find(|&i| leads(i) == (stopped == Replica::Leader))
        .expect("a leader and two followers");
    let stays = (0..3).find(|&i| i != server).expect("another server");
    // The test's clients answer no pings while they wait for the failover: a deadline they
    // meet.
    let replicated = || Options {
        nats_url: Some(cluster.server(stays).url()),
        nats_replicas: 3,
        pong_deadline: FAILOVER,
        ..Options::default()
    };
    let (a, b) = (
        TestServer::start(replicated()).await,
        TestServer::start(replicated()).await,
    );
    let (mut on_b, _) = subscribe_at(&b, "/r3", "from=latest").await;
    let first = publish_numbered(&a, "/r3", "x", 20, &mut on_b).await;
    cluster.stop(server).await;
    let mut publisher = connect(&a.url("/r3"), Role::Publisher, None).await;
    let sent: Vec<Bytes> = (0..20).map(|i| Bytes::from(format!("y{i}"))).collect();
    // One at a time, each once the one before arrived. A reading whose consumer lived on
    // the stopped server notices after two missed heartbeats (2 s each) and reads on from
    // where it was.
    let mut second = Vec::new();
    for message in &sent {
        send(&mut publisher, message.clone()).await;
        second.extend(next_enveloped_within(&mut on_b, 1, FAILOVER).await);
    }
    assert_eq!(
        second.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
        sent
    );
    let seen: Vec<u64> = first.iter().chain(&second).map(|(seq, _)| *seq).collect();
    assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "{seen:?}");
    // A subscriber joining now replays all forty from the two replicas left: nothing lost,
    // nothing twice. (Right after a server stops, JetStream may answer 503 for a moment
    // while it elects a new meta leader: a client retries, as this one does.)
    let mut replay = within(FAILOVER, async {
        loop {
            let url = format!("{}?from=earliest", a.url("/r3"));
            let protocol = [("sec-websocket-protocol", STREAM_SUBPROTOCOL)];
            match try_connect_with(&url, Role::Subscriber, &protocol).await {
                Ok(client) => return client,
                Err(refused) => {
                    assert_eq!(handshake_status(&Err(refused)), 503);
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    })
    .await;
    assert!(matches!(
        next_control(&mut replay).await,
        Control::Subscribed { .. }
    ));
    let everything: Vec<(u64, Bytes)> = [first, second].concat();
    assert_eq!(next_enveloped(&mut replay, 40).await, everything);
}

/// How long a reading may take to notice that its consumer's NATS server is gone and read on
/// (about 4 s of missed heartbeats, then creating a consumer, which JetStream may time out a
/// few times while it places consumers away from the stopped server).
const FAILOVER: std::time::Duration = std::time::Duration::from_secs(60);

#[tokio::test]
async fn with_file_storage_subscribers_ride_out_a_nats_restart_and_lose_nothing() {
    let mut nats = NatsServer::start().await;
    // The test's clients answer no pings while NATS is away: a deadline they meet.
    let node = TestServer::start(Options {
        nats_url: Some(nats.url()),
        nats_storage: wspubsub_server::NatsStorage::File,
        pong_deadline: FAILOVER,
        ..Options::default()
    })
    .await;
    let (mut subscriber, _) = subscribe_at(&node, "/kept", "from=latest").await;
    let before = publish_numbered(&node, "/kept", "m", 3, &mut subscriber).await;
    nats.restart().await;
    readyz_becomes(&node, 200, FAILOVER).await;
    // The same subscriber, never closed, gets what is published after the restart, right
    // after what it had: the stream and its positions survived.
    let mut publisher = connect(&node.url("/kept"), Role::Publisher, None).await;
    for i in 0..3 {
        send(&mut publisher, format!("n{i}")).await;
    }
    let after = next_enveloped_within(&mut subscriber, 3, FAILOVER).await;
    let payloads: Vec<Bytes> = after.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(
        payloads,
        ["n0", "n1", "n2"].map(|p| Bytes::from_static(p.as_bytes()))
    );
    assert_eq!(
        after[0].0,
        before[2].0 + 1,
        "positions go on from the stream's"
    );
}
