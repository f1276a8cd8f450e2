//! The subscriber SDK against a real server (and a fake one for what a real server never does).

use std::time::Duration;

use futures_util::stream::FusedStream;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use wspubsub_pubclient::Publisher;
use wspubsub_server::protocol::CloseCode;
use wspubsub_server::{EventKind, Options};
use wspubsub_subclient::{ClientError, ClientOptions, Subscriber};
use wspubsub_testkit::{
    TIMEOUT, TestServer, fake_server, last_err, next_ok, silent_server, wait_for_event,
    wait_for_left, within,
};

#[tokio::test]
async fn receives_every_message_in_order_from_the_publisher_sdk() {
    let server = TestServer::start(Options::default()).await;
    let (mut subscriber, publisher) = subscriber_and_publisher(&server.url("/s")).await;
    publish_counting(&publisher, 2000).await;
    publisher.close().await.expect("close");
    expect_counting(&mut subscriber, 2000).await;
}

/// A subscriber and a publisher of `url`, with default options.
async fn subscriber_and_publisher(url: &str) -> (Subscriber, Publisher) {
    let subscriber = Subscriber::connect(url, ClientOptions::default())
        .await
        .expect("connect");
    let publisher = Publisher::connect(url, ClientOptions::default())
        .await
        .expect("connect");
    (subscriber, publisher)
}

/// Publishes the numbers `0..count`, as 4 little-endian bytes each.
async fn publish_counting(publisher: &Publisher, count: u32) {
    for n in 0..count {
        publisher
            .publish(n.to_le_bytes().to_vec())
            .await
            .expect("publish");
    }
}

/// Reads the numbers `0..count`, in order.
async fn expect_counting(subscriber: &mut Subscriber, count: u32) {
    for n in 0..count {
        assert_eq!(next_ok(subscriber).await.as_ref(), n.to_le_bytes());
    }
}

#[tokio::test]
async fn close_is_clean_and_the_server_sees_1000() {
    let server = TestServer::start(Options::default()).await;
    let mut events = server.handle().events();
    let subscriber = Subscriber::connect(&server.url("/s"), ClientOptions::default())
        .await
        .expect("connect");
    within(TIMEOUT, subscriber.close())
        .await
        .expect("clean close");
    wait_for_left(&mut events, EventKind::SubscriberLeft, 1000).await;
    assert!(subscriber.error().is_none());
}

#[tokio::test]
async fn dropping_the_subscriber_leaves_the_topic() {
    let server = TestServer::start(Options::default()).await;
    let mut events = server.handle().events();
    let subscriber = Subscriber::connect(&server.url("/s"), ClientOptions::default())
        .await
        .expect("connect");
    drop(subscriber);
    wait_for_event(&mut events, |e| e.kind == EventKind::SubscriberLeft).await;
    assert_eq!(server.handle().topic_count(), 0);
}

