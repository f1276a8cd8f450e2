//! The stream-mode subscriber against a real server: positions, start positions, and
//! reconnects that resume without losing or repeating a message, whatever broke the
//! connection (a network reset, a consumer that fell behind, a server restart).

use std::time::Duration;

use futures_util::StreamExt;
use wspubsub_netfault::Proxy;
use wspubsub_pubclient::Publisher;
use wspubsub_server::Options;
use wspubsub_subclient::{
    ClientError, ClientOptions, Event, Reconnect, StartPosition, StreamSubscriber,
    SubscriberOptions,
};
use wspubsub_testkit::{TIMEOUT, TestServer, fake_server, last_err, next_ok, within};

/// Reconnects quickly, so that tests do not wait on the default backoff.
fn quick_reconnect() -> SubscriberOptions {
    SubscriberOptions::default().reconnect(Reconnect::new(
        Duration::from_millis(10),
        Duration::from_millis(200),
    ))
}

/// Publishes the numbers `from..to` as 4 little-endian bytes each, then flushes.
async fn publish_range(publisher: &Publisher, from: u32, to: u32) {
    for n in from..to {
        publisher
            .publish(n.to_le_bytes().to_vec())
            .await
            .expect("publish");
    }
    publisher.flush().await.expect("flush");
}

/// What a subscriber has yielded, checked as it comes.
#[derive(Debug, Default)]
struct Seen {
    /// The numbers the messages carried, in order.
    numbers: Vec<u32>,
    /// The seq of the last message.
    last_seq: Option<u64>,
    /// Why each reconnect happened.
    reconnects: Vec<ClientError>,
    /// The gaps announced: (from, to, reason).
    gaps: Vec<(u64, u64, String)>,
}

impl Seen {
    /// Takes the next event; a message's seq must be above the last one's.
    async fn next(&mut self, subscriber: &mut StreamSubscriber) {
        match next_ok(subscriber).await {
            Event::Message(message) => {
                assert!(
                    self.last_seq.is_none_or(|last| message.seq > last),
                    "seq {} after {:?}",
                    message.seq,
                    self.last_seq
                );
                self.last_seq = Some(message.seq);
                let bytes: [u8; 4] = message.payload.as_ref().try_into().expect("4 bytes");
                self.numbers.push(u32::from_le_bytes(bytes));
            }
            Event::Reconnected { after, .. } => self.reconnects.push(after),
            Event::Gap { from, to, reason } => self.gaps.push((from, to, reason)),
            other => panic!("unexpected event {other:?}"),
        }
    }

    /// Takes events until `count` messages have come.
    async fn messages(&mut self, subscriber: &mut StreamSubscriber, count: usize) {
        while self.numbers.len() < count {
            self.next(subscriber).await;
        }
    }
}

#[tokio::test]
async fn messages_come_with_consecutive_positions_and_their_time() {
    let server = TestServer::start(Options::default()).await;
    let url = server.url("/positions");
    let mut subscriber =
        StreamSubscriber::connect(&url, ClientOptions::default(), SubscriberOptions::default())
            .await
            .expect("connect");
    let publisher = Publisher::connect(&url, ClientOptions::default())
        .await
        .expect("connect");
    let before = std::time::SystemTime::now();
    publish_range(&publisher, 0, 100).await;
    let mut first = None;
    for n in 0..100u32 {
        let Event::Message(message) = next_ok(&mut subscriber).await else {
            panic!("expected a message");
        };
        let first = *first.get_or_insert(message.seq);
        assert_eq!(message.seq, first + u64::from(n));
        assert_eq!(message.payload.as_ref(), n.to_le_bytes());
        assert!(
            message.time() + Duration::from_secs(1) >= before,
            "stamped now"
        );
    }
    subscriber.close().await.expect("clean close");
}

#[tokio::test]
async fn a_start_position_replays_history_first() {
    let server = TestServer::start(Options::default()).await;
    let url = server.url("/replay");
    let publisher = Publisher::connect(&url, ClientOptions::default())
        .await
        .expect("connect");
    // A subscriber that stays while the messages are stored tells us their positions.
    let mut witness =
        StreamSubscriber::connect(&url, ClientOptions::default(), SubscriberOptions::default())
            .await
            .expect("connect");
    publish_range(&publisher, 0, 10).await;
    let mut seen = Seen::default();
    seen.messages(&mut witness, 10).await;
    let fifth = seen.last_seq.expect("messages") - 4;
    for (start, expected) in [
        (StartPosition::Earliest, (0..10).collect::<Vec<u32>>()),
        (StartPosition::Seq(fifth), (5..10).collect()),
    ] {
        let options = SubscriberOptions::default().start(start);
        let mut late = StreamSubscriber::connect(&url, ClientOptions::default(), options)
            .await
            .expect("connect");
        let mut replayed = Seen::default();
        replayed.messages(&mut late, expected.len()).await;
        assert_eq!(replayed.numbers, expected, "from {start:?}");
        assert!(replayed.gaps.is_empty());
    }
}

