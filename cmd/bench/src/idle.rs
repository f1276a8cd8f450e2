//! The `idle` scenario: many subscribers that only wait. It measures the server's resident
//! memory per connection and the time one message takes to reach all of them.
//!
//! Connections come from several 127.0.0.x source addresses, so that their number is not
//! capped by one address's ephemeral ports, and the open-file limit is raised first.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::load::connect;
use crate::process::ServerProcess;

/// Connections per source address (well under the ~28k ephemeral ports of one address).
const PER_SOURCE: usize = 20_000;

/// Handshakes in progress at once.
const CONCURRENT_CONNECTS: usize = 256;

/// How long reaching every subscriber may take before it counts as a failure.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// What one idle run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct IdleMeasurement {
    /// Idle subscribers held.
    pub(crate) connections: usize,
    /// Server RSS growth per connection, in bytes.
    pub(crate) rss_per_connection: f64,
    /// Time from publishing one message until every subscriber had it, in milliseconds.
    pub(crate) deliver_all_ms: f64,
    /// Correctness failures.
    pub(crate) errors: Vec<String>,
}

/// Raises the open-file limit so that `connections` sockets fit in this process and the
/// server's (children inherit it).
pub(crate) fn raise_file_limit(connections: usize) -> anyhow::Result<()> {
    let wanted = (connections as u64 + 1024).max(rlimit::getrlimit(rlimit::Resource::NOFILE)?.0);
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    let hard = hard.max(wanted);
    rlimit::setrlimit(rlimit::Resource::NOFILE, wanted, hard).with_context(|| {
        format!("raise the open-file limit to {wanted} (needs root or a higher hard limit)")
    })
}

/// Holds `connections` idle subscribers on one topic, then delivers one message to all.
pub(crate) async fn run(
    server: &ServerProcess,
    connections: usize,
) -> anyhow::Result<IdleMeasurement> {
    let addr = server.addr();
    let rss_before = server.rss_bytes()?;
    let received = Arc::new(AtomicU64::new(0));
    let all_received = Arc::new(Notify::new());
    let connecting = Arc::new(Semaphore::new(CONCURRENT_CONNECTS));
    let mut connects = JoinSet::new();
    for index in 0..connections {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index / PER_SOURCE) as u8));
        let connecting = Arc::clone(&connecting);
        connects.spawn(async move {
            let _permit = connecting.acquire_owned().await?;
            connect(addr, "/idle", "subscriber", Some(source)).await
        });
    }
    let mut readers = JoinSet::new();
    while let Some(connected) = connects.join_next().await {
        let mut ws = connected.context("connect task")??;
        let (received, all_received) = (Arc::clone(&received), Arc::clone(&all_received));
        readers.spawn(async move {
            // Reading answers the server's pings while waiting.
            loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(_))) => break,
                    Some(Ok(_)) => {}
                    Some(Err(error)) => anyhow::bail!("idle subscriber failed: {error}"),
                    None => anyhow::bail!("idle subscriber was closed"),
                }
            }
            if received.fetch_add(1, Ordering::AcqRel) + 1 == connections as u64 {
                all_received.notify_one();
            }
            // Stay connected until the run ends.
            std::future::pending::<()>().await;
            Ok(())
        });
    }
    // Every subscriber is registered with its topic once its handshake was answered.
    let rss_after = server.rss_bytes()?;

    let mut publisher = connect(addr, "/idle", "publisher", None).await?;
    let started = Instant::now();
    publisher
        .send(Message::Binary(Bytes::from_static(b"wake up")))
        .await?;
    let mut errors = Vec::new();
    let delivered = tokio::time::timeout(DELIVERY_TIMEOUT, all_received.notified()).await;
    let deliver_all_ms = started.elapsed().as_secs_f64() * 1e3;
    if delivered.is_err() {
        errors.push(format!(
            "{} of {connections} subscribers got the message within {DELIVERY_TIMEOUT:?}",
            received.load(Ordering::Acquire)
        ));
    }
    readers.abort_all();
    while let Some(ended) = readers.join_next().await {
        if let Ok(Err(error)) = ended {
            errors.push(error.to_string());
        }
    }
    Ok(IdleMeasurement {
        connections,
        rss_per_connection: rss_after.saturating_sub(rss_before) as f64 / connections as f64,
        deliver_all_ms,
        errors,
    })
}
