//! The load test inside `cargo test`: a small data set made here (nothing depends on a file
//! generated beforehand), several publishers and subscribers, against a real server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use loadtest::{InProcessServer, LoadTest, Progress};
use tokio::net::{TcpListener, TcpStream};
use wspubsub_server::Options;
use wspubsub_testdata::{DataSet, GenerateSpec};

fn small_data() -> DataSet {
    DataSet::generate(GenerateSpec {
        count: 40,
        max_message_size: 20_000,
        seed: 7,
    })
}

/// The one URL of `server`, as [`loadtest::run`] takes a node list.
fn single(server: &InProcessServer) -> Vec<String> {
    vec![server.url().to_owned()]
}

#[tokio::test]
async fn every_subscriber_receives_every_message_of_every_publisher_in_one_order() {
    let data = small_data();
    let server = InProcessServer::start().await.expect("server");
    let test = LoadTest {
        publishers: 5,
        subscribers: 5,
        topic: "/it".into(),
        timeout: Duration::from_secs(60),
        ..LoadTest::default()
    };
    let report = loadtest::run(&single(&server), &data, &test, &Progress::default())
        .await
        .expect("run");
    server.stop().await.expect("stop");
    assert!(report.passed(), "{report}");
    assert_eq!(report.verdicts.len(), 5);
    for verdict in &report.verdicts {
        assert_eq!(verdict.received, 5 * data.len());
        assert_eq!(verdict.digest, data.expected_digest(5));
        assert_eq!(verdict.order, None, "{report}");
    }
    assert_eq!(report.delivered_messages(), (5 * 5 * data.len()) as u64);
    let shown = report.to_string();
    assert!(
        shown.contains("order: all 5 subscribers received the same sequence"),
        "{shown}"
    );
    assert!(
        !shown.contains(" on node "),
        "one node is not named: {shown}"
    );
}

/// A disrupted run of `publishers` x `subscribers` on the small data set against `server`.
async fn disrupted_run(server: &InProcessServer, resets: usize) -> loadtest::Report {
    let test = LoadTest {
        publishers: 3,
        subscribers: 4,
        topic: "/disrupted".into(),
        timeout: Duration::from_secs(60),
        disrupt: resets,
        ..LoadTest::default()
    };
    loadtest::run(&single(server), &small_data(), &test, &Progress::default())
        .await
        .expect("run")
}

#[tokio::test]
async fn disrupted_subscribers_resume_from_history_and_reach_the_digest() {
    let data = small_data();
    let server = InProcessServer::start().await.expect("server");
    let report = disrupted_run(&server, 3).await;
    server.stop().await.expect("stop");
    assert!(report.passed(), "{report}");
    assert_eq!(report.verdicts.len(), 4);
    for verdict in &report.verdicts {
        assert_eq!(verdict.reconnects, 3, "{report}");
        assert!(
            verdict.gaps.is_empty() && verdict.unplanned.is_empty(),
            "{report}"
        );
        assert_eq!(verdict.received, 3 * data.len());
        assert_eq!(verdict.digest, data.expected_digest(3));
        assert_eq!(verdict.order, None, "resume must not reorder: {report}");
    }
    let shown = report.to_string();
    assert_eq!(shown.matches(", 3 of 3 reconnects").count(), 4, "{shown}");
}

#[tokio::test]
async fn without_history_a_disrupted_run_fails_and_names_the_gap() {
    // The messages in flight when a connection breaks are gone: only history could give them
    // again, so the resumed subscriber is told of a gap, and the run must fail.
    let server = InProcessServer::start_with(Options {
        history_messages: 0,
        ..Options::default()
    })
    .await
    .expect("server");
    let report = disrupted_run(&server, 3).await;
    server.stop().await.expect("stop");
    assert!(!report.passed(), "{report}");
    let gapped: Vec<_> = report
        .verdicts
        .iter()
        .filter(|verdict| !verdict.gaps.is_empty())
        .collect();
    assert!(!gapped.is_empty(), "no gap announced: {report}");
    for verdict in &gapped {
        assert!(!verdict.passed, "a gap fails the subscriber: {report}");
        for gap in &verdict.gaps {
            assert!(gap.to > gap.from, "{report}");
            // `topic_restarted` when every client of the topic was gone at the reconnect:
            // with no history to keep it, the topic ended and began again.
            assert!(
                ["history_off", "topic_restarted"].contains(&gap.reason.as_str()),
                "{report}"
            );
        }
    }
    assert!(report.to_string().contains(" lost ("), "{report}");
}

