//! Flow control end to end (`--slow-subscriber`). With `hold`, subscribers that read, however
//! slowly, get every message of a burst far larger than their bound and are never cut, while
//! one that stops reading is closed with 4000 once its socket has taken no bytes for the write
//! timeout, and its topic goes on without it, and a held publisher still hears from the
//! server. With `close`, the same slow readers are cut at their bound.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use wspubsub_server::protocol::{CloseCode, Role};
use wspubsub_server::{Event, EventKind, Options, SlowSubscriber};
use wspubsub_testkit::{
    TIMEOUT, TestServer, connect, metric, next_binary, scrape, send, unread_subscriber, within,
};

/// Payload size of every test message (its number in the first 4 bytes).
const MESSAGE: usize = 4 << 10;

/// Bound on a subscriber's pending bytes: far below every burst here.
const BOUND: usize = 256 << 10;

fn options(policy: SlowSubscriber, write_timeout: Duration) -> Options {
    Options {
        max_message_size: 64 << 10,
        subscriber_queue_bytes: BOUND,
        slow_subscriber: policy,
        write_timeout,
        close_deadline: Duration::from_secs(2),
        ..Options::default()
    }
}

fn numbered(n: u32) -> Vec<u8> {
    let mut message = vec![0u8; MESSAGE];
    message[..4].copy_from_slice(&n.to_be_bytes());
    message
}

/// Reads numbered messages in order at a steady, modest pace (a pause after every 16), until
/// it has `count` or the server closes; says how many it read and the close code, if any.
async fn read_steadily(client: &mut WebSocketStream<TcpStream>, count: u32) -> (u32, Option<u16>) {
    within(TIMEOUT, async {
        let mut read = 0;
        while read < count {
            match client.next().await {
                Some(Ok(Message::Binary(message))) => {
                    assert_eq!(message[..4], read.to_be_bytes(), "in order, no gap");
                    read += 1;
                    if read % 16 == 0 {
                        // Pacing, not synchronisation: this reader is slower than the publisher.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return (read, frame.map(|frame| u16::from(frame.code)));
                }
                Some(Ok(_)) => {}
                other => panic!("expected a message or a close, got {other:?}"),
            }
        }
        (read, None)
    })
    .await
}

/// Publishes a burst of `BURST` messages (16 MiB, 64 times the bound) to two steady readers
/// and says what each got. Returns the server too, for its metrics.
async fn burst_to_steady_readers(policy: SlowSubscriber) -> (TestServer, Vec<(u32, Option<u16>)>) {
    const BURST: u32 = 4096;
    let server = TestServer::start(options(policy, Duration::from_secs(10))).await;
    let mut readers = Vec::new();
    for _ in 0..2 {
        let stream = unread_subscriber(server.addr(), "/burst").await;
        let client = WebSocketStream::from_raw_socket(stream, WsRole::Client, None).await;
        readers.push(tokio::spawn(async move {
            let mut client = client;
            read_steadily(&mut client, BURST).await
        }));
    }
    let mut publisher = connect(&server.url("/burst"), Role::Publisher, None).await;
    let publishing = tokio::spawn(async move {
        for n in 0..BURST {
            send(&mut publisher, numbered(n)).await;
        }
        publisher
    });
    let mut outcomes = Vec::new();
    for reader in readers {
        outcomes.push(reader.await.expect("reader"));
    }
    let _publisher = within(TIMEOUT, publishing).await.expect("publisher");
    (server, outcomes.into_iter().collect())
}

#[tokio::test]
async fn hold_delivers_a_burst_far_past_the_bound_to_slow_readers_and_cuts_none() {
    let (server, outcomes) = burst_to_steady_readers(SlowSubscriber::Hold).await;
    assert_eq!(
        outcomes,
        [(4096, None), (4096, None)],
        "everything, nobody cut"
    );
    let metrics = scrape(server.addr()).await;
    let held = metric(
        &metrics,
        "wspubsub_publish_held_seconds_total{reason=\"subscriber_backlog\"}",
    );
    assert!(held.is_some_and(|seconds| seconds > 0.0), "{metrics}");
    assert_eq!(
        metric(
            &metrics,
            "wspubsub_closes_total{reason=\"slow_subscriber\"}"
        ),
        None,
        "{metrics}"
    );
}

#[tokio::test]
async fn close_cuts_the_same_slow_readers_at_their_bound() {
    let (_server, outcomes) = burst_to_steady_readers(SlowSubscriber::Close).await;
    for (read, close) in outcomes {
        assert!(read < 4096, "cut before the end of the burst");
        assert_eq!(close, Some(CloseCode::SlowSubscriber.code()));
    }
}

/// What [`a_stalled_subscriber_is_cut`] saw.
struct Cut {
    /// The stalled subscriber's departure.
    left: Event,
    /// When it came, from the first message published.
    after: Duration,
    /// The server's metrics at the end.
    metrics: String,
}

/// A topic with a healthy subscriber and one that never reads: publishes in rounds the
/// healthy one reads, until the server reports the stalled one gone; then publishes more,
/// which the healthy one must still get.
async fn a_stalled_subscriber_is_cut(options: Options) -> Cut {
    a_stalled_reader_of("/stall", options).await
}

/// [`a_stalled_subscriber_is_cut`], the stalled subscriber subscribed to `path` (the topic
/// `/stall`, or a pattern that matches it).
async fn a_stalled_reader_of(path: &str, options: Options) -> Cut {
    // A round and the one before it (held until the next read) stay well within the bound.
    const ROUND: u32 = 16;
    let server = TestServer::start(options).await;
    let mut events = server.handle().events();
    let mut healthy = connect(&server.url("/stall"), Role::Subscriber, None).await;
    let _stalled = unread_subscriber(server.addr(), path).await;
    let mut publisher = connect(&server.url("/stall"), Role::Publisher, None).await;
    let start = Instant::now();
    let mut sent = 0;
    let left = 'rounds: loop {
        assert!(
            start.elapsed() < TIMEOUT,
            "the stalled subscriber was never cut"
        );
        for n in sent..sent + ROUND {
            send(&mut publisher, numbered(n)).await;
        }
        for n in sent..sent + ROUND {
            let message = next_binary(&mut healthy).await;
            assert_eq!(message[..4], n.to_be_bytes(), "healthy: in order, no gap");
        }
        sent += ROUND;
        while let Ok(event) = events.try_recv() {
            if event.kind == EventKind::SubscriberLeft {
                break 'rounds (event, start.elapsed());
            }
        }
    };
    // The topic goes on without it.
    for n in sent..sent + ROUND {
        send(&mut publisher, numbered(n)).await;
    }
    for n in sent..sent + ROUND {
        let message = next_binary(&mut healthy).await;
        assert_eq!(message[..4], n.to_be_bytes(), "healthy after the cut");
    }
    Cut {
        left: left.0,
        after: left.1,
        metrics: scrape(server.addr()).await,
    }
}

