//! History and start positions, end to end with raw (v1) subscribers: replay then live with
//! no gap and no duplicate (under load), 416 for positions history no longer covers (and
//! `gap=ok`), history off, topics outliving their last client by the history age, and the
//! process-wide byte budget.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use wspubsub_server::Options;
use wspubsub_server::protocol::Role;
use wspubsub_testkit::{
    RawClient, TIMEOUT, TestServer, connect, metric, next_binary, refusal, scrape, send,
    try_connect, within,
};

fn numbered(n: u32) -> Bytes {
    Bytes::copy_from_slice(&n.to_be_bytes())
}

fn number(message: &Bytes) -> u32 {
    u32::from_be_bytes(message[..4].try_into().expect("a numbered message"))
}

/// Reads numbered messages until `last` arrives; returns their numbers.
async fn numbers_until(client: &mut RawClient, last: u32) -> Vec<u32> {
    let mut numbers = Vec::new();
    loop {
        let n = number(&next_binary(client).await);
        numbers.push(n);
        if n >= last {
            return numbers;
        }
    }
}

/// The earliest position a 416 names (`... the earliest position available is N; ...`).
fn earliest_in(body: &str) -> u64 {
    let (_, after) = body
        .split_once("earliest position available is ")
        .unwrap_or_else(|| panic!("no earliest position in {body:?}"));
    after
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no number in {body:?}"))
}

/// Asks for `query` on `path` and expects a 416; returns its body.
async fn refused_416(server: &TestServer, path: &str, query: &str) -> String {
    let url = format!("{}?{query}", server.url(path));
    let (status, body) = refusal(query, try_connect(&url, Role::Subscriber, None).await);
    assert_eq!(status, 416, "{query}: {body}");
    assert_eq!(body.trim_end().lines().count(), 1, "one line: {body:?}");
    body
}

async fn subscribe(server: &TestServer, path: &str, query: &str) -> RawClient {
    connect(
        &format!("{}?{query}", server.url(path)),
        Role::Subscriber,
        None,
    )
    .await
}

/// Publishes `range` on `path` and waits until a live subscriber got them all (so the topic
/// has taken them).
async fn publish_all(
    server: &TestServer,
    publisher: &mut RawClient,
    path: &str,
    range: std::ops::Range<u32>,
) {
    let mut witness = subscribe(server, path, "from=latest").await;
    for n in range.clone() {
        send(publisher, numbered(n)).await;
    }
    let expected: Vec<u32> = range.clone().collect();
    assert_eq!(numbers_until(&mut witness, range.end - 1).await, expected);
}

#[tokio::test]
async fn replay_then_live_has_no_gap_or_duplicate_while_publishing() {
    const TOTAL: u32 = 4000;
    let server = TestServer::start(Options {
        history_messages: 100_000,
        ..Options::default()
    })
    .await;
    let started_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
        - 1000;
    let mut live = subscribe(&server, "/load", "").await;
    let mut publisher = connect(&server.url("/load"), Role::Publisher, None).await;
    send(&mut publisher, numbered(0)).await;
    assert_eq!(number(&next_binary(&mut live).await), 0);
    // History holds everything since the topic began, so the earliest seq is message 0's.
    let first_seq = earliest_in(&refused_416(&server, "/load", "from=0").await);
    let publishing = tokio::spawn(async move {
        for n in 1..TOTAL {
            send(&mut publisher, numbered(n)).await;
        }
        publisher
    });
    // Join while the publisher publishes, each once the live stream has moved on a bit.
    let mut joined = Vec::new();
    for (i, query) in [
        "from=earliest".to_owned(),
        format!("from={}", first_seq + 3),
        format!("since={started_ms}"),
        format!("from={}", first_seq + 1),
        "from=earliest&gap=ok".to_owned(),
    ]
    .into_iter()
    .enumerate()
    {
        let wait_for = 200 * (i as u32 + 1);
        let seen = numbers_until(&mut live, wait_for).await;
        assert!(seen.windows(2).all(|w| w[1] == w[0] + 1));
        let first = if query == format!("from={}", first_seq + 3) {
            3
        } else if query == format!("from={}", first_seq + 1) {
            1
        } else {
            0
        };
        joined.push((
            query.clone(),
            first,
            subscribe(&server, "/load", &query).await,
        ));
    }
    let _publisher = within(TIMEOUT, publishing).await.expect("publisher task");
    for (query, first, mut client) in joined {
        let numbers = numbers_until(&mut client, TOTAL - 1).await;
        let expected: Vec<u32> = (first..TOTAL).collect();
        assert!(
            numbers == expected,
            "{query}: got {} messages from {:?}, first gap or duplicate at {:?}",
            numbers.len(),
            numbers.first(),
            numbers.windows(2).find(|w| w[1] != w[0] + 1)
        );
    }
    let text = scrape(server.addr()).await;
    assert_eq!(metric(&text, "wspubsub_history_replays_total"), Some(5.0));
}

