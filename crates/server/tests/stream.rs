//! Stream mode (`wspubsub.v2`), end to end: the subprotocol echoed in the 101, the
//! `subscribed` and `gap` control frames, enveloped messages with consecutive seqs, replay
//! joined to live under load, raw and stream subscribers side by side, and publisher acks,
//! up to the last one before a shutdown's 1001.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use wspubsub_server::Options;
use wspubsub_server::protocol::{Control, Envelope, ROLE_HEADER, Role, STREAM_SUBPROTOCOL};
use wspubsub_testkit::{
    RawClient, StreamFrame, TIMEOUT, TestServer, connect, metric, next_binary, next_stream_frame,
    scrape, send, within,
};

/// Connects to `url` in `role` offering `wspubsub.v2`; returns the client and the
/// subprotocol the 101 named.
async fn connect_stream(url: &str, role: Role) -> (RawClient, Option<String>) {
    let mut request = url.into_client_request().expect("a valid url");
    let headers = request.headers_mut();
    headers.insert(ROLE_HEADER, HeaderValue::from_static(role.as_str()));
    headers.insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(STREAM_SUBPROTOCOL),
    );
    let (client, response) = within(TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect in stream mode");
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (client, protocol)
}

/// A stream-mode subscriber of `query` on `path`.
async fn subscribe_stream(server: &TestServer, path: &str, query: &str) -> RawClient {
    let url = format!("{}?{query}", server.url(path));
    connect_stream(&url, Role::Subscriber).await.0
}

/// The next frame, skipping pings and pongs: a control message or an enveloped message,
/// which never names a topic here (no pattern subscriptions).
async fn next_frame(client: &mut RawClient) -> StreamFrame {
    let frame = next_stream_frame(client).await;
    if let StreamFrame::Message { topic, .. } = &frame {
        assert!(topic.is_empty(), "not a pattern subscription");
    }
    frame
}

async fn next_control(client: &mut RawClient) -> Control {
    match next_frame(client).await {
        StreamFrame::Control(control) => control,
        StreamFrame::Message { seq, .. } => {
            panic!("expected a control message, got message {seq}")
        }
    }
}

/// The next enveloped message: its seq and payload.
async fn next_message(client: &mut RawClient) -> (u64, Bytes) {
    match next_frame(client).await {
        StreamFrame::Message {
            seq, time, payload, ..
        } => {
            assert!(time > 1_600_000_000_000_000, "a unix time in µs: {time}");
            (seq, payload)
        }
        StreamFrame::Control(control) => panic!("expected a message, got {control:?}"),
    }
}

/// The `subscribed` frame's from, head and earliest.
async fn subscribed(client: &mut RawClient, topic: &str) -> (u64, u64, u64) {
    match next_control(client).await {
        Control::Subscribed {
            topic: named,
            from,
            head,
            earliest,
        } => {
            assert_eq!(named, topic);
            (from, head, earliest)
        }
        other => panic!("expected subscribed, got {other:?}"),
    }
}

fn numbered(n: u32) -> Bytes {
    Bytes::copy_from_slice(&n.to_be_bytes())
}

