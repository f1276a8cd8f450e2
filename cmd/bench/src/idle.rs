//! The `idle` scenario: many subscribers that only wait. It measures the server's resident
//! memory per connection and the time one message takes to reach all of them.
//!
//! Connections come from several 127.0.0.x source addresses, so that their number is not
//! capped by one address's ephemeral ports, and the open-file limit is raised first.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::load::{Socket, connect};
use crate::process::ServerProcess;

/// Connections per source address (well under the ~28k ephemeral ports of one address).
const PER_SOURCE: usize = 20_000;

/// Runs with many connections (idle, churn) so far in this process.
static RUNS: AtomicU8 = AtomicU8::new(0);

/// Handshakes in progress at once (more, on two cores, starve the pongs of the connections
/// already made).
pub(crate) const CONCURRENT_CONNECTS: usize = 32;

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
    /// Server RSS growth per connection once that message reached them all, in bytes: what
    /// a subscriber keeps of a delivery once idle again (0 if it keeps nothing, up to noise).
    pub(crate) rss_growth_after_message: f64,
    /// Correctness failures.
    pub(crate) errors: Vec<String>,
    /// Why the count was not attempted, if it was not.
    pub(crate) skipped: Option<String>,
}

impl IdleMeasurement {
    /// A count that could not be attempted, and why.
    pub(crate) fn skipped(connections: usize, why: String) -> Self {
        IdleMeasurement {
            connections,
            rss_per_connection: 0.0,
            deliver_all_ms: 0.0,
            rss_growth_after_message: 0.0,
            errors: Vec::new(),
            skipped: Some(why),
        }
    }
}

/// The source addresses of one run's connections: 127.x.y.1, a new `y` every [`PER_SOURCE`]
/// connections, and `x`, `y` of their own per process and per run, so that ports an earlier
/// run left in TIME_WAIT cannot collide with this run's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sources {
    network: u8,
    first_host: u8,
}

impl Sources {
    /// The addresses of a new run.
    pub(crate) fn new() -> Sources {
        Sources {
            network: 10 + (std::process::id() % 100) as u8,
            first_host: RUNS.fetch_add(1, Ordering::Relaxed).wrapping_mul(8),
        }
    }

    /// Where the connection numbered `index` comes from.
    pub(crate) fn of(self, index: usize) -> IpAddr {
        let host = self.first_host.wrapping_add((index / PER_SOURCE) as u8);
        IpAddr::V4(Ipv4Addr::new(127, self.network, host, 1))
    }
}

/// Raises the open-file limit towards `connections` plus some spare, for this process and the
/// server's (children inherit it): past the hard limit if allowed (root with
/// `CAP_SYS_RESOURCE`), else up to it. Returns the limit in force.
pub(crate) fn raise_file_limit(connections: usize) -> anyhow::Result<u64> {
    let wanted = connections as u64 + SPARE_FILES;
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    if wanted <= soft {
        return Ok(soft);
    }
    if rlimit::setrlimit(rlimit::Resource::NOFILE, wanted, wanted.max(hard)).is_ok() {
        return Ok(wanted);
    }
    rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).context("raise the open-file limit")?;
    Ok(hard)
}

/// Files a process needs besides the connections (listener, stdio, epoll, ...).
const SPARE_FILES: u64 = 256;

/// Why `connections` idle subscribers cannot be held under the open-file limit `limit`, if so.
pub(crate) fn unreachable(connections: usize, limit: u64) -> Option<String> {
    (connections as u64 + SPARE_FILES > limit).then(|| {
        format!(
            "not reachable here: a process may open at most {limit} files (RLIMIT_NOFILE hard \
             limit, not raisable without CAP_SYS_RESOURCE) and the server needs one per connection"
        )
    })
}

/// Starts connecting `count` subscribers, subscriber `index` to `path(index)`, from source
/// addresses enough for all ([`Sources`]), [`CONCURRENT_CONNECTS`] handshakes at a time; each
/// task yields its subscriber's index and socket.
pub(crate) fn connect_subscribers(
    server: &ServerProcess,
    count: usize,
    path: impl Fn(usize) -> String,
) -> JoinSet<anyhow::Result<(usize, Socket)>> {
    let connecting = Arc::new(Semaphore::new(CONCURRENT_CONNECTS));
    let sources = Sources::new();
    let mut connects = JoinSet::new();
    for index in 0..count {
        let (addr, access) = (server.addr(), server.access().clone());
        let (connecting, path) = (Arc::clone(&connecting), path(index));
        let source = Some(sources.of(index));
        connects.spawn(async move {
            let _permit = connecting.acquire_owned().await?;
            let ws = connect(addr, &access, &path, "subscriber", source).await?;
            anyhow::Ok((index, ws))
        });
    }
    connects
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
    let mut connects = connect_subscribers(server, connections, |_| "/idle".to_owned());
    let mut readers = JoinSet::new();
    while let Some(connected) = connects.join_next().await {
        let (_, mut ws) = connected.context("connect task")??;
        let (received, all_received) = (Arc::clone(&received), Arc::clone(&all_received));
        readers.spawn(async move {
            // Reading answers the server's pings while waiting.
            loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(_))) => break,
                    Some(Ok(Message::Close(frame))) => {
                        anyhow::bail!("idle subscriber closed by the server: {frame:?}")
                    }
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

    let mut publisher = connect(addr, server.access(), "/idle", "publisher", None).await?;
    let started = Instant::now();
    publisher
        .send(Message::Binary(Bytes::from_static(b"wake up")))
        .await?;
    let mut errors = Vec::new();
    let delivered = tokio::time::timeout(DELIVERY_TIMEOUT, all_received.notified()).await;
    let deliver_all_ms = started.elapsed().as_secs_f64() * 1e3;
    let rss_delivered = server.rss_bytes()?;
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
        rss_growth_after_message: rss_delivered.saturating_sub(rss_after) as f64
            / connections as f64,
        errors,
        skipped: None,
    })
}
