//! The JetStream layer against real `nats-server` processes on loopback ports: order and
//! sequences, one order for every subscriber, replication through a server's loss, and the
//! subject mapping through a real server.
#![allow(clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use wspubsub_cluster::{
    Broker, BrokerError, ConnectConfig, Credentials, Delivery, Start, Storage, StreamSpec,
    Subscription, subject_for, topic_for,
};
use wspubsub_testkit::{NatsCluster, NatsServer, TIMEOUT, within};

async fn connect(urls: &str, spec: &StreamSpec) -> Broker {
    let broker = within(TIMEOUT, Broker::connect(&ConnectConfig::new(urls)))
        .await
        .expect("connect to NATS");
    within(TIMEOUT, broker.ensure_stream(spec))
        .await
        .expect("create the stream");
    broker
}

async fn next(subscription: &mut Subscription) -> Delivery {
    within(TIMEOUT, subscription.next())
        .await
        .expect("the subscription goes on")
        .expect("a delivery")
}

async fn take(subscription: &mut Subscription, count: usize) -> Vec<Delivery> {
    let mut deliveries = Vec::with_capacity(count);
    for _ in 0..count {
        deliveries.push(next(subscription).await);
    }
    deliveries
}

fn payloads(deliveries: &[Delivery]) -> Vec<Bytes> {
    deliveries.iter().map(|d| d.payload.clone()).collect()
}

fn numbered(prefix: &str, count: usize) -> Vec<Bytes> {
    (0..count)
        .map(|i| Bytes::from(format!("{prefix}{i}")))
        .collect()
}

#[tokio::test]
async fn a_topic_reads_back_in_order_with_its_sequences_from_any_start() {
    let server = NatsServer::start().await;
    let broker = connect(&server.url(), &StreamSpec::default()).await;
    let before = SystemTime::now();
    let sent = numbered("m", 30);
    let mut sequences = Vec::new();
    for (i, payload) in sent.iter().enumerate() {
        sequences.push(broker.publish("/t", payload.clone()).await.expect("ack"));
        // Another topic in between: its messages take sequences, not places in "/t".
        if i % 3 == 0 {
            broker
                .publish("/u", Bytes::from_static(b"other"))
                .await
                .expect("ack");
        }
    }
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");

    let mut all = broker
        .subscribe("/t", Start::Earliest)
        .await
        .expect("subscribe");
    let read = take(&mut all, sent.len()).await;
    assert_eq!(payloads(&read), sent);
    let read_sequences: Vec<u64> = read.iter().map(|d| d.sequence).collect();
    assert_eq!(read_sequences, sequences);
    assert!(
        read.iter()
            .all(|d| d.time >= before - Duration::from_secs(1))
    );

    let mut from = broker
        .subscribe("/t", Start::Sequence(sequences[10]))
        .await
        .expect("subscribe");
    assert_eq!(payloads(&take(&mut from, 20).await), sent[10..]);

    let mut by_time = broker
        .subscribe("/t", Start::Time(read[25].time))
        .await
        .expect("subscribe");
    assert_eq!(next(&mut by_time).await.sequence, sequences[25]);

    let mut new = broker.subscribe("/t", Start::New).await.expect("subscribe");
    let last = broker
        .publish("/t", Bytes::from_static(b"after"))
        .await
        .expect("ack");
    let delivery = next(&mut new).await;
    assert_eq!(
        (delivery.sequence, &delivery.payload[..]),
        (last, &b"after"[..])
    );
}

#[tokio::test]
async fn two_subscribers_see_one_order_of_two_concurrent_publishers() {
    let server = NatsServer::start().await;
    let broker = connect(&server.url(), &StreamSpec::default()).await;
    let mut first = broker
        .subscribe("/race", Start::New)
        .await
        .expect("subscribe");
    let mut second = broker
        .subscribe("/race", Start::New)
        .await
        .expect("subscribe");
    const EACH: usize = 200;
    let publishers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            // Each publisher its own connection, as two nodes would be.
            let url = server.url();
            tokio::spawn(async move {
                let broker = connect(&url, &StreamSpec::default()).await;
                for payload in numbered(name, EACH) {
                    broker.publish("/race", payload).await.expect("ack");
                }
            })
        })
        .collect();
    for publisher in publishers {
        within(TIMEOUT, publisher)
            .await
            .expect("publisher finished");
    }
    let one = take(&mut first, 2 * EACH).await;
    let other = take(&mut second, 2 * EACH).await;
    assert_eq!(
        one, other,
        "both subscribers see the same messages in one order"
    );
    assert!(one.windows(2).all(|w| w[0].sequence < w[1].sequence));
    for name in ["a", "b"] {
        let mine: Vec<Bytes> = payloads(&one)
            .into_iter()
            .filter(|p| p.starts_with(name.as_bytes()))
            .collect();
        assert_eq!(
            mine,
            numbered(name, EACH),
            "publisher {name}'s order is kept"
        );
    }
}