#[tokio::test]
async fn server_close_ends_the_stream_after_the_messages_and_says_why() {
    let addr = fake_server(|stream| async move {
        let mut socket = tokio_tungstenite::accept_async(stream)
            .await
            .expect("handshake");
        socket
            .send(Message::binary(&b"last words"[..]))
            .await
            .expect("send");
        let frame = CloseFrame {
            code: 4000.into(),
            reason: "slow subscriber".into(),
        };
        socket.close(Some(frame)).await.expect("close");
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
    let mut subscriber = Subscriber::connect(&format!("ws://{addr}/s"), ClientOptions::default())
        .await
        .expect("connect");
    assert_eq!(next_ok(&mut subscriber).await.as_ref(), b"last words");
    let last = last_err(&mut subscriber).await;
    assert!(subscriber.is_terminated());
    assert!(within(TIMEOUT, subscriber.next()).await.is_none(), "fused");
    let ended = subscriber.done().await.expect_err("closed by the server");
    assert_eq!(
        ended.to_string(),
        last.to_string(),
        "the last item is the ending"
    );
    assert_eq!(ended.close_code(), Some(CloseCode::SlowSubscriber));
    match ended {
        ClientError::ServerClosed { code, reason } => {
            assert_eq!((code, reason.as_str()), (4000, "slow subscriber"));
        }
        other => panic!("expected ServerClosed, got {other:?}"),
    }
}

#[tokio::test]
async fn server_shutdown_is_reported_as_going_away() {
    let server = TestServer::start(Options::default()).await;
    let mut subscriber = Subscriber::connect(&server.url("/s"), ClientOptions::default())
        .await
        .expect("connect");
    server.handle().shutdown();
    let ended = last_err(&mut subscriber).await;
    assert_eq!(ended.close_code(), Some(CloseCode::GoingAway));
    assert!(ended.is_retryable(), "another server may take over");
}

#[tokio::test]
async fn silent_server_ends_with_pong_timeout() {
    let addr = silent_server().await;
    let options = ClientOptions::default().pong_deadline(Duration::from_millis(300));
    let mut subscriber = Subscriber::connect(&format!("ws://{addr}/s"), options)
        .await
        .expect("connect");
    assert!(matches!(
        last_err(&mut subscriber).await,
        ClientError::PongTimeout(_)
    ));
    assert!(matches!(
        subscriber.done().await,
        Err(ClientError::PongTimeout(_))
    ));
}

#[tokio::test]
async fn a_server_that_answers_pings_keeps_the_subscriber_past_its_deadline() {
    let server = TestServer::start(Options {
        pong_deadline: Duration::from_secs(60),
        ..Options::default()
    })
    .await;
    let url = server.url("/s");
    // The client's own pings (every 0.7 s) get pongs from the server, which itself only pings
    // once a minute: the client must stay up across several of its 1 s deadlines. A pong on
    // loopback takes far less than a second, however loaded the machine.
    let deadline = Duration::from_secs(1);
    let options = ClientOptions::default().pong_deadline(deadline);
    let mut subscriber = Subscriber::connect(&url, options).await.expect("connect");
    let publisher = Publisher::connect(&url, ClientOptions::default())
        .await
        .expect("connect");
    for round in 0..4u8 {
        // Time passing is what this test is about: nothing to wait for but the clock.
        tokio::time::sleep(deadline).await;
        publisher.publish(vec![round]).await.expect("publish");
        assert_eq!(next_ok(&mut subscriber).await.as_ref(), [round]);
    }
    assert!(subscriber.error().is_none());
}

/// A server that pings every 0.35 s and cuts a peer silent for 0.5 s.
async fn impatient_server() -> TestServer {
    TestServer::start(Options {
        pong_deadline: Duration::from_millis(500),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn a_subscriber_not_being_read_still_answers_pings() {
    let server = impatient_server().await;
    let mut events = server.handle().events();
    let (mut subscriber, publisher) = subscriber_and_publisher(&server.url("/s")).await;
    // More messages than a reader-paced client would hold, far fewer bytes than its bound.
    publish_counting(&publisher, 2000).await;
    publisher.flush().await.expect("written");
    // Many of the server's pong deadlines pass while nobody reads the stream.
    tokio::time::sleep(Duration::from_secs(3)).await;
    expect_counting(&mut subscriber, 2000).await;
    assert!(subscriber.error().is_none(), "{:?}", subscriber.error());
    let closed = within(TIMEOUT, subscriber.close()).await;
    assert!(closed.is_ok(), "{closed:?}");
    // Left by its own close (1000), not cut as silent (4001).
    wait_for_left(&mut events, EventKind::SubscriberLeft, 1000).await;
}

#[tokio::test]
async fn a_consumer_that_falls_behind_ends_lagged_and_the_server_sees_4000() {
    let server = impatient_server().await;
    let mut events = server.handle().events();
    let url = server.url("/s");
    let options = ClientOptions::default().receive_buffer(1000, 64 << 10);
    let mut subscriber = Subscriber::connect(&url, options).await.expect("connect");
    let publisher = Publisher::connect(&url, ClientOptions::default())
        .await
        .expect("connect");
    let message = vec![7u8; 1024];
    for _ in 0..200 {
        publisher.publish(message.clone()).await.expect("publish");
    }
    // Seen by the server as slow (4000), not as silent (4001).
    wait_for_left(&mut events, EventKind::SubscriberLeft, 4000).await;
    // Every message that fit in the buffer is still there, in order, then the reason.
    let mut read = 0;
    let ended = loop {
        match within(TIMEOUT, subscriber.next()).await {
            Some(Ok(received)) => {
                assert_eq!(received.as_ref(), message.as_slice());
                read += 1;
            }
            Some(Err(error)) => break error,
            None => panic!("the stream ended without its error"),
        }
    };
    assert_eq!(read, 64, "64 KiB of 1 KiB messages");
    assert!(
        matches!(ended, ClientError::Lagged { messages: 64, bytes } if bytes == 64 << 10),
        "{ended:?}"
    );
    assert!(matches!(
        subscriber.done().await,
        Err(ClientError::Lagged { .. })
    ));
    assert!(within(TIMEOUT, subscriber.next()).await.is_none());
}
