//! The admin API and dashboard against a real server with real WebSocket clients: every
//! field of `/api/topics`, `/api/topics/{topic}`, `/api/connections` and `/api/server`, where
//! they are served (the admin listener; the main listener only with a token, which it then
//! asks for), and the dashboard's files.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::MaybeTlsStream;
use wspubsub_server::protocol::{Role, STREAM_SUBPROTOCOL};
use wspubsub_server::{AdminToken, Options};
use wspubsub_testkit::{
    EventStream, RawAnswer, RawClient, TIMEOUT, TestServer, connect, next_binary, raw_answer, send,
    try_connect_with, within,
};

/// `GET path` on `addr`, with `Authorization: <authorization>` if given.
async fn get(addr: SocketAddr, path: &str, authorization: Option<&str>) -> RawAnswer {
    let authorization = authorization
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\n\r\n");
    raw_answer(addr, request.as_bytes()).await
}

/// The JSON body of a 200 answer to `GET path` on `addr`.
async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let answer = get(addr, path, None).await;
    assert_eq!(answer.status, 200, "{path}: {answer:?}");
    assert!(
        header(&answer, "content-type").starts_with("application/json"),
        "{answer:?}"
    );
    serde_json::from_str(&answer.body).expect("a JSON body")
}

/// The value of header `name` in `answer` (empty if absent).
fn header(answer: &RawAnswer, name: &str) -> String {
    answer
        .head
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default()
}

