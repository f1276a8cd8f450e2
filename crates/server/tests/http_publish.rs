//! Publishing over plain HTTP, end to end: `POST /topic` answered `202 {"seq":S}` once
//! stored, the message reaching WebSocket and EventSource subscribers at that seq, the
//! message size limit (413), token auth, and plain mistakes refused with a clear 4xx.

use hyper::Method;
use wspubsub_server::protocol::Role;
use wspubsub_server::{AuthKey, Options};
use wspubsub_testkit::{
    EventStream, HttpAnswer, Signer, TestServer, connect, http_request, next_binary, now,
};

/// POSTs `body` to `path` with these headers.
async fn post(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpAnswer {
    http_request(server.addr(), Method::POST, path, headers, body.to_vec()).await
}

/// The seq of a `202 {"seq":S}` answer.
fn seq_of(answer: &HttpAnswer) -> u64 {
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(answer.headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
    json["seq"].as_u64().expect("a numeric seq")
}

#[tokio::test]
async fn a_post_is_stored_then_answered_with_its_seq_and_delivered() {
    let server = TestServer::start(Options::default()).await;
    let mut websocket = connect(&server.url("/p"), Role::Subscriber, None).await;
    let mut events = EventStream::open(server.addr(), "/p", &[]).await;
    let payload = b"\x00posted\xff";
    let first = seq_of(&post(&server, "/p", &[("content-type", "text/plain")], payload).await);
    let second = seq_of(&post(&server, "/p", &[], b"").await);
    assert!(second > first);
    assert_eq!(next_binary(&mut websocket).await.as_ref(), payload);
    assert_eq!(next_binary(&mut websocket).await.as_ref(), b"");
    let event = events.next_event().await;
    assert_eq!(event.seq(), first, "the seq the POST was answered with");
    assert_eq!(events.next_event().await.seq(), second);
    // Stored: a subscriber from that seq replays it.
    let mut replay = EventStream::open(server.addr(), &format!("/p?from={first}"), &[]).await;
    assert_eq!(replay.next_event().await.seq(), first);
}

#[tokio::test]
async fn a_body_over_the_message_size_limit_is_refused_with_413() {
    let options = Options {
        max_message_size: 1024,
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    // Exactly at the limit: stored (seq_of checks the 202).
    seq_of(&post(&server, "/big", &[], &[1; 1024]).await);
    let declared = post(&server, "/big", &[], &[1; 1025]).await;
    assert_eq!(declared.status, 413);
    assert!(String::from_utf8_lossy(&declared.body).contains("1024"));
    let mut subscriber = EventStream::open(server.addr(), "/big?from=earliest", &[]).await;
    let stored = subscriber.next_event().await;
    assert_eq!(
        stored.data.len(),
        1368,
        "only the message within the limit was stored"
    );
}

#[tokio::test]
async fn posting_needs_a_token_that_allows_publishing_to_the_topic() {
    let secret = b"post secret";
    let options = Options {
        auth: Some(AuthKey::Hs256(secret.to_vec())),
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let signer = Signer::hs256(secret);
    assert_eq!(post(&server, "/a", &[], b"x").await.status, 401);
    let subscribe_only = signer.token(now() + 60, &[], &["/a"]);
    let bearer = format!("Bearer {subscribe_only}");
    assert_eq!(
        post(&server, "/a", &[("authorization", &bearer)], b"x")
            .await
            .status,
        403
    );
    let publish = signer.token(now() + 60, &["/a"], &[]);
    let bearer = format!("Bearer {publish}");
    seq_of(&post(&server, "/a", &[("authorization", &bearer)], b"x").await);
    seq_of(&post(&server, &format!("/a?token={publish}"), &[], b"y").await);
}

#[tokio::test]
async fn plain_mistakes_get_a_clear_4xx() {
    let server = TestServer::start(Options::default()).await;
    let put = http_request(server.addr(), Method::PUT, "/m", &[], "x").await;
    assert_eq!(put.status, 400);
    let get = http_request(server.addr(), Method::GET, "/m", &[], "").await;
    assert_eq!(get.status, 400);
    let why = String::from_utf8_lossy(&get.body);
    assert!(
        why.contains("text/event-stream") && why.contains("POST"),
        "{why}"
    );
}
