//! Delivery guarantees, end to end: topics stay apart, one order for every subscriber, slow
//! subscribers cut without slowing others, graceful shutdown, no leaked topics.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use wspubsub_server::protocol::{CloseCode, ROLE_HEADER, Role};
use wspubsub_server::{EventKind, Options};
use wspubsub_testkit::{
    TIMEOUT, TestServer, connect, next_binary, read_until_close, send, wait_for_event, within,
};

fn numbered(publisher: u8, n: u32) -> Bytes {
    let mut message = vec![publisher];
    message.extend_from_slice(&n.to_be_bytes());
    Bytes::from(message)
}

#[tokio::test]
async fn topics_stay_apart() {
    let server = TestServer::start(Options::default()).await;
    let mut on_a = connect(&server.url("/a"), Role::Subscriber, None).await;
    let mut on_b = connect(&server.url("/b"), Role::Subscriber, None).await;
    let mut on_a_child = connect(&server.url("/a/child"), Role::Subscriber, None).await;
    let mut to_a = connect(&server.url("/a"), Role::Publisher, None).await;
    let mut to_b = connect(&server.url("/b"), Role::Publisher, None).await;
    let mut to_a_child = connect(&server.url("/a/child"), Role::Publisher, None).await;
    send(&mut to_a, &b"for a"[..]).await;
    send(&mut to_b, &b"for b"[..]).await;
    send(&mut to_a_child, &b"for a/child"[..]).await;
    send(&mut to_a, &b"a again"[..]).await;
    assert_eq!(next_binary(&mut on_a).await, &b"for a"[..]);
    assert_eq!(next_binary(&mut on_a).await, &b"a again"[..]);
    assert_eq!(next_binary(&mut on_b).await, &b"for b"[..]);
    assert_eq!(next_binary(&mut on_a_child).await, &b"for a/child"[..]);
    assert_eq!(server.handle().topic_count(), 3);
}

#[tokio::test]
async fn every_subscriber_sees_the_same_order_and_each_publishers_own_order() {
    const PER_PUBLISHER: u32 = 500;
    let server = TestServer::start(Options::default()).await;
    let mut subscribers = Vec::new();
    for _ in 0..3 {
        subscribers.push(connect(&server.url("/order"), Role::Subscriber, None).await);
    }
    let mut publishers = Vec::new();
    for id in 0..2u8 {
        let mut publisher = connect(&server.url("/order"), Role::Publisher, None).await;
        publishers.push(tokio::spawn(async move {
            for n in 0..PER_PUBLISHER {
                send(&mut publisher, numbered(id, n)).await;
            }
            publisher
        }));
    }
    let mut orders = Vec::new();
    for subscriber in &mut subscribers {
        let mut received = Vec::new();
        for _ in 0..2 * PER_PUBLISHER {
            received.push(next_binary(subscriber).await);
        }
        orders.push(received);
    }
    for publisher in publishers {
        publisher.await.expect("publisher task");
    }
    assert!(
        orders.windows(2).all(|pair| pair[0] == pair[1]),
        "one order for all subscribers"
    );
    for id in 0..2u8 {
        let own: Vec<Bytes> = orders[0].iter().filter(|m| m[0] == id).cloned().collect();
        let expected: Vec<Bytes> = (0..PER_PUBLISHER).map(|n| numbered(id, n)).collect();
        assert_eq!(
            own, expected,
            "publisher {id}'s messages in the order it sent them"
        );
    }
}

