//! The subscriber SDK against a real server (and a fake one for what a real server never does).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use wspubsub_pubclient::Publisher;
use wspubsub_server::protocol::CloseCode;
use wspubsub_server::{EventKind, Options};
use wspubsub_subclient::{ClientError, ClientOptions, Subscriber};
use wspubsub_testkit::{TIMEOUT, TestServer, fake_server, silent_server, wait_for_event, within};

#[tokio::test]
async fn receives_every_message_in_order_from_the_publisher_sdk() {
    let server = TestServer::start(Options::default()).await;
    let url = server.url("/s");
    let mut subscriber = Subscriber::connect(&url, ClientOptions::default())
        .await
        .expect("connect");
    let publisher = Publisher::connect(&url, ClientOptions::default())
        .await
        .expect("connect");
    for n in 0..2000u32 {
        publisher
            .publish(n.to_le_bytes().to_vec())
            .await
            .expect("publish");
    }
    publisher.close().await.expect("close");
    for n in 0..2000u32 {
        let message = within(TIMEOUT, subscriber.next()).await.expect("a message");
        assert_eq!(message.as_ref(), n.to_le_bytes());
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
    let left = wait_for_event(&mut events, |e| e.kind == EventKind::SubscriberLeft).await;
    assert!(
        left.detail.as_deref().is_some_and(|d| d.contains("1000")),
        "{left:?}"
    );
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
    assert_eq!(
        within(TIMEOUT, subscriber.next()).await.as_deref(),
        Some(&b"last words"[..])
    );
    assert_eq!(
        within(TIMEOUT, subscriber.next()).await,
        None,
        "the stream ends"
    );
    let ended = subscriber.done().await.expect_err("closed by the server");
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
    assert_eq!(within(TIMEOUT, subscriber.next()).await, None);
    assert_eq!(
        subscriber.done().await.expect_err("closed").close_code(),
        Some(CloseCode::GoingAway)
    );
}

#[tokio::test]
async fn silent_server_ends_with_pong_timeout() {
    let addr = silent_server().await;
    let options = ClientOptions::default().pong_deadline(Duration::from_millis(300));
    let mut subscriber = Subscriber::connect(&format!("ws://{addr}/s"), options)
        .await
        .expect("connect");
    assert_eq!(within(TIMEOUT, subscriber.next()).await, None);
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
    // The client's own pings (every 70 ms) get pongs from the server, which itself only pings
    // once a minute: the client must stay up across many of its 100 ms deadlines.
    let options = ClientOptions::default().pong_deadline(Duration::from_millis(100));
    let mut subscriber = Subscriber::connect(&url, options).await.expect("connect");
    let publisher = Publisher::connect(&url, ClientOptions::default())
        .await
        .expect("connect");
    for round in 0..5u8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        publisher.publish(vec![round]).await.expect("publish");
        assert_eq!(
            within(TIMEOUT, subscriber.next()).await.as_deref(),
            Some(&[round][..])
        );
    }
    assert!(subscriber.error().is_none());
}
