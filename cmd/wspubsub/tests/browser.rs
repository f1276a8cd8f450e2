//! Browser tests: a real headless Chromium (Debian's `chromium`, driven over the DevTools
//! protocol) loads a page from an origin of the tests' own and talks to a real
//! `wspubsub serve` process; the page reports what it saw and the assertions are made here.
//!
//! Without chromium these tests skip with a printed reason, unless `CI` is set: then they
//! fail (`.ci/deps` installs chromium, `.ci/run` sets `CI`).
//!
//! A new test: `page()` (or `chrome::launch()` and `Browser::open` for a page of your own),
//! a function on `browser/harness.html` that does the browser's part and resolves with what
//! it saw, `Browser::call` to run it and get that value back as JSON, or
//! `Browser::wait_for_dom` to wait for what a page shows; `Browser::screenshot` saves one
//! and prints its path.

#[path = "browser/chrome.rs"]
mod chrome;
#[path = "browser/origin.rs"]
mod origin;
mod support;

use serde_json::{Value, json};
use wspubsub_netfault::Proxy;
use wspubsub_pubclient::{ClientOptions, Publisher, PublisherOptions};
use wspubsub_subclient::Subscriber;
use wspubsub_testkit::{NatsServer, TIMEOUT, raw_answer, rejections};

use chrome::Browser;
use origin::Origin;
use support::Process;

/// A browser with the test page loaded from an origin of its own; `None`: skip the test.
async fn page() -> Option<(Browser, Origin)> {
    let mut browser = chrome::launch().await?;
    let origin = Origin::start().await;
    browser.open(&origin.url("/harness.html")).await;
    Some((browser, origin))
}

/// Starts `wspubsub serve` on a free loopback port with `args`; the process and its address.
async fn serve(args: &[&str]) -> (Process, String) {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut all = vec!["serve", "--addr", "127.0.0.1:0"];
        all.extend(args.iter().map(String::as_str));
        let process = Process::start(&all, &[]);
        let addr = process.listen_addr();
        (process, addr)
    })
    .await
    .expect("start wspubsub serve")
}

/// A page, and a server behind a proxy that can cut the page's connections.
struct Cuttable {
    browser: Browser,
    /// Kept to serve the page.
    _origin: Origin,
    /// Kept running.
    _server: Process,
    /// The server's own address (for clients the cut must not touch).
    addr: String,
    proxy: Proxy,
}

/// A [`Cuttable`] setup; `None`: skip the test.
async fn cuttable() -> Option<Cuttable> {
    let (browser, origin) = page().await?;
    let (server, addr) = serve(&[]).await;
    let proxy = proxy_to(&addr).await;
    Some(Cuttable {
        browser,
        _origin: origin,
        _server: server,
        addr,
        proxy,
    })
}

/// The admin listener's address of a server started with `--admin-addr`.
fn admin_addr(server: &Process) -> String {
    let line = server.wait_for_line("endpoints listening");
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("addr="))
        .expect("addr= in the admin listener's line")
        .to_owned()
}

/// A stream-mode publisher of `url`.
async fn stream_publisher(url: &str) -> Publisher {
    Publisher::connect_stream(url, ClientOptions::default(), PublisherOptions::default())
        .await
        .expect("a stream-mode publisher")
}

/// A proxy to the server at `addr`, to cut or move its connections.
async fn proxy_to(addr: &str) -> Proxy {
    Proxy::start(addr.parse().expect("an address"))
        .await
        .expect("a proxy")
}

/// The next message of a raw subscriber, within [`TIMEOUT`].
async fn next_message(subscriber: &mut Subscriber) -> bytes::Bytes {
    tokio::time::timeout(TIMEOUT, futures_util::StreamExt::next(subscriber))
        .await
        .expect("a message within the timeout")
        .expect("the subscription goes on")
        .expect("a message")
}

/// Binary payloads that catch any re-encoding: every byte value, empty, lone bytes, bytes
/// that are not UTF-8, and 64 KiB of noise.
fn tricky_payloads() -> Vec<Vec<u8>> {
    let mut state = 0x2545_f491_u32;
    let noise = (0..65_536)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_be_bytes()[0]
        })
        .collect();
    vec![
        (0..=255).collect(),
        Vec::new(),
        vec![0],
        vec![0xff],
        vec![0xc3, 0x28, 0xa0, 0xa1],
        b"plain text".to_vec(),
        noise,
    ]
}