#[tokio::test]
async fn network_resets_are_resumed_without_loss_or_repetition() {
    // History holds the whole run, however far the publisher gets while we reconnect.
    let server = TestServer::start(Options {
        history_messages: 10_000,
        ..Options::default()
    })
    .await;
    let proxy = Proxy::start(server.addr()).await.expect("proxy");
    let through_proxy = format!("ws://{}/resets", proxy.addr());
    let mut subscriber =
        StreamSubscriber::connect(&through_proxy, ClientOptions::default(), quick_reconnect())
            .await
            .expect("connect");
    let publisher = Publisher::connect(&server.url("/resets"), ClientOptions::default())
        .await
        .expect("connect");
    let publishing = tokio::spawn(async move {
        publish_range(&publisher, 0, 3000).await;
        publisher
    });
    let mut seen = Seen::default();
    let mut resets = 0;
    for at in [500, 1200, 2000] {
        seen.messages(&mut subscriber, at).await;
        // Reset only a connection the server has joined (not one still connecting), so
        // that each reset is one reconnect.
        while seen.reconnects.len() < resets {
            seen.next(&mut subscriber).await;
        }
        resets += proxy.reset();
    }
    seen.messages(&mut subscriber, 3000).await;
    assert_eq!(seen.numbers, (0..3000).collect::<Vec<u32>>());
    assert!(seen.gaps.is_empty(), "{:?}", seen.gaps);
    assert_eq!(resets, 3);
    // The last reconnect may still be under way if the last messages came before it.
    while seen.reconnects.len() < resets {
        seen.next(&mut subscriber).await;
    }
    assert!(
        seen.reconnects.iter().all(|after| after.is_retryable()),
        "{:?}",
        seen.reconnects
    );
    within(TIMEOUT, publishing).await.expect("publisher");
}

#[tokio::test]
async fn a_consumer_that_fell_behind_resumes_from_history() {
    let server = TestServer::start(Options::default()).await;
    let url = server.url("/lagging");
    let small = ClientOptions::default().receive_buffer(16, 1 << 20);
    let mut subscriber = StreamSubscriber::connect(&url, small, quick_reconnect())
        .await
        .expect("connect");
    let publisher = Publisher::connect(&url, ClientOptions::default())
        .await
        .expect("connect");
    // 500 messages into a buffer of 16 that nobody reads: the subscriber lags, closes,
    // and resumes once read, from history (1000 messages by default).
    publish_range(&publisher, 0, 500).await;
    let mut seen = Seen::default();
    seen.messages(&mut subscriber, 500).await;
    assert_eq!(seen.numbers, (0..500).collect::<Vec<u32>>());
    assert!(seen.gaps.is_empty(), "{:?}", seen.gaps);
    assert!(
        matches!(seen.reconnects.first(), Some(ClientError::Lagged { .. })),
        "{:?}",
        seen.reconnects
    );
}

#[tokio::test]
async fn a_restarted_server_is_resumed_with_the_gap_announced() {
    let server = TestServer::start(Options::default()).await;
    let addr = server.addr().to_string();
    let url = server.url("/restart");
    let mut subscriber =
        StreamSubscriber::connect(&url, ClientOptions::default(), quick_reconnect())
            .await
            .expect("connect");
    let publisher = Publisher::connect(&url, ClientOptions::default())
        .await
        .expect("connect");
    publish_range(&publisher, 0, 5).await;
    let mut seen = Seen::default();
    seen.messages(&mut subscriber, 5).await;
    server.stop().await;
    let _restarted = TestServer::start_at(&addr, Options::default()).await;
    // The new topic knows nothing of the old one's messages: the subscriber must say so.
    while seen.gaps.is_empty() {
        seen.next(&mut subscriber).await;
    }
    let (from, to, reason) = seen.gaps[0].clone();
    assert_eq!(reason, "topic_restarted");
    assert_eq!(
        from,
        seen.last_seq.expect("messages") + 1,
        "asked to resume right after"
    );
    assert!(to > from, "the new topic starts above the old one");
    assert_eq!(seen.reconnects.len(), 1);
    let publisher = Publisher::connect(&url, ClientOptions::default())
        .await
        .expect("connect");
    publish_range(&publisher, 5, 10).await;
    seen.messages(&mut subscriber, 10).await;
    assert_eq!(seen.numbers, (0..10).collect::<Vec<u32>>());
}

