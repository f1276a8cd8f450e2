//! The README's JavaScript stream-mode decoder, as a user pastes it: the code block is taken
//! from README.md as it stands and run in Node's WHATWG `WebSocket` (the browser API) against
//! a real server, which it must decode: the `subscribed` frame, then every message with its
//! seq, topic and payload.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use wspubsub_server::Options;
use wspubsub_server::protocol::Role;
use wspubsub_testkit::{TIMEOUT, TestServer, connect, send};

/// Where the README's decoder begins and ends.
const DECODER_INTRO: &str = "A decoder a browser page can paste:\n\n```js\n";
const DECODER_END: &str = "```";

/// The URL the README's decoder connects to, replaced by the test server's.
const README_URL: &str = "wss://host/prices?pubsub=subscriber&from=earliest";

/// The README's decoder, from README.md as it stands.
fn readme_decoder() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let start = readme
        .find(DECODER_INTRO)
        .expect("the decoder in README.md")
        + DECODER_INTRO.len();
    let length = readme[start..]
        .find(DECODER_END)
        .expect("the end of the code block");
    readme[start..start + length].to_owned()
}

// Multi-threaded: the test blocks on node's output while the server serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_decoder_reads_what_the_server_sends() {
    const MESSAGES: usize = 3;
    let server = TestServer::start(Options::default()).await;
    let mut publisher = connect(&server.url("/prices"), Role::Publisher, None).await;
    let payloads: Vec<String> = (0..MESSAGES).map(|n| format!("price {n}")).collect();
    for payload in &payloads {
        send(&mut publisher, payload.clone().into_bytes()).await;
    }
    let decoder = readme_decoder();
    assert!(decoder.contains(README_URL), "{decoder}");
    // What a page would do with what the decoder hands it: one JSON line each, and the end
    // once every message has come (from history: `from=earliest`).
    let page = format!(
        "let seen = 0;\n\
         const onControl = (control) => console.log(JSON.stringify({{ control }}));\n\
         const onMessage = ({{ seq, timeMs, topic, payload }}) => {{\n\
           console.log(JSON.stringify({{ seq, timeMs, topic, payload: new TextDecoder().decode(payload) }}));\n\
           if (++seen === {MESSAGES}) process.exit(0);\n\
         }};\n\
         {}",
        decoder.replace(
            README_URL,
            &format!("{}?pubsub=subscriber&from=earliest", server.url("/prices"))
        )
    );
    let mut node = Command::new("node")
        .args(["--experimental-websocket", "--no-warnings", "-e", &page])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node, which the machine image ships");
    let stdout = node.stdout.take().expect("node's stdout");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let next_line = || {
        received
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("no line from the decoder within {TIMEOUT:?}"))
    };
    let subscribed: serde_json::Value = serde_json::from_str(&next_line()).expect("JSON");
    assert_eq!(subscribed["control"]["type"], "subscribed", "{subscribed}");
    assert_eq!(subscribed["control"]["topic"], "/prices", "{subscribed}");
    let from = subscribed["control"]["from"].as_u64().expect("from");
    for (n, payload) in payloads.iter().enumerate() {
        let message: serde_json::Value = serde_json::from_str(&next_line()).expect("JSON");
        assert_eq!(message["seq"].as_u64(), Some(from + n as u64), "{message}");
        assert_eq!(
            message["topic"], "",
            "not a pattern subscription: {message}"
        );
        assert_eq!(message["payload"], payload.as_str(), "{message}");
        assert!(
            message["timeMs"].as_f64().is_some_and(|ms| ms > 1.7e12),
            "a unix time in milliseconds: {message}"
        );
    }
    let status = node.wait().expect("node's exit");
    assert!(status.success(), "{status:?}");
}
