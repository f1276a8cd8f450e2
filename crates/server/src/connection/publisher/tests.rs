//! A stream-mode publisher's acks, its connection task driven over an in-memory socket with
//! tokio's clock paused: time moves only when every task waits, so rules about time are
//! checked without measuring wall time (nothing here can flake on a loaded machine).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wspubsub_fanout::{Form, FrameQueue};
use wspubsub_protocol::{Control, Start};

use super::run_publisher;
use crate::connection::{Connection, Ending, finish, lifecycle};
use crate::event::EventSink;
use crate::metrics::Metrics;
use crate::options::{Options, SlowSubscriber};
use crate::retention::HistoryPool;
use crate::stats::{ClientKind, ClientRecord};
use crate::topic::{Topic, TopicFeed};

/// Bounds every wait of these tests: in paused time it only passes once all tasks are stuck.
const STUCK: Duration = Duration::from_secs(60);

/// A topic and a stream-mode publisher's connection task on it, served over an in-memory
/// socket.
struct StreamPublisher {
    topic: Topic,
    /// The publisher's end of the socket.
    client: WebSocketStream<DuplexStream>,
    /// The server's shutdown.
    shutdown: CancellationToken,
    /// The connection task, as the server runs it: the publisher's task, then its close.
    serving: JoinHandle<Ending>,
}

/// Starts topic `/t` and a stream-mode publisher of it whose socket buffers `buffer` bytes
/// each way.
async fn stream_publisher(options: Options, buffer: usize) -> StreamPublisher {
    let metrics = Arc::new(Metrics::new());
    let pool = HistoryPool::new(&options, metrics.history.clone());
    let topic = Topic::spawn(
        "/t".into(),
        &options,
        &TaskTracker::new(),
        &metrics,
        &Arc::new(pool),
        None,
    );
    let publisher = topic.publisher(Form::Enveloped);
    let config = lifecycle::websocket_config(&options);
    let shutdown = CancellationToken::new();
    let connection = Connection {
        id: "test-publisher".into(),
        topic: "/t".into(),
        options: Arc::new(options),
        shutdown: shutdown.clone(),
        events: EventSink::new(),
        metrics,
        token_expires: None,
        record: Arc::new(ClientRecord::new(
            "test-publisher".into(),
            ClientKind::Publisher,
            ([127, 0, 0, 1], 1).into(),
        )),
    };
    let (server_io, client_io) = tokio::io::duplex(buffer);
    let serving = tokio::spawn(async move {
        let mut ws =
            WebSocketStream::from_raw_socket(server_io, WsRole::Server, Some(config)).await;
        let ending = run_publisher(&mut ws, &connection, &publisher).await;
        drop(publisher);
        finish(&mut ws, &ending, connection.options.close_deadline).await;
        ending
    });
    let client = WebSocketStream::from_raw_socket(client_io, WsRole::Client, None).await;
    StreamPublisher {
        topic,
        client,
        shutdown,
        serving,
    }
}

/// Lets every other task run until all of them wait: paused time advances only then.
async fn until_idle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Message `n` of `len` bytes.
fn numbered(n: u64, len: usize) -> Message {
    let mut payload = vec![0; len.max(8)];
    payload[..8].copy_from_slice(&n.to_be_bytes());
    Message::Binary(Bytes::from(payload))
}

/// What the publisher's client reads next: an ack's count, or `None` for the close frame
/// (which must say 1001).
async fn next_ack(
    client: &mut (impl StreamExt<Item = tokio_tungstenite::tungstenite::Result<Message>> + Unpin),
) -> Option<u64> {
    match tokio::time::timeout(STUCK, client.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => match Control::from_json(&text) {
            Ok(Control::Ack { count, .. }) => Some(count),
            other => panic!("expected an ack, got {other:?}"),
        },
        Ok(Some(Ok(Message::Close(Some(frame))))) => {
            assert_eq!(u16::from(frame.code), 1001, "closed for the shutdown");
            None
        }
        other => panic!("expected an ack or the close, got {other:?}"),
    }
}

/// Reads the topic to its end as a subscriber's task does at shutdown; says how many
/// messages it read.
async fn drain(mut feed: TopicFeed) -> u64 {
    feed.drain();
    let mut out = FrameQueue::default();
    let mut messages = 0;
    loop {
        let batch = feed.next_batch(&mut out, usize::MAX).expect("not lagged");
        messages += batch.messages;
        out.advance(out.remaining());
        feed.written();
        if batch.finished {
            return messages;
        }
        if !batch.more_pending {
            feed.changed().await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn at_shutdown_the_last_ack_before_the_close_covers_every_message_read() {
    const SENT: u64 = 20;
    let options = Options {
        subscriber_queue_messages: 1,
        subscriber_queue_bytes: 16 << 20,
        slow_subscriber: SlowSubscriber::Hold,
        ..Options::default()
    };
    let mut stream = stream_publisher(options, 64 << 10).await;
    // A subscriber that reads nothing yet: a message of a chunk (64 KiB) each, the topic
    // stores the first and holds the others.
    let feed = stream
        .topic
        .subscriber(Start::default(), Form::Raw)
        .expect("latest");
    for n in 0..SENT {
        stream
            .client
            .send(numbered(n, 64 << 10))
            .await
            .expect("written");
    }
    until_idle().await;
    assert!(
        stream.topic.storing(),
        "read by the server, not yet stored: the topic waits for its subscriber"
    );
    stream.shutdown.cancel();
    let draining = tokio::spawn(drain(feed));
    let mut last = 0;
    while let Some(count) = next_ack(&mut stream.client).await {
        assert!(count > last, "cumulative: {count} after {last}");
        last = count;
    }
    assert_eq!(
        last, SENT,
        "the last ack before the close covers every message"
    );
    let ending = tokio::time::timeout(STUCK, stream.serving).await;
    assert_eq!(ending.expect("closed").expect("task"), Ending::Shutdown);
    assert_eq!(
        draining.await.expect("drained"),
        SENT,
        "and all are delivered"
    );
}

#[tokio::test(start_paused = true)]
async fn acks_piled_up_behind_a_busy_socket_go_out_as_soon_as_it_takes_bytes() {
    const SENT: u64 = 200;
    // A socket that holds about two acks: the server's ack writes block while the client
    // does not read, and the acks of what the topic stores meanwhile pile up.
    let stream = stream_publisher(Options::default(), 128).await;
    let (mut sink, mut source) = stream.client.split();
    let sending = tokio::spawn(async move {
        for n in 0..SENT {
            sink.send(numbered(n, 8)).await.expect("written");
        }
        sink
    });
    until_idle().await;
    assert!(
        !sending.is_finished(),
        "the server reads no more while an ack waits for the socket"
    );
    // From here on nothing but the socket holds an ack back: every message is acked without
    // time passing, so well within 50 ms of its append, and in paused time this cannot
    // depend on the machine's load.
    let within_50ms = tokio::time::timeout(Duration::from_millis(50), async {
        let mut last = 0;
        while last < SENT {
            let count = next_ack(&mut source).await.expect("no close");
            assert!(count > last, "cumulative: {count} after {last}");
            last = count;
        }
    });
    within_50ms
        .await
        .expect("every message acked within 50 ms once the socket takes bytes");
    let sent = tokio::time::timeout(STUCK, sending).await;
    assert!(matches!(sent, Ok(Ok(_))), "and everything was read");
}