/// The small data set saved in a fresh temp dir named `name`; returns the dir and the file.
fn saved_data(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("small.dat");
    small_data().save(&path).expect("save data");
    (dir, path)
}

/// Runs the binary with `args` on the data at `data`; asserts that it passed and returns
/// its output.
fn passing_run(args: &[&str], data: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["--timeout", "60s"])
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("run loadtest");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn binary_passes_against_its_in_process_server_disrupted_or_not_and_fails_on_a_bad_data_file() {
    let (dir, path) = saved_data("wspubsub-loadtest");
    for disrupt in ["0", "2"] {
        let stdout = passing_run(
            &[
                "--publishers",
                "2",
                "--subscribers",
                "2",
                "--disrupt",
                disrupt,
            ],
            &path,
        );
        assert!(stdout.contains("PASS: 2 passed, 0 failed"), "{stdout}");
        let reconnects = match disrupt {
            "0" => 0,
            _ => 2,
        };
        assert_eq!(
            stdout.matches(", 2 of 2 reconnects").count(),
            reconnects,
            "{stdout}"
        );
    }

    std::fs::write(&path, b"not a data file").expect("corrupt the file");
    let output = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("--data")
        .arg(&path)
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read test data"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reader_that_goes_away_does_not_crash_the_binary() {
    let (dir, path) = saved_data("wspubsub-loadtest-pipe");
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "--publishers",
            "1",
            "--subscribers",
            "1",
            "--timeout",
            "60s",
        ])
        .arg("--data")
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run loadtest");
    // `loadtest | head -0`: the reader is gone before the first line.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A loopback TCP relay to `upstream` that counts the connections it carries: a stand-in
/// node. Three of them in front of one server are three nodes that share every topic, as
/// the nodes of a cluster do, so a placed run can pass, and each relay's count shows which
/// clients went to it.
struct Node {
    url: String,
    connections: Arc<AtomicUsize>,
    relay: tokio::task::JoinHandle<()>,
}