/// A server keeping `history_messages` per topic, with messages `0..5` taken on `path`: the
/// server, the topic's publisher and the earliest position its history has.
async fn five_published(history_messages: usize, path: &str) -> (TestServer, RawClient, u64) {
    let server = TestServer::start(Options {
        history_messages,
        ..Options::default()
    })
    .await;
    let mut publisher = connect(&server.url(path), Role::Publisher, None).await;
    publish_all(&server, &mut publisher, path, 0..5).await;
    // A seq from before the topic began names the earliest position available.
    let earliest = earliest_in(&refused_416(&server, path, "from=0").await);
    (server, publisher, earliest)
}

#[tokio::test]
async fn an_evicted_position_is_refused_with_416_unless_the_gap_is_accepted() {
    let (server, mut publisher, earliest) = five_published(3, "/t").await;
    let body = refused_416(&server, "/t", &format!("from={}", earliest - 1)).await;
    assert!(body.contains("history_evicted"), "{body}");
    assert_eq!(earliest_in(&body), earliest);
    let mut exact = subscribe(&server, "/t", &format!("from={earliest}")).await;
    let mut accepted = subscribe(&server, "/t", &format!("from={}&gap=ok", earliest - 1)).await;
    let mut oldest = subscribe(&server, "/t", "from=earliest").await;
    send(&mut publisher, numbered(5)).await;
    for client in [&mut exact, &mut accepted, &mut oldest] {
        assert_eq!(numbers_until(client, 5).await, [2, 3, 4, 5]);
    }
    let ahead = refused_416(&server, "/t", &format!("from={}", earliest + 100)).await;
    assert!(ahead.contains("position_ahead"), "{ahead}");
    let text = scrape(server.addr()).await;
    let refused = "wspubsub_handshake_rejections_total{status=\"416\",reason=\"history_gap\"}";
    assert_eq!(
        metric(&text, refused),
        Some(3.0),
        "from=0, the evicted one, the one ahead"
    );
    let gaps = "wspubsub_history_gaps_total{reason=\"history_evicted\",outcome=\"accepted\"}";
    assert_eq!(metric(&text, gaps), Some(1.0));
    let evicted = "wspubsub_history_evictions_total{reason=\"messages\"}";
    assert_eq!(metric(&text, evicted), Some(3.0), "2 of 0..5, 1 more for 5");
    assert_eq!(metric(&text, "wspubsub_history_messages"), Some(3.0));
}

#[tokio::test]
async fn with_history_off_earliest_is_latest_and_every_past_position_is_a_gap() {
    let (server, mut publisher, head) = five_published(0, "/off").await;
    let body = refused_416(&server, "/off", &format!("from={}", head - 1)).await;
    assert!(body.contains("history_off"), "{body}");
    let mut earliest = subscribe(&server, "/off", "from=earliest").await;
    let mut at_head = subscribe(&server, "/off", &format!("from={head}")).await;
    send(&mut publisher, numbered(5)).await;
    assert_eq!(
        numbers_until(&mut earliest, 5).await,
        [5],
        "nothing replayed"
    );
    assert_eq!(numbers_until(&mut at_head, 5).await, [5]);
    let text = scrape(server.addr()).await;
    assert_eq!(metric(&text, "wspubsub_history_bytes"), Some(0.0));
}