/// Checks that the stalled subscriber was closed with 4000 within the write timeout and the
/// time its bound takes to fill.
fn check_cut_in_time(cut: &Cut, write_timeout: Duration) {
    let detail = cut.left.detail.clone().unwrap_or_default();
    assert!(detail.contains("closed with 4000"), "{detail}");
    // The bound (256 KiB plus socket buffers) fills within moments; 20 s is generous.
    assert!(
        cut.after < write_timeout + Duration::from_secs(20),
        "within the write timeout and the time its bound takes to fill: {:?}",
        cut.after
    );
}

#[tokio::test]
async fn hold_cuts_a_subscriber_that_stops_reading_after_the_write_timeout() {
    let write_timeout = Duration::from_secs(1);
    let cut = a_stalled_subscriber_is_cut(options(SlowSubscriber::Hold, write_timeout)).await;
    check_cut_in_time(&cut, write_timeout);
    let detail = cut.left.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("no bytes for the write timeout"),
        "{detail}"
    );
    assert!(
        cut.after >= write_timeout,
        "not before the write timeout: {:?}",
        cut.after
    );
    // The topic waited for it meanwhile.
    let held = metric(
        &cut.metrics,
        "wspubsub_publish_held_seconds_total{reason=\"subscriber_backlog\"}",
    );
    assert!(held.is_some_and(|seconds| seconds > 0.0), "{}", cut.metrics);
}

#[tokio::test]
async fn a_pattern_subscriber_that_stops_reading_is_cut_under_either_policy() {
    let write_timeout = Duration::from_secs(1);
    for policy in [SlowSubscriber::Hold, SlowSubscriber::Close] {
        let cut = a_stalled_reader_of("/*", options(policy, write_timeout)).await;
        check_cut_in_time(&cut, write_timeout);
    }
}

#[tokio::test]
async fn close_cuts_a_subscriber_that_stops_reading_and_never_holds_the_topic() {
    let write_timeout = Duration::from_secs(1);
    let cut = a_stalled_subscriber_is_cut(options(SlowSubscriber::Close, write_timeout)).await;
    check_cut_in_time(&cut, write_timeout);
    assert_eq!(
        metric(
            &cut.metrics,
            "wspubsub_publish_held_seconds_total{reason=\"subscriber_backlog\"}"
        ),
        None,
        "{}",
        cut.metrics
    );
}

#[tokio::test]
async fn a_held_publisher_still_hears_from_the_server() {
    let options = Options {
        pong_deadline: Duration::from_secs(1),
        // A write timeout longer than the test: the stalled subscriber holds the topic
        // throughout.
        ..options(SlowSubscriber::Hold, TIMEOUT * 2)
    };
    let server = TestServer::start(options).await;
    let mut events = server.handle().events();
    let _stalled = unread_subscriber(server.addr(), "/held").await;
    let publisher = connect(&server.url("/held"), Role::Publisher, None).await;
    let (mut sink, mut stream) = publisher.split();
    let publishing = tokio::spawn(async move {
        // 40 MiB: the topic holds this publisher long before the end.
        for n in 0..10_240 {
            if sink
                .send(Message::Binary(numbered(n).into()))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    // Pings come at 0.7 s; a publisher stuck behind a held topic would hear none.
    let pings = within(TIMEOUT, async {
        let mut pings = 0;
        while pings < 5 {
            match stream.next().await {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Ok(_)) => {}
                other => panic!("the server ended the publisher: {other:?}"),
            }
        }
        pings
    })
    .await;
    assert_eq!(pings, 5);
    // Still held: the server took only what its queues and the bound hold.
    let received = metric(
        &scrape(server.addr()).await,
        "wspubsub_messages_received_total",
    );
    assert!(
        received.is_some_and(|count| count < 5000.0),
        "the publisher is held: {received:?}"
    );
    while let Ok(event) = events.try_recv() {
        assert_ne!(event.kind, EventKind::SubscriberLeft, "{event:?}");
        assert_ne!(event.kind, EventKind::PublisherLeft, "{event:?}");
    }
    publishing.abort();
}