/// Polls `GET path` until `done` holds for its JSON (counters are updated just after the
/// bytes reach the socket, so a client may see a message a moment before the API counts it).
async fn until(addr: SocketAddr, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    within(TIMEOUT, async {
        loop {
            let value = get_json(addr, path).await;
            if done(&value) {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// The client's own address (what the server sees as its remote address).
fn local_addr(client: &RawClient) -> SocketAddr {
    match client.get_ref() {
        MaybeTlsStream::Plain(stream) => stream.local_addr().expect("a local address"),
        _ => panic!("a plain TCP client"),
    }
}

fn now_micros() -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    u64::try_from(since_epoch.as_micros()).expect("fits")
}

fn admin_options() -> Options {
    Options {
        admin_addr: Some("127.0.0.1:0".parse().expect("an address")),
        ..Options::default()
    }
}

#[tokio::test]
async fn the_api_reports_what_real_clients_did() {
    let server = TestServer::start(admin_options()).await;
    let admin = server.admin_addr().expect("an admin listener");
    let before = now_micros();
    let mut alice = connect(&server.url("/t"), Role::Subscriber, Some("alice")).await;
    let mut bob = connect(&server.url("/t"), Role::Subscriber, Some("bob")).await;
    let mut publisher = connect(&server.url("/t"), Role::Publisher, Some("pub")).await;
    let stream_header = [("sec-websocket-protocol", STREAM_SUBPROTOCOL)];
    let _stream = try_connect_with(&server.url("/s"), Role::Subscriber, &stream_header)
        .await
        .expect("a stream-mode subscriber");
    let after = now_micros();

    let messages = [vec![1u8; 10], vec![2u8; 200], vec![3u8; 1000]];
    for message in &messages {
        send(&mut publisher, message.clone()).await;
    }
    for subscriber in [&mut alice, &mut bob] {
        for message in &messages {
            assert_eq!(next_binary(subscriber).await.as_ref(), message.as_slice());
        }
    }
    // Frames of 10 (2-byte header), 200 and 1000 bytes (4-byte headers), to two subscribers.
    let frames: u64 = (10 + 2) + (200 + 4) + (1000 + 4);
    let topic = until(admin, "/api/topics/t", |topic| {
        topic["bytes_out"] == json!(2 * frames)
    })
    .await;
    assert_eq!(topic["name"], "/t");
    assert_eq!(topic["publishers"], 1);
    assert_eq!(
        topic["subscribers"],
        json!({"subscriber": 2, "stream": 0, "sse": 0})
    );
    assert_eq!(topic["messages_in"], 3);
    assert_eq!(topic["bytes_in"], 10 + 200 + 1000);
    assert_eq!(topic["messages_out"], 6);
    let rates = &topic["rates"];
    for rate in [
        "messages_in",
        "bytes_in",
        "messages_out",
        "bytes_out",
        "seconds",
    ] {
        let value = rates[rate].as_f64().expect("a number");
        assert!(value > 0.0, "{rate}: {rates}");
    }
    let history = &topic["history"];
    assert_eq!(history["messages"], 3);
    assert!(
        history["bytes"].as_u64().expect("a number") >= 1210,
        "{history}"
    );
    let oldest = history["oldest_seq"].as_u64().expect("a seq");
    let newest = history["newest_seq"].as_u64().expect("a seq");
    assert_eq!(newest, oldest + 2, "{history}");

    // The list has every topic, in order, the same fields as the single view.
    let topics = get_json(admin, "/api/topics").await;
    let names: Vec<&str> = topics["topics"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|topic| topic["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["/s", "/t"]);
    let stream_topic = &topics["topics"][0];
    assert_eq!(
        stream_topic["subscribers"],
        json!({"subscriber": 0, "stream": 1, "sse": 0})
    );
    assert_eq!(stream_topic["history"]["oldest_seq"], Value::Null);
    assert_eq!(topics["topics"][1]["messages_in"], 3);
    assert_eq!(
        get_json(admin, "/api/topics/%74").await["name"],
        "/t",
        "the topic is percent-decoded"
    );

    let connections = get_json(admin, "/api/connections?topic=/t").await;
    let connections = connections["connections"].as_array().expect("a list");
    assert_eq!(connections.len(), 3, "{connections:?}");
    for (name, client, role, out) in [
        ("alice-", &alice, "subscriber", 3),
        ("bob-", &bob, "subscriber", 3),
        ("pub-", &publisher, "publisher", 0),
    ] {
        let found = connections
            .iter()
            .find(|c| c["id"].as_str().is_some_and(|id| id.starts_with(name)))
            .unwrap_or_else(|| panic!("{name} in {connections:?}"));
        assert_eq!(found["role"], role);
        assert_eq!(found["topic"], "/t");
        assert_eq!(found["remote"], local_addr(client).to_string());
        let since = found["since"].as_u64().expect("a time");
        assert!(
            (before..=after).contains(&since),
            "{since} in {before}..{after}"
        );
        assert!(found["pending_bytes"].is_u64(), "{found}");
        assert_eq!(found["messages_out"], out);
    }
    let everyone = get_json(admin, "/api/connections").await;
    assert_eq!(everyone["connections"].as_array().map(Vec::len), Some(4));

    // History's seqs are the topic's: a subscriber from the newest gets the last message.
    let from_newest = server.url(&format!("/t?from={newest}"));
    let mut late = connect(&from_newest, Role::Subscriber, None).await;
    assert_eq!(
        next_binary(&mut late).await.as_ref(),
        messages[2].as_slice()
    );
    drop(late);

    // What subscribers that left were sent still counts.
    drop((alice, bob));
    let topic = until(admin, "/api/topics/t", |topic| {
        topic["subscribers"]["subscriber"] == 0
    })
    .await;
    assert_eq!(
        topic["messages_out"], 7,
        "two subscribers' three and one replayed"
    );
    assert_eq!(topic["bytes_out"], 2 * frames + 1000 + 4);

    let _follower = connect(&server.url("/elsewhere/*"), Role::Subscriber, None).await;
    let server_view = get_json(admin, "/api/server").await;
    assert_eq!(server_view["ws_base"], format!("ws://{}", server.addr()));
    assert_eq!(server_view["patterns"], 1, "one pattern subscriber");
    assert!(server_view["version"].is_string());
}

#[tokio::test]
async fn event_stream_subscribers_are_counted_as_sse_with_what_they_were_sent() {
    let server = TestServer::start(admin_options()).await;
    let admin = server.admin_addr().expect("an admin listener");
    let mut events = EventStream::open(server.addr(), "/e", &[]).await;
    assert_eq!(events.status, 200);
    let mut publisher = connect(&server.url("/e"), Role::Publisher, None).await;
    send(&mut publisher, b"hello".to_vec()).await;
    let event = events.next_event().await;
    assert_eq!(event.data, "aGVsbG8=");
    let topic = until(admin, "/api/topics/e", |topic| {
        topic["messages_out"] == json!(1)
    })
    .await;
    assert_eq!(
        topic["subscribers"],
        json!({"subscriber": 0, "stream": 0, "sse": 1})
    );
    let sent = topic["bytes_out"].as_u64().expect("bytes out");
    assert!(sent >= "data: aGVsbG8=\n\n".len() as u64, "{topic}");
    let connections = get_json(admin, "/api/connections?topic=/e").await;
    let roles: Vec<&str> = connections["connections"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|connection| connection["role"].as_str())
        .collect();
    assert!(roles.contains(&"sse"), "{connections}");
}

#[tokio::test]
async fn unknown_topics_and_paths_are_json_404s() {
    let server = TestServer::start(admin_options()).await;
    let admin = server.admin_addr().expect("an admin listener");
    for path in ["/api/topics/nowhere", "/api/elsewhere", "/api/topics/%FF"] {
        let answer = get(admin, path, None).await;
        assert_eq!(answer.status, 404, "{path}");
        let body: Value = serde_json::from_str(&answer.body).expect("a JSON body");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    assert_eq!(get(admin, "/elsewhere", None).await.status, 404);
    assert_eq!(get(admin, "/healthz", None).await.status, 200, "as before");
}

#[tokio::test]
async fn the_main_listener_has_no_admin_api_without_a_token() {
    let server = TestServer::start(Options::default()).await;
    let topic_status = get(server.addr(), "/elsewhere", None).await.status;
    for path in ["/api/topics", "/api/server", "/ui"] {
        let answer = get(server.addr(), path, Some("Bearer anything")).await;
        assert_eq!(
            answer.status, topic_status,
            "{path} is a topic path like any other"
        );
    }
}

#[tokio::test]
async fn with_a_token_the_main_listener_serves_the_api_to_its_bearers_only() {
    let server = TestServer::start(Options {
        admin_token: Some(AdminToken::new("s3cret")),
        ..admin_options()
    })
    .await;
    let admin = server.admin_addr().expect("an admin listener");
    for addr in [server.addr(), admin] {
        for authorization in [
            None,
            Some("Bearer wrong"),
            Some("Bearer s3cre"),
            Some("s3cret"),
        ] {
            let answer = get(addr, "/api/topics", authorization).await;
            assert_eq!(answer.status, 401, "{authorization:?}");
            assert_eq!(header(&answer, "www-authenticate"), "Bearer");
        }
        let answer = get(addr, "/api/topics", Some("Bearer s3cret")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, r#"{"topics":[]}"#);
    }
    // Topics still work on the main listener, /api/ paths included.
    let mut subscriber = connect(&server.url("/api/topics"), Role::Subscriber, None).await;
    let mut publisher = connect(&server.url("/api/topics"), Role::Publisher, None).await;
    send(&mut publisher, &b"still a topic"[..]).await;
    assert_eq!(
        next_binary(&mut subscriber).await.as_ref(),
        b"still a topic"
    );
    let answer = get(server.addr(), "/api/server", Some("Bearer s3cret")).await;
    let view: Value = serde_json::from_str(&answer.body).expect("JSON");
    assert_eq!(view["ws_base"], format!("ws://{}", server.addr()));
}

#[tokio::test]
async fn the_dashboard_is_served_offline_with_its_content_types() {
    let server = TestServer::start(Options {
        admin_token: Some(AdminToken::new("s3cret")),
        ..Options::default()
    })
    .await;
    for (path, content_type) in [
        ("/ui", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/style.css", "text/css; charset=utf-8"),
    ] {
        // The page's files hold no data: the page brings the token to the API itself.
        let answer = get(server.addr(), path, None).await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(header(&answer, "content-type"), content_type, "{path}");
        assert!(!answer.body.is_empty());
        for external in ["http://", "https://", "//cdn"] {
            assert!(
                !answer.body.contains(external),
                "{path} refers to {external}"
            );
        }
        assert!(
            header(&answer, "content-security-policy").contains("default-src 'self'"),
            "{path}"
        );
    }
    let page = get(server.addr(), "/ui", None).await.body;
    assert!(
        page.contains(r#"src="/ui/app.js""#),
        "the page loads its script"
    );
    let script = get(server.addr(), "/ui/app.js", None).await.body;
    assert!(
        script.contains(r#"import("/wspubsub.js")"#),
        "tail and publish use the module"
    );
    assert!(script.contains("/api/topics"), "the list polls the API");
    assert_eq!(get(server.addr(), "/ui/missing.js", None).await.status, 404);
}

#[tokio::test]
async fn an_empty_admin_token_is_refused() {
    let options = Options {
        admin_token: Some(AdminToken::new("")),
        ..Options::default()
    };
    let error = options.validate().expect_err("an empty token");
    assert_eq!(error.name, "admin-token");
}