#[tokio::test]
async fn without_a_policy_the_first_break_ends_the_subscriber() {
    let server = TestServer::start(Options::default()).await;
    let proxy = Proxy::start(server.addr()).await.expect("proxy");
    let mut subscriber = StreamSubscriber::connect(
        &format!("ws://{}/once", proxy.addr()),
        ClientOptions::default(),
        SubscriberOptions::default(),
    )
    .await
    .expect("connect");
    assert_eq!(proxy.reset(), 1);
    let error = last_err(&mut subscriber).await;
    assert!(matches!(error, ClientError::ConnectionLost(_)), "{error:?}");
    assert!(subscriber.next().await.is_none());
}

#[tokio::test]
async fn a_server_without_stream_mode_is_named_as_such() {
    let addr = fake_server(|stream| async move {
        // A protocol v1 server: it ignores the offered subprotocol.
        let _socket = tokio_tungstenite::accept_async(stream).await;
    })
    .await;
    let refused = StreamSubscriber::connect(
        &format!("ws://{addr}/t"),
        ClientOptions::default(),
        quick_reconnect(),
    )
    .await;
    assert!(
        matches!(refused, Err(ClientError::NoStreamMode)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_start_position_in_the_url_is_refused() {
    let refused = StreamSubscriber::connect(
        "ws://127.0.0.1:1/t?from=3",
        ClientOptions::default(),
        SubscriberOptions::default(),
    )
    .await;
    assert!(
        matches!(refused, Err(ClientError::InvalidUrl(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_resume_example_prints_history_with_positions() {
    use tokio::io::AsyncBufReadExt;

    let server = TestServer::start(Options::default()).await;
    let url = server.url("/example");
    let publisher = Publisher::connect(&url, ClientOptions::default())
        .await
        .expect("connect");
    publish_range(&publisher, 0, 3).await;
    publisher.close().await.expect("close");
    // Cargo builds the examples next to the test binaries' directory.
    let example = std::env::current_exe()
        .expect("test binary")
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target directory")
        .join("examples/subscriber_resume");
    let mut child = tokio::process::Command::new(example)
        .env("PUBSUB_URL", &url)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run the example");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut seqs = Vec::new();
    for n in 0..3u32 {
        let line = within(TIMEOUT, lines.next_line())
            .await
            .expect("stdout")
            .expect("a line");
        let (seq, payload) = line.split_once(": ").expect("seq: payload");
        seqs.push(seq.parse::<u64>().expect("a seq"));
        let expected = String::from_utf8_lossy(&n.to_le_bytes()).into_owned();
        assert_eq!(payload, expected);
    }
    assert!(
        seqs.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "{seqs:?}"
    );
}

#[tokio::test]
async fn a_pattern_subscription_names_each_topic_and_reconnects_live() {
    let server = TestServer::start(Options::default()).await;
    let proxy = Proxy::start(server.addr()).await.expect("proxy");
    let pattern = format!("ws://{}/chat/*", proxy.addr());
    let mut subscriber =
        StreamSubscriber::connect(&pattern, ClientOptions::default(), quick_reconnect())
            .await
            .expect("connect");
    let mut publishers = Vec::new();
    for topic in ["/chat/a", "/chat/b"] {
        let publisher = Publisher::connect(&server.url(topic), ClientOptions::default())
            .await
            .expect("connect");
        publishers.push((topic, publisher));
    }
    for round in 0..2 {
        for (topic, publisher) in &publishers {
            let payload = format!("{topic} round {round}");
            publisher.publish(payload.clone()).await.expect("publish");
            publisher.flush().await.expect("flush");
            let Event::Message(message) = next_ok(&mut subscriber).await else {
                panic!("expected a message");
            };
            assert_eq!(message.topic.as_deref(), Some(*topic));
            assert_eq!(message.payload, payload.as_bytes());
        }
        if round == 0 {
            assert_eq!(proxy.reset(), 1);
            // Live again (a resume at a seq would be refused: a pattern is live only).
            let event = next_ok(&mut subscriber).await;
            assert!(matches!(event, Event::Reconnected { .. }), "{event:?}");
        }
    }
}