/// `payloads` as the page takes them: hex strings.
fn as_hex(payloads: &[Vec<u8>]) -> Value {
    payloads.iter().map(hex::encode).collect()
}

/// The `data` (hex) and `seq` of each message a module subscription reported.
fn data_and_seqs(messages: &Value) -> (Vec<String>, Vec<u64>) {
    let messages = messages.as_array().expect("an array of messages");
    let data = messages
        .iter()
        .map(|message| message["data"].as_str().expect("data").to_owned())
        .collect();
    let seqs = messages
        .iter()
        .map(|message| message["seq"].as_u64().expect("a seq"))
        .collect();
    (data, seqs)
}

/// Asserts that `seqs` increase strictly.
fn assert_increasing(seqs: &[u64], what: &str) {
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "{what}: seqs not strictly increasing: {seqs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_websocket_subscriber_and_publisher_carry_every_byte_exactly() {
    let Some((mut browser, _origin)) = page().await else {
        return;
    };
    let (_server, addr) = serve(&[]).await;
    let payloads = tricky_payloads();

    // A Rust publisher to a page's native WebSocket subscriber.
    let url = format!("ws://{addr}/native/down");
    assert_eq!(browser.call("nativeSubscribe", &[json!(url)]).await, "open");
    let publisher = Publisher::connect(&url, ClientOptions::default())
        .await
        .expect("a publisher");
    for payload in &payloads {
        publisher.publish(payload.clone()).await.expect("publish");
    }
    publisher.close().await.expect("close the publisher");
    let received = browser
        .call("nativeReceived", &[json!(payloads.len())])
        .await;
    assert_eq!(received, as_hex(&payloads), "what the page received");

    // A page's native WebSocket publisher to a Rust subscriber.
    let url = format!("ws://{addr}/native/up");
    let mut subscriber = Subscriber::connect(&url, ClientOptions::default())
        .await
        .expect("a subscriber");
    let sent = browser
        .call("nativePublish", &[json!(url), as_hex(&payloads)])
        .await;
    assert_eq!(sent, json!({ "closed": 1000 }), "the page's publisher");
    for (index, payload) in payloads.iter().enumerate() {
        let message = next_message(&mut subscriber).await;
        assert_eq!(message.as_ref(), payload.as_slice(), "message {index}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_from_an_allowed_origin_connects_and_one_from_another_is_refused() {
    // A browser reports a refused handshake as 1006, without the status: the server's
    // metrics say why it refused.
    assert_origin_rule("nativeSubscribe", "ws", json!({ "closed": 1006 })).await;
}

/// Pages from two origins subscribe with the harness's `function` to a server that allows
/// only the first: the first's subscription opens, the second's ends as `refused`, and the
/// server counts one refusal by its origin rule.
async fn assert_origin_rule(function: &str, scheme: &str, refused: Value) {
    let Some(mut browser) = chrome::launch().await else {
        return;
    };
    let (allowed, other) = (Origin::start().await, Origin::start().await);
    let (_server, addr) = serve(&["--allowed-origins", &allowed.origin()]).await;
    let url = json!(format!("{scheme}://{addr}/origins"));

    browser.open(&allowed.url("/harness.html")).await;
    assert_eq!(
        browser.call(function, std::slice::from_ref(&url)).await,
        "open"
    );
    let addr = addr.parse().expect("a socket address");
    assert_eq!(rejections(addr, 403, "origin").await, 0.0);

    browser.open(&other.url("/harness.html")).await;
    assert_eq!(browser.call(function, &[url]).await, refused);
    assert_eq!(rejections(addr, 403, "origin").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_is_served_and_publishes_with_acks_to_a_subscription_in_order() {
    let (_server, addr) = serve(&[]).await;
    assert_serves_module(&addr).await;
    // With an admin listener, both listeners serve it.
    let (with_admin, main_addr) = serve(&["--admin-addr", "127.0.0.1:0"]).await;
    assert_serves_module(&admin_addr(&with_admin)).await;
    assert_serves_module(&main_addr).await;

    let Some((mut browser, _origin)) = page().await else {
        return;
    };
    let url = json!(format!("ws://{addr}/module"));
    browser
        .call(
            "moduleSubscribe",
            &[json!(addr), url.clone(), json!("latest")],
        )
        .await;
    let payloads = tricky_payloads();
    let acks = browser
        .call("modulePublish", &[json!(addr), url, as_hex(&payloads)])
        .await;

    // Awaited one by one, each ack names its message exactly; sent together, the last one.
    let one_by_one: Vec<u64> = acks["oneByOne"]
        .as_array()
        .expect("acks")
        .iter()
        .map(|ack| {
            assert_eq!(ack["exact"], true, "{ack}");
            ack["seq"].as_u64().expect("a seq")
        })
        .collect();
    assert_eq!(one_by_one.len(), payloads.len());
    assert_increasing(&one_by_one, "acks one by one");
    let together = acks["together"].as_array().expect("acks");
    assert_eq!(together.len(), payloads.len());
    assert_eq!(together.last().expect("an ack")["exact"], true);
    let together_seqs: Vec<u64> = together
        .iter()
        .map(|ack| ack["seq"].as_u64().expect("a seq"))
        .collect();
    assert!(together_seqs.windows(2).all(|pair| pair[0] <= pair[1]));
    assert!(together_seqs[0] > one_by_one[one_by_one.len() - 1]);

    let messages = browser
        .call("moduleMessages", &[json!(2 * payloads.len())])
        .await;
    let (data, seqs) = data_and_seqs(&messages);
    let both_rounds = [payloads.as_slice(), payloads.as_slice()].concat();
    assert_eq!(
        json!(data),
        as_hex(&both_rounds),
        "what the subscription received"
    );
    assert_increasing(&seqs, "the subscription");
    assert_eq!(seqs[..payloads.len()], one_by_one, "seqs match the acks");
    assert_eq!(seqs.last(), together_seqs.last());
    assert!(
        messages
            .as_array()
            .expect("messages")
            .iter()
            .all(|m| m["topic"] == "/module"),
        "{messages}"
    );
    let screenshot = browser.screenshot("module-subscription").await;
    assert!(screenshot.metadata().is_ok_and(|file| file.len() > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_follows_a_pattern_naming_each_messages_topic() {
    let Some((mut browser, _origin)) = page().await else {
        return;
    };
    let (_server, addr) = serve(&[]).await;
    let pattern = json!(format!("ws://{addr}/chat/*"));
    let opened = browser
        .call("moduleSubscribe", &[json!(addr), pattern, json!("latest")])
        .await;
    assert!(
        opened
            .as_array()
            .expect("states")
            .iter()
            .any(|state| state["type"] == "following" && state["pattern"] == "/chat/*"),
        "{opened}"
    );
    // Both topics are created after the subscription: followed from their first message.
    let payloads = tricky_payloads();
    let mut sent = Vec::new();
    for topic in ["/chat/a", "/chat/b"] {
        let publisher = stream_publisher(&format!("ws://{addr}{topic}")).await;
        for payload in &payloads {
            publisher
                .publish_confirmed(payload.clone())
                .await
                .expect("stored");
            sent.push((topic, payload.clone()));
        }
        publisher.close().await.expect("closed");
    }
    let messages = browser.call("moduleMessages", &[json!(sent.len())]).await;
    let received: Vec<(String, String)> = messages
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let topic = m["topic"].as_str().expect("a topic").to_owned();
            (topic, m["data"].as_str().expect("hex data").to_owned())
        })
        .collect();
    let expected: Vec<(String, String)> = sent
        .iter()
        .map(|(topic, payload)| ((*topic).to_owned(), hex::encode(payload)))
        .collect();
    assert_eq!(
        received, expected,
        "every message, each with its topic, in order"
    );
}

/// Asserts that the server at `addr` answers `GET /wspubsub.js` with the module.
async fn assert_serves_module(addr: &str) {
    let served = raw_answer(
        addr.parse().expect("a socket address"),
        b"GET /wspubsub.js HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(served.status, 200, "{}", served.head);
    let head = served.head.to_ascii_lowercase();
    assert!(
        head.contains("\r\ncontent-type: text/javascript; charset=utf-8")
            && head.contains("\r\naccess-control-allow-origin: *"),
        "{}",
        served.head
    );
    assert_eq!(served.body, include_str!("../../../clients/js/wspubsub.js"));
}

/// Publishes `count` messages numbered from `first` to `url` in stream mode, each confirmed
/// (stored) before the next; their payloads.
async fn publish_confirmed(publisher: &Publisher, first: usize, count: usize) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    for number in first..first + count {
        let payload = format!("message {number}").into_bytes();
        publisher
            .publish_confirmed(payload.clone())
            .await
            .expect("a confirmed publish");
        sent.push(payload);
    }
    sent
}

/// Asserts that a module subscription received exactly `sent`, in order, with increasing
/// seqs, and that its states show `closes` closes it came back from, the first with `code`.
async fn assert_resumed(browser: &mut Browser, sent: &[Vec<u8>], code: u64) {
    let opened = browser.call("moduleOpened", &[json!(2)]).await;
    let closes: Vec<&Value> = opened["states"]
        .as_array()
        .expect("states")
        .iter()
        .filter(|state| state["state"] == "closed")
        .collect();
    assert_eq!(closes[0]["code"], code, "{opened}");
    assert_eq!(closes[0]["retrying"], true, "{opened}");
    assert_eq!(opened["gaps"], json!([]), "nothing lost: no gap");
    let messages = browser.call("moduleMessages", &[json!(sent.len())]).await;
    let (data, seqs) = data_and_seqs(&messages);
    assert_eq!(json!(data), as_hex(sent), "every message once, in order");
    assert_increasing(&seqs, "the resumed subscription");
    let last = browser.call("moduleClose", &[]).await;
    assert_eq!(last["state"], "closed", "{last}");
    assert_eq!(last["retrying"], false, "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_resumes_on_another_node_after_its_node_closes_it_with_1001() {
    let Some((mut browser, _origin)) = page().await else {
        return;
    };
    // Two nodes on one NATS behind a "load balancer" (the proxy) that sends clients to node
    // A until it drains, then to node B; the publisher is on B throughout.
    let nats = NatsServer::start().await;
    let nats_url = nats.url();
    let (a, a_addr) = serve(&["--nats-url", &nats_url]).await;
    let (_b, b_addr) = serve(&["--nats-url", &nats_url]).await;
    let proxy = proxy_to(&a_addr).await;
    let topic_url = |addr: &str| format!("ws://{addr}/failover");
    browser
        .call(
            "moduleSubscribe",
            &[
                json!(b_addr),
                json!(topic_url(&proxy.addr().to_string())),
                json!("latest"),
            ],
        )
        .await;
    let publisher = stream_publisher(&topic_url(&b_addr)).await;
    let mut sent = publish_confirmed(&publisher, 0, 20).await;
    browser.call("moduleMessages", &[json!(sent.len())]).await;

    // Node A drains: its subscribers get what it took, then 1001; B takes the reconnect.
    proxy.redirect(b_addr.parse().expect("an address"));
    a.terminate();
    sent.extend(publish_confirmed(&publisher, 20, 20).await);
    assert_resumed(&mut browser, &sent, 1001).await;
    assert!(a.exit_status().await.success(), "node A drained cleanly");
    publisher.close().await.expect("every message acknowledged");
    drop(nats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_resumes_from_history_after_its_connection_is_cut() {
    let Some(mut cut) = cuttable().await else {
        return;
    };
    let (browser, proxy, addr) = (&mut cut.browser, &cut.proxy, cut.addr.clone());
    browser
        .call(
            "moduleSubscribe",
            &[
                json!(addr),
                json!(format!("ws://{}/cut", proxy.addr())),
                json!("latest"),
            ],
        )
        .await;
    let publisher = stream_publisher(&format!("ws://{addr}/cut")).await;
    let mut sent = publish_confirmed(&publisher, 0, 20).await;
    browser.call("moduleMessages", &[json!(sent.len())]).await;

    // The network breaks (TCP reset both ways); what is published meanwhile is in history.
    assert_eq!(proxy.reset(), 1, "the page's one connection");
    sent.extend(publish_confirmed(&publisher, 20, 20).await);
    assert_resumed(browser, &sent, 1006).await;
    publisher.close().await.expect("every message acknowledged");
}

/// Where README's page to copy begins and ends.
const README_PAGE_INTRO: &str = "A page to copy";
const README_PAGE_START: &str = "```html\n";
const README_PAGE_END: &str = "```";
/// The server address README's page names, replaced by the test server's.
const README_SERVER: &str = "http://127.0.0.1:8080";

/// README's page to copy, from README.md as it stands, pointed at `addr`.
fn readme_page(addr: &str) -> String {
    let readme = include_str!("../../../README.md");
    let intro = readme
        .find(README_PAGE_INTRO)
        .expect("README's page to copy");
    let start = intro
        + readme[intro..]
            .find(README_PAGE_START)
            .expect("its code block")
        + README_PAGE_START.len();
    let length = readme[start..]
        .find(README_PAGE_END)
        .expect("the end of the code block");
    let page = &readme[start..start + length];
    assert!(
        page.contains(README_SERVER),
        "the page names {README_SERVER}"
    );
    page.replace(README_SERVER, &format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_page_shows_history_and_publishes() {
    let Some(mut browser) = chrome::launch().await else {
        return;
    };
    let (_server, addr) = serve(&[]).await;
    let origin = Origin::with_pages(vec![("/readme.html".into(), readme_page(&addr))]).await;
    let publisher = stream_publisher(&format!("ws://{addr}/chat")).await;
    publisher
        .publish_confirmed(&b"hello from Rust"[..])
        .await
        .expect("stored");

    // `from: "earliest"`: the page shows what history holds, then its own message, stored.
    browser.open(&origin.url("/readme.html")).await;
    let log = "document.getElementById('log').textContent";
    let shown = browser
        .wait_for_dom(&format!("{log}.includes(' hello from Rust') && {log}"))
        .await;
    assert!(
        shown.as_str().is_some_and(|text| text.contains("open {")),
        "{shown}"
    );
    browser
        .evaluate("document.getElementById('send').click()")
        .await;
    let stored = browser
        .wait_for_dom(&format!("{log}.match(/stored as #(\\d+)/)?.[1]"))
        .await;
    let seq = stored.as_str().expect("the stored seq");
    let shown = browser
        .wait_for_dom(&format!("{log}.includes('#{seq} hello') && {log}"))
        .await;
    assert!(!shown.to_string().contains("lost "), "no gap: {shown}");
    publisher.close().await.expect("closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_publisher_resends_across_a_cut_and_every_send_resolves() {
    let Some(mut cut) = cuttable().await else {
        return;
    };
    let (browser, proxy, addr) = (&mut cut.browser, &cut.proxy, cut.addr.clone());
    let mut subscriber =
        Subscriber::connect(&format!("ws://{addr}/resend"), ClientOptions::default())
            .await
            .expect("a subscriber");
    let via_proxy = format!("ws://{}/resend", proxy.addr());
    let opened = browser
        .call("publisherOpen", &[json!(addr), json!(via_proxy)])
        .await;
    assert_eq!(opened, "open");
    let payloads: Vec<Vec<u8>> = (0..40).map(|n| format!("sent {n}").into_bytes()).collect();
    let (before, after) = payloads.split_at(20);
    let acks = browser.call("publisherSend", &[as_hex(before)]).await;
    assert_eq!(acks.as_array().map(Vec::len), Some(before.len()), "{acks}");

    // The cut: sends made now go to a dead socket or wait for the next connection; either
    // way they are sent (again) once the publisher is back, and every one resolves.
    assert_eq!(proxy.reset(), 1, "the page's one connection");
    let acks = browser.call("publisherSend", &[as_hex(after)]).await;
    let acks = acks.as_array().expect("acks");
    assert_eq!(acks.len(), after.len());
    assert_eq!(acks.last().expect("an ack")["exact"], true);
    let states = browser.call("publisherOpened", &[json!(2)]).await;
    assert!(
        states
            .as_array()
            .expect("states")
            .iter()
            .any(|state| state["state"] == "closed" && state["retrying"] == true),
        "{states}"
    );
    assert_eq!(browser.call("publisherClose", &[]).await, "closed");

    // At least once, in order: the first time each payload arrives follows the send order.
    let mut firsts: Vec<Vec<u8>> = Vec::new();
    while firsts.len() < payloads.len() {
        let message = next_message(&mut subscriber).await;
        if !firsts
            .iter()
            .any(|seen| seen.as_slice() == message.as_ref())
        {
            firsts.push(message.to_vec());
        }
    }
    assert_eq!(firsts, payloads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_module_reports_a_gap_for_what_history_no_longer_holds() {
    let Some((mut browser, _origin)) = page().await else {
        return;
    };
    let (_server, addr) = serve(&["--history-messages", "3"]).await;
    let url = json!(format!("ws://{addr}/gap"));
    browser
        .call(
            "moduleSubscribe",
            &[json!(addr), url.clone(), json!("latest")],
        )
        .await;
    let publisher = stream_publisher(&format!("ws://{addr}/gap")).await;
    let sent = publish_confirmed(&publisher, 0, 6).await;
    let (_, seqs) = data_and_seqs(&browser.call("moduleMessages", &[json!(6)]).await);
    browser.call("moduleClose", &[]).await;

    // From the first seq again: three of the six are evicted, announced before the rest.
    browser
        .call("moduleSubscribe", &[json!(addr), url, json!(seqs[0])])
        .await;
    let messages = browser.call("moduleMessages", &[json!(3)]).await;
    let (data, replayed) = data_and_seqs(&messages);
    assert_eq!(json!(data), as_hex(&sent[3..]));
    assert_eq!(replayed, seqs[3..]);
    let opened = browser.call("moduleOpened", &[json!(1)]).await;
    assert_eq!(
        opened["gaps"],
        json!([{ "from": seqs[0], "to": seqs[3], "reason": "history_evicted", "topic": "/gap" }]),
        "{opened}"
    );
    assert_eq!(opened["position"], seqs[5] + 1);
    publisher.close().await.expect("closed");
}

/// The `data` (hex) and `id` (as a number) of each event an EventSource reported.
fn data_and_ids(events: &Value) -> (Vec<String>, Vec<u64>) {
    let events = events.as_array().expect("an array of events");
    let data = events
        .iter()
        .map(|event| event["data"].as_str().expect("data").to_owned())
        .collect();
    let ids = events
        .iter()
        .map(|event| {
            let id = event["id"].as_str().expect("an id");
            id.parse()
                .unwrap_or_else(|_| panic!("id {id:?} is not a decimal seq"))
        })
        .collect();
    (data, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_source_receives_binary_payloads_as_base64_byte_for_byte() {
    let Some((mut browser, _origin)) = page().await else {
        return;
    };
    let (_server, addr) = serve(&[]).await;
    // The page's origin is not the server's: a cross-origin EventSource, allowed by `*`.
    let opened = browser
        .call("sseSubscribe", &[json!(format!("http://{addr}/sse"))])
        .await;
    assert_eq!(opened, "open");
    let payloads = tricky_payloads();
    let publisher = stream_publisher(&format!("ws://{addr}/sse")).await;
    for payload in &payloads {
        publisher
            .publish_confirmed(payload.clone())
            .await
            .expect("stored");
    }
    let events = browser.call("sseMessages", &[json!(payloads.len())]).await;
    let (data, ids) = data_and_ids(&events);
    assert_eq!(
        json!(data),
        as_hex(&payloads),
        "what the EventSource received"
    );
    assert_increasing(&ids, "event ids");
    publisher.close().await.expect("closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_source_resumes_with_last_event_id_after_its_connection_is_cut() {
    let Some(mut cut) = cuttable().await else {
        return;
    };
    let (browser, proxy, addr) = (&mut cut.browser, &cut.proxy, cut.addr.clone());
    let opened = browser
        .call(
            "sseSubscribe",
            &[json!(format!("http://{}/sse-cut", proxy.addr()))],
        )
        .await;
    assert_eq!(opened, "open");
    let publisher = stream_publisher(&format!("ws://{addr}/sse-cut")).await;
    let mut sent = publish_confirmed(&publisher, 0, 20).await;
    browser.call("sseMessages", &[json!(sent.len())]).await;

    // Cut: what is published before EventSource is back (it waits its `retry:`) is in
    // history, and only `Last-Event-ID` brings it.
    assert_eq!(proxy.reset(), 1, "the page's one connection");
    sent.extend(publish_confirmed(&publisher, 20, 20).await);
    let gaps = browser.call("sseOpened", &[json!(2)]).await;
    assert_eq!(gaps, json!([]), "nothing lost: no gap");
    let events = browser.call("sseMessages", &[json!(sent.len())]).await;
    let (data, ids) = data_and_ids(&events);
    let sent_hex: Vec<String> = sent.iter().map(hex::encode).collect();
    assert_eq!(data, sent_hex, "every message once, in order");
    assert_increasing(&ids, "event ids across the cut");
    browser.call("sseClose", &[]).await;
    publisher.close().await.expect("closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_source_from_an_allowed_origin_streams_and_from_another_is_refused() {
    // A refused EventSource fails for good, without the status.
    assert_origin_rule("sseSubscribe", "http", json!({ "closed": true })).await;
}

/// The subscriber count the dashboard shows for `topic`, once it is `count`.
async fn dashboard_shows_subscribers(browser: &mut Browser, topic: &str, count: usize) {
    let cell = format!(
        "document.querySelector('tr[data-topic=\"{topic}\"] td[data-subscribers]')?.textContent.trim()"
    );
    let shown = browser
        .wait_for_dom(&format!("({cell}) === '{count}' && ({cell})"))
        .await;
    assert_eq!(shown, json!(count.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_topics_live_subscriber_count() {
    let Some(mut browser) = chrome::launch().await else {
        return;
    };
    let (server, addr) = serve(&["--admin-addr", "127.0.0.1:0"]).await;
    let admin_addr = admin_addr(&server);
    let url = format!("ws://{addr}/dashboard");
    let first = Subscriber::connect(&url, ClientOptions::default())
        .await
        .expect("a subscriber");
    let second = Subscriber::connect(&url, ClientOptions::default())
        .await
        .expect("a subscriber");
    browser.open(&format!("http://{admin_addr}/ui")).await;
    dashboard_shows_subscribers(&mut browser, "/dashboard", 2).await;

    // Live: one more, then one fewer.
    let third = Subscriber::connect(&url, ClientOptions::default())
        .await
        .expect("a subscriber");
    dashboard_shows_subscribers(&mut browser, "/dashboard", 3).await;
    let screenshot = browser.screenshot("dashboard").await;
    assert!(screenshot.metadata().is_ok_and(|file| file.len() > 0));
    first.close().await.expect("closed");
    dashboard_shows_subscribers(&mut browser, "/dashboard", 2).await;
    drop((second, third));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_on_the_main_listener_takes_its_token_from_the_fragment() {
    let Some(mut browser) = chrome::launch().await else {
        return;
    };
    let (_server, addr) = serve(&["--admin-token", "s3cret-t0ken"]).await;
    let _subscriber =
        Subscriber::connect(&format!("ws://{addr}/tokened"), ClientOptions::default())
            .await
            .expect("a subscriber");
    browser
        .open(&format!("http://{addr}/ui#token=s3cret-t0ken"))
        .await;
    dashboard_shows_subscribers(&mut browser, "/tokened", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_tails_a_topic_and_publishes_to_it_with_the_module() {
    let Some(mut browser) = chrome::launch().await else {
        return;
    };
    let (server, addr) = serve(&["--admin-addr", "127.0.0.1:0"]).await;
    let mut subscriber = Subscriber::connect(&format!("ws://{addr}/ops"), ClientOptions::default())
        .await
        .expect("a subscriber");
    // Served by the admin listener, the page tails and publishes on the main one.
    browser
        .open(&format!("http://{}/ui", admin_addr(&server)))
        .await;
    browser
        .evaluate(
            "document.getElementById('tail-topic').value = '/ops';
             document.getElementById('tail-start').click()",
        )
        .await;
    let tail_state = "document.getElementById('tail-state').dataset.state";
    browser
        .wait_for_dom(&format!("{tail_state} === 'open'"))
        .await;
    browser
        .evaluate(
            "document.getElementById('publish-topic').value = '/ops';
             document.getElementById('publish-text').value = 'hello from the dashboard';
             document.getElementById('publish-send').click()",
        )
        .await;
    let seq = browser
        .wait_for_dom("document.getElementById('publish-result').dataset.seq")
        .await;
    let tailed = browser
        .wait_for_dom(&format!(
            "document.querySelector('#tail-messages [data-seq=\"{}\"]')?.textContent",
            seq.as_str().expect("the stored seq")
        ))
        .await;
    assert!(
        tailed
            .as_str()
            .is_some_and(|line| line.ends_with("hello from the dashboard")),
        "{tailed}"
    );
    assert_eq!(
        next_message(&mut subscriber).await,
        "hello from the dashboard"
    );
    assert_eq!(browser.uncaught(), Vec::<&str>::new(), "the page threw");
}