#[tokio::test]
async fn the_subprotocol_is_echoed_only_to_clients_that_offer_it() {
    let server = TestServer::start(Options::default()).await;
    let (_stream, protocol) = connect_stream(&server.url("/a"), Role::Subscriber).await;
    assert_eq!(protocol.as_deref(), Some(STREAM_SUBPROTOCOL));
    let url = server.url("/a");
    let mut request = url.as_str().into_client_request().expect("a valid url");
    request
        .headers_mut()
        .insert(ROLE_HEADER, HeaderValue::from_static("subscriber"));
    let (_raw, response) = within(TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect raw");
    assert!(response.headers().get("sec-websocket-protocol").is_none());
}

#[tokio::test]
async fn a_stream_subscriber_gets_subscribed_then_enveloped_messages_in_order() {
    let server = TestServer::start(Options::default()).await;
    let mut publisher = connect(&server.url("/a"), Role::Publisher, None).await;
    let mut raw = connect(&server.url("/a"), Role::Subscriber, None).await;
    send(&mut publisher, numbered(0)).await;
    assert_eq!(next_binary(&mut raw).await, numbered(0));
    let mut stream = subscribe_stream(&server, "/a", "").await;
    let (from, head, earliest) = subscribed(&mut stream, "/a").await;
    assert_eq!(from, head, "from=latest begins at the head");
    assert_eq!(earliest, head - 1, "history holds message 0");
    for n in 1..=50 {
        send(&mut publisher, numbered(n)).await;
    }
    for n in 1..=50 {
        assert_eq!(
            next_message(&mut stream).await,
            (head + u64::from(n) - 1, numbered(n))
        );
        // The raw subscriber of the same topic gets the very same payloads, unwrapped.
        assert_eq!(next_binary(&mut raw).await, numbered(n));
    }
}

#[tokio::test]
async fn from_earliest_replays_enveloped_and_joins_live_without_gap_while_publishing() {
    const TOTAL: u32 = 3000;
    let server = TestServer::start(Options {
        history_messages: 100_000,
        ..Options::default()
    })
    .await;
    let mut live = connect(&server.url("/load"), Role::Subscriber, None).await;
    let mut publisher = connect(&server.url("/load"), Role::Publisher, None).await;
    send(&mut publisher, numbered(0)).await;
    assert_eq!(next_binary(&mut live).await, numbered(0));
    let publishing = tokio::spawn(async move {
        for n in 1..TOTAL {
            send(&mut publisher, numbered(n)).await;
        }
        publisher
    });
    // Join in the middle of the publishing.
    while next_binary(&mut live).await != numbered(TOTAL / 3) {}
    let mut stream = subscribe_stream(&server, "/load", "from=earliest").await;
    let (from, _head, earliest) = subscribed(&mut stream, "/load").await;
    assert_eq!(from, earliest);
    for n in 0..TOTAL {
        assert_eq!(
            next_message(&mut stream).await,
            (from + u64::from(n), numbered(n)),
            "message {n}"
        );
    }
    let _publisher = within(TIMEOUT, publishing).await.expect("publisher task");
}

#[tokio::test]
async fn an_uncovered_position_is_announced_as_a_gap_before_any_message() {
    let server = TestServer::start(Options {
        history_messages: 3,
        ..Options::default()
    })
    .await;
    let mut publisher = connect(&server.url("/t"), Role::Publisher, None).await;
    let mut witness = subscribe_stream(&server, "/t", "").await;
    let (_, first, _) = subscribed(&mut witness, "/t").await;
    for n in 0..5 {
        send(&mut publisher, numbered(n)).await;
    }
    for n in 0..5 {
        assert_eq!(next_message(&mut witness).await.1, numbered(n));
    }
    let mut stream = subscribe_stream(&server, "/t", &format!("from={first}")).await;
    let (from, head, earliest) = subscribed(&mut stream, "/t").await;
    assert_eq!((from, head, earliest), (first + 2, first + 5, first + 2));
    match next_control(&mut stream).await {
        Control::Gap {
            topic,
            from,
            to,
            reason,
        } => {
            assert_eq!(topic, "/t");
            assert_eq!((from, to), (first, first + 2));
            assert_eq!(reason, "history_evicted");
        }
        other => panic!("expected a gap, got {other:?}"),
    }
    for n in 2..5 {
        assert_eq!(
            next_message(&mut stream).await,
            (first + u64::from(n), numbered(n))
        );
    }
}

#[tokio::test]
async fn a_stream_publisher_gets_cumulative_acks_covering_every_message() {
    const TOTAL: u64 = 2000;
    let server = TestServer::start(Options::default()).await;
    let mut subscriber = subscribe_stream(&server, "/acked", "").await;
    let (_, head, _) = subscribed(&mut subscriber, "/acked").await;
    let (mut publisher, protocol) = connect_stream(&server.url("/acked"), Role::Publisher).await;
    assert_eq!(protocol.as_deref(), Some(STREAM_SUBPROTOCOL));
    // A raw publisher of the same topic, interleaved, gets no acks and takes none.
    let mut raw = connect(&server.url("/acked"), Role::Publisher, None).await;
    send(&mut raw, numbered(u32::MAX)).await;
    assert_eq!(
        next_message(&mut subscriber).await,
        (head, numbered(u32::MAX))
    );
    let sending = tokio::spawn(async move {
        for n in 0..TOTAL {
            send(&mut publisher, numbered(n as u32)).await;
        }
        publisher
    });
    let mut publisher = within(TIMEOUT, sending).await.expect("publisher task");
    let mut acks = 0;
    let mut last = 0;
    while last < TOTAL {
        match next_control(&mut publisher).await {
            Control::Ack { count, seq } => {
                assert!(count > last, "cumulative: {count} after {last}");
                assert!(count <= TOTAL);
                // The raw publisher's one message took seq `head`; ours follow it.
                assert_eq!(seq, head + count, "the seq of message {count}");
                last = count;
                acks += 1;
            }
            other => panic!("expected an ack, got {other:?}"),
        }
    }
    for n in 0..TOTAL {
        assert_eq!(
            next_message(&mut subscriber).await,
            (head + 1 + n, numbered(n as u32))
        );
    }
    let text = scrape(server.addr()).await;
    assert_eq!(
        metric(&text, "wspubsub_acks_sent_total"),
        Some(f64::from(acks))
    );
}

/// Reads a stream-mode subscriber to its 1001, checking that its messages go on from seq
/// `next`; says how many it read.
async fn messages_until_close(client: &mut RawClient, mut next: u64) -> u64 {
    let mut read = 0;
    loop {
        match within(TIMEOUT, client.next()).await {
            Some(Ok(Message::Binary(frame))) => {
                let envelope = Envelope::decode(&frame).expect("an envelope");
                assert_eq!(envelope.seq, next, "consecutive");
                next += 1;
                read += 1;
            }
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1001, "closed for the shutdown");
                // Reading on sends our echo of the close, which completes the handshake.
                let _ = tokio::time::timeout(TIMEOUT, client.next()).await;
                return read;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a message or the close, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_a_stream_publisher_is_acked_every_message_stored_before_its_close() {
    const TOTAL: u32 = 20_000;
    const BEFORE_SHUTDOWN: u32 = 100;
    let server = TestServer::start(Options {
        close_deadline: TIMEOUT,
        ..Options::default()
    })
    .await;
    let mut subscriber = subscribe_stream(&server, "/drained", "").await;
    let (_, head, _) = subscribed(&mut subscriber, "/drained").await;
    let (publisher, _) = connect_stream(&server.url("/drained"), Role::Publisher).await;
    let (mut sink, mut acks) = publisher.split();
    let sending = tokio::spawn(async move {
        for n in 0..TOTAL {
            // The server stops reading at shutdown and then closes the connection.
            if sink.send(Message::Binary(numbered(n))).await.is_err() {
                break;
            }
        }
    });
    // Shut down in the middle of the publishing, with messages read and not yet stored.
    for n in 0..BEFORE_SHUTDOWN {
        assert_eq!(
            next_message(&mut subscriber).await,
            (head + u64::from(n), numbered(n))
        );
    }
    server.handle().shutdown();
    // The drain delivers every message the server read (so stored) before the 1001.
    let delivered = u64::from(BEFORE_SHUTDOWN)
        + messages_until_close(&mut subscriber, head + u64::from(BEFORE_SHUTDOWN)).await;
    let mut last = 0;
    loop {
        match within(TIMEOUT, acks.next()).await {
            Some(Ok(Message::Text(text))) => match Control::from_json(&text) {
                Ok(Control::Ack { count, seq }) => {
                    assert!(count > last, "cumulative: {count} after {last}");
                    assert_eq!(seq, head + count - 1, "the seq of message {count}");
                    last = count;
                }
                other => panic!("expected an ack, got {other:?}"),
            },
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1001, "closed for the shutdown");
                break;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected an ack or the close, got {other:?}"),
        }
    }
    assert_eq!(
        last, delivered,
        "the last ack before the close covers every message stored"
    );
    // Its sends may be stuck behind what the server no longer reads: stop them, then read on
    // to send our echo of the close.
    sending.abort();
    let _ = tokio::time::timeout(TIMEOUT, acks.next()).await;
    within(TIMEOUT / 2, server.stop()).await;
}