/// Runs `attempt` until it succeeds, for at most `TIMEOUT`, pausing briefly after each
/// failure: while a NATS server is gone, requests find no responder or time out until new
/// leaders are elected.
async fn until_ok<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match attempt().await {
            Ok(done) => return done,
            Err(error) if Instant::now() < deadline => {
                eprintln!("{what}: {error}; again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("{what} never succeeded: {error}"),
        }
    }
}

/// Publishes with a deduplication id until the stream acks it: the stream stores each id
/// once, however often a lost ack made us send it.
async fn publish_until_acked(broker: &Broker, topic: &str, id: &str, payload: Bytes) -> u64 {
    until_ok(id, || broker.publish_once(topic, id, payload.clone())).await
}

#[tokio::test]
async fn three_replicas_lose_nothing_when_the_stream_leader_stops() {
    let mut cluster = NatsCluster::start(3).await;
    let spec = StreamSpec {
        replicas: 3,
        ..StreamSpec::default()
    };
    let broker = connect(&cluster.urls(), &spec).await;
    let state = broker.ensure_stream(&spec).await.expect("stream state");
    let leader = state.leader.expect("a replicated stream has a leader");
    let index = (0..3)
        .find(|&i| format!("n{i}") == leader)
        .unwrap_or_else(|| panic!("leader {leader} is one of ours"));

    let sent = numbered("r", 40);
    let mut sequences = Vec::new();
    for (i, payload) in sent[..20].iter().enumerate() {
        sequences.push(publish_until_acked(&broker, "/r", &format!("r{i}"), payload.clone()).await);
    }
    cluster.stop(index).await;
    for (i, payload) in sent.iter().enumerate().skip(20) {
        sequences.push(publish_until_acked(&broker, "/r", &format!("r{i}"), payload.clone()).await);
    }
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");

    let mut all = until_ok("subscribe", || broker.subscribe("/r", Start::Earliest)).await;
    let read = take(&mut all, sent.len()).await;
    assert_eq!(payloads(&read), sent, "nothing lost, nothing twice");
    let read_sequences: Vec<u64> = read.iter().map(|d| d.sequence).collect();
    assert_eq!(read_sequences, sequences);
    let after = until_ok("stream state", || broker.ensure_stream(&spec)).await;
    assert_ne!(
        after.leader.as_deref(),
        Some(leader.as_str()),
        "a new leader took over"
    );
}

