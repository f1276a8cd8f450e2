//! The `nats-server` harness itself: a server starts with JetStream on its own port, a
//! stopped one refuses connections and a restarted one takes them again, and three servers
//! form one cluster.
#![allow(clippy::expect_used)]

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use wspubsub_testkit::{NatsCluster, NatsServer, TIMEOUT, within};

/// The INFO line a NATS server greets every client with.
async fn info(addr: SocketAddr) -> serde_json::Value {
    let stream = within(TIMEOUT, TcpStream::connect(addr))
        .await
        .expect("connect to nats-server");
    let mut line = String::new();
    within(TIMEOUT, BufReader::new(stream).read_line(&mut line))
        .await
        .expect("read the INFO line");
    let json = line
        .strip_prefix("INFO ")
        .unwrap_or_else(|| panic!("not an INFO line: {line:?}"));
    serde_json::from_str(json.trim_end()).expect("INFO is JSON")
}

async fn refuses(addr: SocketAddr) -> bool {
    within(TIMEOUT, TcpStream::connect(addr)).await.is_err()
}

#[tokio::test]
async fn a_server_runs_jetstream_stops_and_restarts_on_its_port() {
    let mut server = NatsServer::start().await;
    let addr = server.client_addr();
    assert_eq!(server.url(), format!("nats://{addr}"));
    let greeting = info(addr).await;
    assert_eq!(greeting["port"].as_u64(), Some(u64::from(addr.port())));
    assert_eq!(greeting["jetstream"].as_bool(), Some(true), "{greeting}");

    server.stop().await;
    assert!(!server.is_running());
    assert!(refuses(addr).await, "a stopped server's port refuses");

    server.restart().await;
    assert!(server.pid().is_some());
    assert_eq!(
        info(addr).await["port"].as_u64(),
        Some(u64::from(addr.port()))
    );
}

#[tokio::test]
async fn three_servers_form_one_cluster_and_a_member_restarts_into_it() {
    let mut cluster = NatsCluster::start(3).await;
    let ports: Vec<u16> = (0..3)
        .map(|i| cluster.server(i).client_addr().port())
        .collect();
    let urls = cluster.urls();
    for port in &ports {
        assert!(urls.contains(&format!("nats://127.0.0.1:{port}")), "{urls}");
    }
    assert_eq!(urls.split(',').count(), 3);

    // Each server knows the cluster and tells clients about the other two.
    for (index, port) in ports.iter().enumerate() {
        let greeting = info(cluster.server(index).client_addr()).await;
        assert_eq!(
            greeting["cluster"].as_str(),
            Some("wspubsub-test"),
            "{greeting}"
        );
        let known = greeting["connect_urls"].to_string();
        for other in ports.iter().filter(|other| *other != port) {
            assert!(known.contains(&format!(":{other}")), "{index}: {known}");
        }
    }

    let addr = cluster.server(1).client_addr();
    cluster.stop(1).await;
    assert!(refuses(addr).await, "a stopped member's port refuses");
    assert!(!refuses(cluster.server(0).client_addr()).await);

    cluster.restart(1).await;
    let greeting = info(addr).await;
    assert_eq!(greeting["server_name"].as_str(), Some("n1"), "{greeting}");
    assert!(
        greeting["connect_urls"]
            .to_string()
            .contains(&format!(":{}", ports[0]))
    );
}