#[tokio::test]
async fn a_topic_outlives_its_last_client_by_the_history_age() {
    let age = Duration::from_secs(2);
    let server = TestServer::start(Options {
        history_age: age,
        ..Options::default()
    })
    .await;
    let mut publisher = connect(&server.url("/keep"), Role::Publisher, None).await;
    publish_all(&server, &mut publisher, "/keep", 0..3).await;
    let taken = Instant::now();
    let earliest = earliest_in(&refused_416(&server, "/keep", "from=0").await);
    drop(publisher);
    within(TIMEOUT, async {
        // No client left: the topic stays for its history.
        while server.handle().topic_count() != 1 || connections(&server).await != 0.0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let mut late = subscribe(&server, "/keep", "from=earliest").await;
    assert_eq!(numbers_until(&mut late, 2).await, [0, 1, 2]);
    assert!(
        taken.elapsed() < age,
        "the machine was too slow for this test's age"
    );
    drop(late);
    within(TIMEOUT, async {
        while server.handle().topic_count() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(taken.elapsed() >= age, "gone only once its history expired");
    let body = refused_416(&server, "/keep", &format!("from={earliest}")).await;
    assert!(body.contains("topic_restarted"), "{body}");
    assert!(
        earliest_in(&body) > earliest,
        "the new topic starts above the old"
    );
}

async fn connections(server: &TestServer) -> f64 {
    let text = scrape(server.addr()).await;
    ["publisher", "subscriber"]
        .iter()
        .filter_map(|role| metric(&text, &format!("wspubsub_connections{{role=\"{role}\"}}")))
        .sum()
}

#[tokio::test]
async fn the_total_budget_evicts_the_oldest_messages_across_topics() {
    // Frames of 100-byte messages are 102 bytes: the budget holds 10 of them.
    let server = TestServer::start(Options {
        history_total_bytes: 1020,
        ..Options::default()
    })
    .await;
    let message = |n: u32| {
        let mut bytes = numbered(n).to_vec();
        bytes.resize(100, 0);
        Bytes::from(bytes)
    };
    let mut to_a = connect(&server.url("/a"), Role::Publisher, None).await;
    let mut to_b = connect(&server.url("/b"), Role::Publisher, None).await;
    let mut on_a = subscribe(&server, "/a", "").await;
    let mut on_b = subscribe(&server, "/b", "").await;
    for n in 0..10 {
        send(&mut to_a, message(n)).await;
    }
    assert_eq!(numbers_until(&mut on_a, 9).await.len(), 10);
    for n in 0..5 {
        send(&mut to_b, message(n)).await;
    }
    assert_eq!(numbers_until(&mut on_b, 4).await.len(), 5);
    let mut replay_a = subscribe(&server, "/a", "from=earliest").await;
    let mut replay_b = subscribe(&server, "/b", "from=earliest").await;
    assert_eq!(numbers_until(&mut replay_a, 9).await, [5, 6, 7, 8, 9]);
    assert_eq!(numbers_until(&mut replay_b, 4).await, [0, 1, 2, 3, 4]);
    let text = scrape(server.addr()).await;
    let evicted = "wspubsub_history_evictions_total{reason=\"total_bytes\"}";
    assert_eq!(metric(&text, evicted), Some(5.0));
    assert_eq!(metric(&text, "wspubsub_history_bytes"), Some(1020.0));
}

#[tokio::test]
async fn unreadable_start_positions_are_refused_with_400() {
    let server = TestServer::start(Options::default()).await;
    for query in [
        "from=soon",
        "since=yesterday",
        "from=1&since=1",
        "gap=maybe",
    ] {
        let url = format!("{}?{query}", server.url("/t"));
        let (status, body) = refusal(query, try_connect(&url, Role::Subscriber, None).await);
        assert_eq!(
            (status, body.trim_end().lines().count()),
            (400, 1),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn a_topic_kept_for_its_history_does_not_hold_up_shutdown() {
    let close_deadline = Duration::from_secs(5);
    let server = TestServer::start(Options {
        close_deadline,
        ..Options::default()
    })
    .await;
    let mut publisher = connect(&server.url("/kept"), Role::Publisher, None).await;
    publish_all(&server, &mut publisher, "/kept", 0..3).await;
    drop(publisher);
    within(TIMEOUT, async {
        while connections(&server).await != 0.0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(server.handle().topic_count(), 1, "kept for its history");
    let stopping = Instant::now();
    server.stop().await;
    assert!(
        stopping.elapsed() < close_deadline,
        "stopped in {:?}, not at the close deadline",
        stopping.elapsed()
    );
}
