//! The publisher SDK against a real server (and a fake one for what a real server never does).

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wspubsub_pubclient::{ClientError, ClientOptions, Publisher};
use wspubsub_server::protocol::{CloseCode, Role};
use wspubsub_server::{EventKind, Options};
use wspubsub_testkit::{
    RawClient, TIMEOUT, TestServer, closed_port, connect, fake_server, next_binary, silent_server,
    unread_subscriber, vanishing_server, wait_for_event, wait_for_left, within,
};

#[tokio::test]
async fn published_messages_arrive_in_order_and_close_flushes_them_first() {
    let server = TestServer::start(Options::default()).await;
    let mut events = server.handle().events();
    let mut subscriber = connect(&server.url("/p"), Role::Subscriber, None).await;
    let options = ClientOptions::default().name("sdk");
    let publisher = Publisher::connect(&server.url("/p"), options)
        .await
        .expect("connect");
    let joined = wait_for_event(&mut events, |e| e.kind == EventKind::PublisherJoined).await;
    assert!(
        joined
            .client_id
            .as_deref()
            .is_some_and(|id| id.starts_with("sdk-")),
        "{joined:?}"
    );
    for n in 0..1000u32 {
        publisher
            .publish(n.to_be_bytes().to_vec())
            .await
            .expect("publish");
    }
    // Close right away: every message must still go out before the close frame.
    within(TIMEOUT, publisher.close())
        .await
        .expect("clean close");
    expect_counting(&mut subscriber, 1000).await;
    wait_for_left(&mut events, EventKind::PublisherLeft, 1000).await;
    assert!(matches!(
        publisher.publish(&b"late"[..]).await,
        Err(ClientError::Closed)
    ));
    assert!(publisher.error().is_none(), "a clean close is not an error");
}

#[tokio::test]
async fn a_publisher_held_back_for_a_stalled_subscriber_outlasts_its_pong_deadline() {
    const MESSAGES: u32 = 4096;
    // The server holds the topic for the stalled subscriber until its socket has taken no
    // bytes for 3 s, far past the publisher's 1 s pong deadline; the client's own write
    // timeout (30 s by default) must outlast that.
    let server = TestServer::start(Options {
        write_timeout: Duration::from_secs(3),
        subscriber_queue_bytes: 256 << 10,
        max_message_size: 64 << 10,
        topic_queue: 8,
        ..Options::default()
    })
    .await;
    let _stalled = unread_subscriber(server.addr(), "/held").await;
    let mut healthy = connect(&server.url("/held"), Role::Subscriber, None).await;
    let reading = tokio::spawn(async move {
        for n in 0..MESSAGES {
            let message = next_binary(&mut healthy).await;
            assert_eq!(message[..4], n.to_be_bytes(), "in order, no gap");
        }
    });
    let options = ClientOptions::default().pong_deadline(Duration::from_secs(1));
    let publisher = Publisher::connect(&server.url("/held"), options)
        .await
        .expect("connect");
    // 16 MiB: far more than the bounds and the socket buffers, so the topic holds the
    // publisher.
    for n in 0..MESSAGES {
        let mut message = vec![0u8; 4 << 10];
        message[..4].copy_from_slice(&n.to_be_bytes());
        within(TIMEOUT, publisher.publish(message))
            .await
            .expect("held back, not ended");
    }
    within(TIMEOUT, publisher.close())
        .await
        .expect("a clean close after the stalled subscriber was cut");
    within(TIMEOUT, reading).await.expect("the healthy reader");
}

/// Reads the numbers `0..count`, in order, as 4 big-endian bytes each.
async fn expect_counting(subscriber: &mut RawClient, count: u32) {
    for n in 0..count {
        assert_eq!(next_binary(subscriber).await, n.to_be_bytes().as_slice());
    }
}

#[tokio::test]
async fn oversize_message_ends_with_the_servers_1009() {
    let options = Options {
        max_message_size: 100,
        subscriber_queue_bytes: 1 << 20,
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let publisher = Publisher::connect(&server.url("/p"), ClientOptions::default())
        .await
        .expect("connect");
    publisher.publish(vec![0u8; 101]).await.expect("queued");
    let ended = within(TIMEOUT, publisher.done())
        .await
        .expect_err("closed by the server");
    assert_eq!(
        ended.close_code(),
        Some(CloseCode::MessageTooBig),
        "{ended}"
    );
    assert!(matches!(
        publisher.publish(&b"more"[..]).await,
        Err(ClientError::ServerClosed { code: 1009, .. })
    ));
}

#[tokio::test]
async fn server_shutdown_is_reported_as_going_away() {
    let server = TestServer::start(Options::default()).await;
    let publisher = Publisher::connect(&server.url("/p"), ClientOptions::default())
        .await
        .expect("connect");
    server.handle().shutdown();
    let ended = within(TIMEOUT, publisher.done())
        .await
        .expect_err("closed by the server");
    assert_eq!(ended.close_code(), Some(CloseCode::GoingAway));
}

#[tokio::test]
async fn refused_handshake_reports_status_and_body() {
    let addr = fake_server(|mut stream| async move {
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request).await;
        let body = "missing role\n";
        let response = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
    })
    .await;
    let refused = Publisher::connect(&format!("ws://{addr}/p"), ClientOptions::default()).await;
    match refused {
        Err(ClientError::HandshakeRejected { status, body }) => {
            assert_eq!(status, 400);
            assert_eq!(body, "missing role");
        }
        other => panic!("expected HandshakeRejected, got {other:?}"),
    }
}

