//! The `wspubsub` binary serving browsers and shells over plain HTTP: a real process takes a
//! POST as `curl -d @file` sends it and streams it to an EventSource-style subscriber, whose
//! stream ends when the process is asked to stop.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use support::Process;
use wspubsub_testkit::{EventStream, SseItem, http_request};

#[tokio::test]
async fn a_curl_style_post_reaches_an_event_stream_until_sigterm_ends_it() {
    let process = Process::serve(&[("PUBSUB_ADDR", "127.0.0.1:0")]);
    let addr = process
        .listen_addr()
        .parse()
        .expect("the address the process listens on");
    let mut stream = EventStream::open(addr, "/shell?encoding=text", &[]).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.next_item().await, Some(SseItem::Retry(1000)));
    // What `curl -d @notes.txt http://host/shell` sends.
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let answer = http_request(addr, Method::POST, "/shell", &headers, "line one\nline two").await;
    assert_eq!(answer.status, 202, "{answer:?}");
    let body = String::from_utf8_lossy(&answer.body).into_owned();
    let event = stream.next_event().await;
    assert_eq!(body, format!("{{\"seq\":{}}}", event.seq()));
    assert_eq!(event.data, "line one\nline two");
    let binary = http_request(addr, Method::POST, "/shell", &[], vec![0xffu8, 0]).await;
    assert_eq!(binary.status, 202);
    let event = stream.next_event().await;
    assert_eq!(event.event.as_deref(), Some("binary"));
    assert_eq!(STANDARD.decode(&event.data).expect("base64"), [0xff, 0]);

    process.terminate();
    assert!(
        stream.until_end().await.is_empty(),
        "the stream ends, with nothing more"
    );
}