#[tokio::test]
async fn awkward_topics_keep_apart_and_round_trip_through_a_real_server() {
    let server = NatsServer::start().await;
    let broker = connect(&server.url(), &StreamSpec::default()).await;
    let topics = [
        "/a.b/*/>/ sp/%2F//é",
        "/a.b",
        "/a/b",
        "/a/*",
        "/a/>",
        "/a/%2A",
        "/",
        "//",
        "/ ",
    ];
    // What the server stores under, read with a plain core-NATS wildcard subscription.
    let client = async_nats::connect(server.url()).await.expect("connect");
    let mut raw = client
        .subscribe(format!("{}.>", wspubsub_cluster::PREFIX))
        .await
        .expect("subscribe to every topic");
    // The subscription is in place once our own message on it comes back (a flush only
    // empties the client's buffer).
    let ready = subject_for("/ready").expect("a path");
    client
        .publish(ready.clone(), Bytes::new())
        .await
        .expect("publish the ready marker");
    let marker = within(TIMEOUT, raw.next()).await.expect("the ready marker");
    assert_eq!(marker.subject.as_str(), ready);

    for topic in topics {
        broker
            .publish(topic, Bytes::from(topic))
            .await
            .expect("ack");
    }
    let mut seen = HashSet::new();
    for _ in topics {
        let message = tokio::time::timeout(TIMEOUT, raw.next())
            .await
            .unwrap_or_else(|_| panic!("timed out; seen {seen:?}"))
            .expect("a raw message");
        let topic = topic_for(message.subject.as_str()).expect("our subject");
        assert_eq!(message.payload, Bytes::from(topic.clone()));
        assert_eq!(
            subject_for(&topic).expect("a path"),
            message.subject.as_str()
        );
        seen.insert(topic);
    }
    assert_eq!(seen.len(), topics.len());

    for topic in topics {
        let mut subscription = broker
            .subscribe(topic, Start::Earliest)
            .await
            .expect("subscribe");
        let only = next(&mut subscription).await;
        assert_eq!(
            only.payload,
            Bytes::from(topic),
            "{topic} reads its own message"
        );
        // Nothing of another topic follows: the next one is this topic's own marker.
        let marker = broker
            .publish(topic, Bytes::from_static(b"end"))
            .await
            .expect("ack");
        assert_eq!(next(&mut subscription).await.sequence, marker, "{topic}");
    }
}

#[tokio::test]
async fn history_is_kept_per_topic_and_follows_changed_limits() {
    let server = NatsServer::start().await;
    let mut spec = StreamSpec {
        messages_per_topic: Some(5),
        ..StreamSpec::default()
    };
    let broker = connect(&server.url(), &spec).await;
    let sent = numbered("h", 10);
    let mut sequences = Vec::new();
    for payload in &sent {
        sequences.push(broker.publish("/a", payload.clone()).await.expect("ack"));
    }
    let other = broker
        .publish("/b", Bytes::from_static(b"b"))
        .await
        .expect("ack");

    let mut a = broker
        .subscribe("/a", Start::Earliest)
        .await
        .expect("subscribe");
    let kept = take(&mut a, 5).await;
    assert_eq!(payloads(&kept), sent[5..], "the last five of /a");
    assert_eq!(kept[0].sequence, sequences[5]);
    // /a's limit evicted nothing of /b.
    let mut b = broker
        .subscribe("/b", Start::Earliest)
        .await
        .expect("subscribe");
    assert_eq!(next(&mut b).await.sequence, other);

    spec.messages_per_topic = Some(2);
    let state = broker
        .ensure_stream(&spec)
        .await
        .expect("update the stream");
    assert_eq!(state.first_sequence, sequences[8]);
    assert_eq!(state.last_sequence, other);
    let mut a = broker
        .subscribe("/a", Start::Earliest)
        .await
        .expect("subscribe");
    assert_eq!(payloads(&take(&mut a, 2).await), sent[8..]);
}

#[tokio::test]
async fn nodes_creating_the_stream_at_once_all_learn_its_one_creation_time() {
    // Nodes of a cluster start together; whichever loses the create race must still learn
    // the incarnation (its positions are offset by it), not a zero time.
    let server = NatsServer::start().await;
    let config = ConnectConfig::new(server.url());
    let mut brokers = Vec::new();
    for _ in 0..8 {
        let connected = within(TIMEOUT, Broker::connect(&config)).await;
        brokers.push(connected.expect("connect to NATS"));
    }
    let spec = StreamSpec::default();
    let states = within(
        TIMEOUT,
        futures_util::future::join_all(brokers.iter().map(|b| b.ensure_stream(&spec))),
    )
    .await;
    let created: HashSet<SystemTime> = states
        .into_iter()
        .map(|state| state.expect("stream state").created)
        .collect();
    assert_eq!(created.len(), 1, "one incarnation: {created:?}");
    let created = created.into_iter().next().expect("one");
    assert!(created > SystemTime::UNIX_EPOCH, "{created:?}");
}