#[tokio::test]
async fn unreachable_server_and_bad_urls_fail_clearly() {
    let addr = closed_port().await;
    let refused = Publisher::connect(&format!("ws://{addr}/p"), ClientOptions::default()).await;
    assert!(
        matches!(refused, Err(ClientError::Connect(_))),
        "{refused:?}"
    );
    let refused = refused.expect_err("refused");
    assert_eq!(
        refused.io_kind(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    assert!(refused.is_retryable(), "the server may come up");
    let http = Publisher::connect("http://127.0.0.1:1/p", ClientOptions::default()).await;
    assert!(matches!(http, Err(ClientError::InvalidUrl(_))), "{http:?}");
    let garbage = Publisher::connect("not a url", ClientOptions::default()).await;
    assert!(
        matches!(garbage, Err(ClientError::InvalidUrl(_))),
        "{garbage:?}"
    );
    let zero = ClientOptions::default().pong_deadline(Duration::ZERO);
    let refused = Publisher::connect(&format!("ws://{addr}/p"), zero).await;
    assert!(
        matches!(refused, Err(ClientError::InvalidOption(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn silent_server_ends_with_pong_timeout() {
    let addr = silent_server().await;
    let options = ClientOptions::default().pong_deadline(Duration::from_millis(300));
    let publisher = Publisher::connect(&format!("ws://{addr}/p"), options)
        .await
        .expect("connect");
    let ended = within(TIMEOUT, publisher.done()).await;
    assert!(
        matches!(ended, Err(ClientError::PongTimeout(_))),
        "{ended:?}"
    );
}

#[tokio::test]
async fn vanished_server_is_a_lost_connection() {
    let addr = vanishing_server().await;
    let publisher = Publisher::connect(&format!("ws://{addr}/p"), ClientOptions::default())
        .await
        .expect("connect");
    let ended = within(TIMEOUT, publisher.done()).await;
    let ended = ended.expect_err("lost");
    assert!(matches!(ended, ClientError::ConnectionLost(_)), "{ended:?}");
    assert!(
        matches!(
            ended.io_kind(),
            Some(std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset)
        ),
        "{ended:?}"
    );
    assert!(ended.is_retryable());
}

#[tokio::test]
async fn a_token_opens_a_server_with_auth_and_its_absence_is_a_401() {
    use wspubsub_server::AuthKey;
    use wspubsub_testkit::{Signer, now};

    let secret = b"client test secret";
    let options = Options {
        auth: Some(AuthKey::Hs256(secret.to_vec())),
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let token = Signer::hs256(secret).token(now() + 3600, &["/p"], &[]);

    let refused = Publisher::connect(&server.url("/p"), ClientOptions::default()).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::HandshakeRejected { status: 401, .. })
        ),
        "{refused:?}"
    );
    let publisher = Publisher::connect(&server.url("/p"), ClientOptions::default().token(token))
        .await
        .expect("admitted with the token");
    publisher
        .publish(&b"authorised"[..])
        .await
        .expect("publish");
    publisher.close().await.expect("clean close");
}

#[tokio::test]
async fn a_server_that_stops_reading_ends_a_busy_publisher_instead_of_hanging_it() {
    let addr = silent_server().await;
    let options = ClientOptions::default()
        .pong_deadline(Duration::from_millis(300))
        .write_timeout(Duration::from_millis(300));
    let publisher = Publisher::connect(&format!("ws://{addr}/p"), options)
        .await
        .expect("connect");
    // Publish until the socket buffers are full and writes block; the publisher must end.
    let ended = within(TIMEOUT, async {
        loop {
            if let Err(error) = publisher.publish(vec![0u8; 1 << 20]).await {
                return error;
            }
        }
    })
    .await;
    assert!(
        matches!(
            ended,
            ClientError::WriteTimeout(_) | ClientError::PongTimeout(_)
        ),
        "{ended:?}"
    );
    assert!(
        publisher.error().is_some(),
        "the ending is recorded when publish reports it"
    );
}

#[tokio::test]
async fn a_stream_forwarded_into_the_publisher_arrives_whole_and_closes_it() {
    let server = TestServer::start(Options::default()).await;
    let mut events = server.handle().events();
    let mut subscriber = connect(&server.url("/p"), Role::Subscriber, None).await;
    let publisher = Publisher::connect(&server.url("/p"), ClientOptions::default())
        .await
        .expect("connect");
    let watcher = publisher.clone();
    let messages = futures_util::stream::iter(0..500u32)
        .map(|n| Ok::<_, ClientError>(Bytes::from(n.to_be_bytes().to_vec())));
    within(TIMEOUT, messages.forward(publisher))
        .await
        .expect("forwarded, then closed cleanly");
    expect_counting(&mut subscriber, 500).await;
    // The end of the stream closed the publisher.
    wait_for_left(&mut events, EventKind::PublisherLeft, 1000).await;
    assert!(matches!(watcher.done().await, Ok(())));
}

#[tokio::test]
async fn flush_waits_for_the_writes_and_reports_the_end() {
    let server = TestServer::start(Options::default()).await;
    let mut subscriber = connect(&server.url("/p"), Role::Subscriber, None).await;
    let publisher = Publisher::connect(&server.url("/p"), ClientOptions::default())
        .await
        .expect("connect");
    publisher.publish(&b"flushed"[..]).await.expect("queued");
    within(TIMEOUT, publisher.flush()).await.expect("written");
    assert_eq!(next_binary(&mut subscriber).await, &b"flushed"[..]);
    publisher.close().await.expect("clean close");
    assert!(matches!(publisher.flush().await, Err(ClientError::Closed)));
}
