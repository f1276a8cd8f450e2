//! Graceful shutdown delivers: every message the server read from a publisher before it
//! stopped reading reaches every subscriber, in order and without a gap, before its 1001.

use wspubsub_server::Options;
use wspubsub_testkit::{Drain, TIMEOUT, TestServer, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_everything_the_server_read_before_1001() {
    let options = Options {
        close_deadline: TIMEOUT,
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let drain = Drain::start(&format!("ws://{}", server.addr()), 3).await;
    server.handle().shutdown();
    drain.check(server.addr()).await;
    // Every client finished its close handshake: the drain is over long before the deadline.
    within(TIMEOUT / 2, server.stop()).await;
}
