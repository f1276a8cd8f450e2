//! SIGTERM to a real `wspubsub serve` process delivers before it closes: every message the
//! server read from a publisher reaches every subscriber, in order and without a gap, before
//! its 1001, and the process exits 0.

mod support;

use support::Process;
use wspubsub_testkit::Drain;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_writes_everything_the_server_read_before_1001() {
    let process = Process::serve(&[
        ("PUBSUB_ADDR", "127.0.0.1:0"),
        ("PUBSUB_CLOSE_DEADLINE", "30s"),
    ]);
    let addr = process.listen_addr();
    let drain = Drain::start(&format!("ws://{addr}"), 2).await;
    process.terminate();
    drain.check(addr.parse().expect("a socket address")).await;
    let status = process.exit_status().await;
    assert!(status.success(), "graceful stop exits 0, got {status:?}");
}