impl Node {
    async fn start(upstream: SocketAddr) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind node");
        let url = format!("ws://{}", listener.local_addr().expect("node addr"));
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let relay = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Node {
            url,
            connections,
            relay,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

/// Three stand-in nodes in front of `server`.
async fn three_nodes(server: &InProcessServer) -> Vec<Node> {
    let addr: SocketAddr = server
        .url()
        .trim_start_matches("ws://")
        .parse()
        .expect("server addr");
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(Node::start(addr).await);
    }
    nodes
}

/// The topology: publishers spread over nodes 1-2, subscribers over nodes 1-3.
fn spread(publishers: usize, subscribers: usize, disrupt: usize) -> LoadTest {
    LoadTest {
        publishers,
        subscribers,
        topic: "/placed".into(),
        timeout: Duration::from_secs(60),
        disrupt,
        publisher_nodes: "1-2".parse().expect("node list"),
        subscriber_nodes: "1-3".parse().expect("node list"),
    }
}

/// Runs `test` over three stand-in nodes of one server; returns the report and the
/// connections each node carried.
async fn placed_run(test: &LoadTest) -> (loadtest::Report, Vec<usize>) {
    let server = InProcessServer::start().await.expect("server");
    let nodes = three_nodes(&server).await;
    let urls: Vec<String> = nodes.iter().map(|node| node.url.clone()).collect();
    let report = loadtest::run(&urls, &small_data(), test, &Progress::default())
        .await
        .expect("run");
    let connections = nodes.iter().map(Node::connections).collect();
    drop(nodes);
    server.stop().await.expect("stop");
    (report, connections)
}

#[tokio::test]
async fn placed_clients_connect_to_their_own_nodes_round_robin() {
    let (report, connections) = placed_run(&spread(4, 5, 0)).await;
    assert!(report.passed(), "{report}");
    // Publishers 0, 2 and subscribers 0, 3 on node 1; publishers 1, 3 and subscribers 1, 4
    // on node 2; subscriber 2 alone on node 3.
    assert_eq!(connections, [4, 4, 1], "{report}");
    let subscriber_nodes: Vec<usize> = report.verdicts.iter().map(|v| v.node).collect();
    assert_eq!(subscriber_nodes, [0, 1, 2, 0, 1]);
    assert_eq!(report.nodes, 3);
    let shown = report.to_string();
    assert!(
        shown.contains("ok   subscriber 2 on node 3: ")
            && shown.contains("order: all 5 subscribers received the same sequence"),
        "{shown}"
    );
}

#[tokio::test]
async fn disrupted_subscribers_resume_through_their_own_nodes() {
    let (report, connections) = placed_run(&spread(2, 3, 2)).await;
    assert!(report.passed(), "{report}");
    assert!(
        report
            .verdicts
            .iter()
            .all(|v| v.reconnects == 2 && v.order.is_none()),
        "{report}"
    );
    // Each node that hosts subscribers is first probed once (to point the proxies at its
    // address); then each subscriber connects once and again after each of its 2 resets.
    // Node 3 has no publisher: all it carried was subscriber 2's.
    assert_eq!(connections, [1 + 1 + 3, 1 + 1 + 3, 1 + 3], "{report}");
}

#[test]
fn the_binary_prints_the_placement_and_refuses_nodes_it_does_not_have() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(InProcessServer::start()).expect("server");
    let nodes = runtime.block_on(three_nodes(&server));
    let urls: Vec<String> = nodes.iter().map(|node| node.url.clone()).collect();
    let (dir, path) = saved_data("wspubsub-loadtest-placed");
    let url_list = urls.join(",");
    let stdout = passing_run(
        &[
            "--publishers",
            "2",
            "--subscribers",
            "3",
            "--publisher-nodes",
            "1-2",
            "--subscriber-nodes",
            "1-3",
            "--url",
            &url_list,
        ],
        &path,
    );
    for line in [
        format!("node 1 {}: publishers 0; subscribers 0", urls[0]),
        format!("node 2 {}: publishers 1; subscribers 1", urls[1]),
        format!("node 3 {}: subscribers 2", urls[2]),
        "order: all 3 subscribers received the same sequence".to_owned(),
        "PASS: 3 passed, 0 failed".to_owned(),
    ] {
        assert!(
            stdout.lines().any(|shown| shown == line),
            "no '{line}' in:\n{stdout}"
        );
    }
    let connections: Vec<usize> = nodes.iter().map(Node::connections).collect();
    assert_eq!(connections, [2, 2, 1], "{stdout}");

    for (flag, nodes, said) in [
        (
            "--subscriber-nodes",
            "1-4",
            "--subscriber-nodes 1-4: there is no node 4",
        ),
        ("--publisher-nodes", "3-1", "range 3-1 runs backwards"),
        ("--publisher-nodes", "0", "nodes are numbered from 1"),
        ("--subscriber-nodes", "1,x", "'x' is not a node number"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args([flag, nodes, "--url", &url_list])
            .arg("--data")
            .arg(&path)
            .output()
            .expect("run loadtest");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {nodes}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && first.contains(said),
            "{flag} {nodes}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{flag} {nodes}: nothing was run");
    }
    drop(nodes);
    runtime.block_on(server.stop()).expect("stop");
    let _ = std::fs::remove_dir_all(&dir);
}