#[tokio::test]
async fn a_subscriber_that_never_reads_is_cut_as_slow_while_a_fast_one_gets_everything() {
    const MESSAGE: usize = 16 << 10;
    const ROUND: u32 = 32;
    const ROUNDS: u32 = 80; // 40 MiB in all: far beyond socket buffers plus the backlog bound
    let options = Options {
        subscriber_queue_bytes: 2 << 20,
        write_timeout: Duration::from_secs(1),
        close_deadline: TIMEOUT,
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let mut events = server.handle().events();
    let mut fast = connect(&server.url("/firehose"), Role::Subscriber, None).await;

    // The slow subscriber has a tiny receive buffer and is not read until the end.
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let stream = socket.connect(server.addr()).await.expect("connect");
    let mut request = server
        .url("/firehose")
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert(ROLE_HEADER, HeaderValue::from_static("subscriber"));
    let (mut slow, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("handshake");

    let mut publisher = connect(&server.url("/firehose"), Role::Publisher, None).await;
    // Publish in rounds paced by the fast subscriber, so that only the slow one falls behind.
    let mut slow_left = None;
    for round in 0..ROUNDS {
        for i in 0..ROUND {
            let mut message = vec![0u8; MESSAGE];
            message[..4].copy_from_slice(&(round * ROUND + i).to_be_bytes());
            send(&mut publisher, message).await;
        }
        for i in 0..ROUND {
            let message = next_binary(&mut fast).await;
            assert_eq!(
                message[..4],
                (round * ROUND + i).to_be_bytes(),
                "fast subscriber in order"
            );
        }
        if slow_left.is_none()
            && let Ok(event) = events.try_recv()
            && event.kind == EventKind::SubscriberLeft
        {
            slow_left = Some(event);
        }
    }
    let slow_left = match slow_left {
        Some(event) => event,
        None => wait_for_event(&mut events, |e| e.kind == EventKind::SubscriberLeft).await,
    };
    assert!(
        slow_left
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("4000")),
        "{slow_left:?}"
    );

    // What the slow subscriber did get is a gap-free prefix, and then the close code says why.
    let (received, close) = read_until_close(&mut slow).await;
    assert!(
        (received.len() as u32) < ROUND * ROUNDS,
        "the slow subscriber was cut early"
    );
    for (n, message) in received.iter().enumerate() {
        assert_eq!(
            message[..4],
            (n as u32).to_be_bytes(),
            "no gap before the close"
        );
    }
    assert_eq!(
        close.map(|(code, _)| code),
        Some(CloseCode::SlowSubscriber.code())
    );
}

#[tokio::test]
async fn shutdown_closes_every_client_with_1001_and_run_returns() {
    let options = Options {
        close_deadline: TIMEOUT,
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let mut subscriber = connect(&server.url("/t"), Role::Subscriber, None).await;
    let mut publisher = connect(&server.url("/t"), Role::Publisher, None).await;
    server.handle().shutdown();
    let (_, sub_close) = read_until_close(&mut subscriber).await;
    let (_, pub_close) = read_until_close(&mut publisher).await;
    assert_eq!(
        sub_close.map(|(code, _)| code),
        Some(CloseCode::GoingAway.code())
    );
    assert_eq!(
        pub_close.map(|(code, _)| code),
        Some(CloseCode::GoingAway.code())
    );
    // Both clients answered the close (tokio-tungstenite echoes while read), so run() returns
    // long before the (30 s) close deadline.
    within(TIMEOUT / 2, server.stop()).await;
    let refused = tokio::net::TcpStream::connect(
        subscriber
            .get_ref()
            .get_ref_tcp()
            .peer_addr()
            .expect("addr"),
    )
    .await;
    assert!(refused.is_err(), "the listener is gone after shutdown");
}

#[tokio::test]
async fn topics_end_when_clients_drop_without_a_close_frame() {
    let server = TestServer::start(Options::default()).await;
    let mut events = server.handle().events();
    let mut clients = Vec::new();
    for topic in ["/x", "/y", "/z"] {
        clients.push(connect(&server.url(topic), Role::Subscriber, None).await);
        clients.push(connect(&server.url(topic), Role::Publisher, None).await);
    }
    for _ in 0..clients.len() {
        wait_for_event(&mut events, |e| {
            matches!(
                e.kind,
                EventKind::SubscriberJoined | EventKind::PublisherJoined
            )
        })
        .await;
    }
    assert_eq!(server.handle().topic_count(), 3);
    let count = clients.len();
    // Abrupt: drop the TCP streams, no close frames.
    for client in clients {
        drop(client.into_inner());
    }
    for _ in 0..count {
        wait_for_event(&mut events, |e| {
            matches!(e.kind, EventKind::SubscriberLeft | EventKind::PublisherLeft)
        })
        .await;
    }
    assert_eq!(
        server.handle().topic_count(),
        0,
        "no topic outlives its clients"
    );
}

#[tokio::test]
async fn many_concurrent_subscribers_each_get_everything() {
    let server = TestServer::start(Options::default()).await;
    let mut subscribers = Vec::new();
    for _ in 0..50 {
        subscribers.push(connect(&server.url("/wide"), Role::Subscriber, None).await);
    }
    let mut publisher = connect(&server.url("/wide"), Role::Publisher, None).await;
    for n in 0..100u32 {
        send(&mut publisher, numbered(0, n)).await;
    }
    let readers = subscribers.into_iter().map(|mut subscriber| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < 100 {
                match within(TIMEOUT, subscriber.next()).await {
                    Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(m))) => got.push(m),
                    Some(Ok(_)) => {}
                    other => panic!("subscriber ended early: {other:?}"),
                }
            }
            got
        })
    });
    let expected: Vec<Bytes> = (0..100).map(|n| numbered(0, n)).collect();
    for reader in readers {
        assert_eq!(reader.await.expect("reader"), expected);
    }
}

/// Gives access to the TCP stream under a raw client.
trait TcpRef {
    fn get_ref_tcp(&self) -> &tokio::net::TcpStream;
}

impl TcpRef for tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream> {
    fn get_ref_tcp(&self) -> &tokio::net::TcpStream {
        match self {
            tokio_tungstenite::MaybeTlsStream::Plain(stream) => stream,
            _ => panic!("tests use plain TCP"),
        }
    }
}
