//! The admin API of a real `wspubsub serve` process, opened on the main listener by
//! `PUBSUB_ADMIN_TOKEN` (the `--admin-token` flag's environment variable).

mod support;

use std::net::SocketAddr;

use support::Process;
use wspubsub_server::protocol::Role;
use wspubsub_testkit::{RawAnswer, connect, raw_answer};

async fn get(addr: SocketAddr, path: &str, authorization: &str) -> RawAnswer {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\n\r\n");
    raw_answer(addr, request.as_bytes()).await
}

#[tokio::test]
async fn the_token_opens_the_admin_api_on_the_main_listener() {
    let process = Process::serve(&[
        ("PUBSUB_ADDR", "127.0.0.1:0"),
        ("PUBSUB_ADMIN_TOKEN", "t0ken-from-env"),
    ]);
    let addr: SocketAddr = process.listen_addr().parse().expect("an address");
    let subscriber = connect(&format!("ws://{addr}/news"), Role::Subscriber, None).await;

    let refused = get(addr, "/api/topics", "").await;
    assert_eq!(refused.status, 401, "{refused:?}");
    let wrong = get(addr, "/api/topics", "Authorization: Bearer t0ken\r\n").await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    let bearer = "Authorization: Bearer t0ken-from-env\r\n";
    let topics = get(addr, "/api/topics", bearer).await;
    assert_eq!(topics.status, 200, "{topics:?}");
    assert!(topics.body.contains(r#""name":"/news""#), "{}", topics.body);
    assert!(topics.body.contains(r#""subscriber":1"#), "{}", topics.body);
    let page = get(addr, "/ui", "").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.head.contains("text/html"), "{}", page.head);
    drop(subscriber);
    process.terminate();
    assert!(process.exit_status().await.success());
}