#[tokio::test]
async fn file_storage_outlives_a_server_restart() {
    let mut server = NatsServer::start().await;
    let spec = StreamSpec {
        storage: Storage::File,
        ..StreamSpec::default()
    };
    let broker = connect(&server.url(), &spec).await;
    let sent = numbered("f", 3);
    let mut sequences = Vec::new();
    for payload in &sent {
        sequences.push(broker.publish("/f", payload.clone()).await.expect("ack"));
    }
    let before = broker.ensure_stream(&spec).await.expect("stream state");
    server.restart().await;

    // The client reconnects by itself; the stream is the same incarnation.
    let after = until_ok("stream state", || broker.ensure_stream(&spec)).await;
    assert_eq!(after.created, before.created);
    let mut all = until_ok("subscribe", || broker.subscribe("/f", Start::Earliest)).await;
    let read = take(&mut all, 3).await;
    assert_eq!(payloads(&read), sent);
    assert_eq!(
        read.iter().map(|d| d.sequence).collect::<Vec<_>>(),
        sequences
    );
}

#[tokio::test]
async fn a_memory_stream_restarts_as_a_new_incarnation_that_reuses_sequences() {
    let mut server = NatsServer::start().await;
    let spec = StreamSpec::default();
    let broker = connect(&server.url(), &spec).await;
    let first = broker
        .publish("/m", Bytes::from_static(b"1"))
        .await
        .expect("ack");
    let before = broker.ensure_stream(&spec).await.expect("stream state");
    server.restart().await;

    let after = until_ok("recreate the stream", || broker.ensure_stream(&spec)).await;
    assert!(after.created > before.created, "{after:?} after {before:?}");
    assert_eq!(after.last_sequence, 0, "the messages went with the server");
    // Why the server must offset positions by incarnation (design.md section 6).
    let again = broker
        .publish("/m", Bytes::from_static(b"2"))
        .await
        .expect("ack");
    assert_eq!(again, first);
}

#[tokio::test]
async fn credentials_are_the_ones_async_nats_offers() {
    let token = NatsServer::start_with(&["--auth", "s3cret"]).await;
    let mut config = ConnectConfig::new(token.url());
    let refused = within(TIMEOUT, Broker::connect(&config)).await;
    assert!(
        matches!(refused, Err(BrokerError::Connect(_))),
        "{refused:?}"
    );
    config.credentials = Credentials::Token("s3cret".into());
    let broker = within(TIMEOUT, Broker::connect(&config))
        .await
        .expect("token");
    assert!(broker.is_connected());

    let password = NatsServer::start_with(&["--user", "node", "--pass", "pw"]).await;
    let mut config = ConnectConfig::new(format!(" {} ,", password.url()));
    config.credentials = Credentials::UserPassword {
        user: "node".into(),
        password: "wrong".into(),
    };
    let refused = within(TIMEOUT, Broker::connect(&config)).await;
    assert!(
        matches!(refused, Err(BrokerError::Connect(_))),
        "{refused:?}"
    );
    config.credentials = Credentials::UserPassword {
        user: "node".into(),
        password: "pw".into(),
    };
    within(TIMEOUT, Broker::connect(&config))
        .await
        .expect("user and password");

    config.credentials = Credentials::File("/nonexistent/node.creds".into());
    let missing = Broker::connect(&config).await;
    assert!(
        matches!(missing, Err(BrokerError::Credentials { .. })),
        "{missing:?}"
    );
    let none = Broker::connect(&ConnectConfig::new(" , ")).await;
    assert!(matches!(none, Err(BrokerError::NoUrl)), "{none:?}");
}

#[tokio::test]
async fn the_stream_reads_back_its_shape_and_keeps_its_storage() {
    let server = NatsServer::start().await;
    let spec = StreamSpec {
        storage: Storage::File,
        messages_per_topic: Some(5),
        total_bytes: Some(1 << 20),
        max_age: Some(Duration::from_secs(60)),
        ..StreamSpec::default()
    };
    let broker = connect(&server.url(), &spec).await;
    let read = within(TIMEOUT, broker.stream_spec())
        .await
        .expect("the shape");
    assert_eq!(read, spec);
    let memory = StreamSpec {
        storage: Storage::Memory,
        ..spec.clone()
    };
    let refused = within(TIMEOUT, broker.ensure_stream(&memory)).await;
    assert!(
        matches!(
            refused,
            Err(BrokerError::StorageFixed {
                existing: Storage::File,
                wanted: Storage::Memory
            })
        ),
        "{refused:?}"
    );
    let kept = within(TIMEOUT, broker.stream_spec())
        .await
        .expect("the shape");
    assert_eq!(kept.storage, Storage::File);
}
