//! The `churn` scenario: many clients come, exchange messages and all leave; the server must
//! then give the memory they used back to the system by itself. It measures the server's
//! resident memory before, at the peak and after, and how long the return took, and fails
//! when it is not back within [`RETURN_MARGIN`] of where it was within [`RETURN_DEADLINE`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::idle::{self, CONCURRENT_CONNECTS};
use crate::load::{Socket, close, connect};
use crate::process::ServerProcess;

/// How far above its baseline the server's memory may stay once every client has left.
pub(crate) const RETURN_MARGIN: u64 = 16 << 20;

/// How long after the last client left the server has to get there.
pub(crate) const RETURN_DEADLINE: Duration = Duration::from_secs(30);

/// Topics the subscribers are spread over (one publisher each).
pub(crate) const TOPICS: usize = 100;

/// Messages each topic's publisher sends (every subscriber of the topic gets them all).
const MESSAGES: usize = 20;

/// Size of each message: enough for the server's buffers to be used, small enough that what
/// the topics' histories keep of them (2 MiB in all) stays well under [`RETURN_MARGIN`].
const PAYLOAD: usize = 1024;

/// How long the subscribers may take to get every message.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// How often the server's memory is read while waiting for it to come down.
const POLL: Duration = Duration::from_millis(250);

/// What one churn run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ChurnMeasurement {
    /// Clients that came and went (subscribers; the publishers come on top).
    pub(crate) clients: usize,
    /// Server RSS before any client came, in bytes.
    pub(crate) baseline_rss: u64,
    /// Server RSS with every client connected and every message delivered, in bytes.
    pub(crate) peak_rss: u64,
    /// Server RSS at the end of the wait, in bytes.
    pub(crate) after_rss: u64,
    /// Seconds from the last client's leaving until RSS was back within the margin (`None`:
    /// not within [`RETURN_DEADLINE`]).
    pub(crate) return_seconds: Option<f64>,
    /// Correctness failures, a missed target included.
    pub(crate) errors: Vec<String>,
}

/// Connects `clients` subscribers over [`TOPICS`] topics, publishes [`MESSAGES`] to each topic,
/// waits until every subscriber has them all, closes every client, then watches the server's
/// memory come down.
pub(crate) async fn run(
    server: &ServerProcess,
    clients: usize,
) -> anyhow::Result<ChurnMeasurement> {
    let baseline_rss = server.rss_bytes()?;
    let mut errors = Vec::new();
    let subscribers = connect_subscribers(server, clients).await?;
    let mut readers = JoinSet::new();
    for (topic, ws) in subscribers {
        readers.spawn(read_all(ws, topic));
    }
    let mut publishers = Vec::with_capacity(TOPICS.min(clients));
    for topic in 0..TOPICS.min(clients) {
        let mut ws = connect(
            server.addr(),
            server.access(),
            &path(topic),
            "publisher",
            None,
        )
        .await
        .with_context(|| format!("publisher of topic {topic}"))?;
        for sequence in 0..MESSAGES {
            ws.feed(Message::Binary(message(topic, sequence))).await?;
        }
        ws.flush().await?;
        publishers.push(ws);
    }
    let mut done = Vec::with_capacity(clients);
    let delivered = tokio::time::timeout(DELIVERY_TIMEOUT, async {
        while let Some(ended) = readers.join_next().await {
            match ended {
                Ok(Ok(ws)) => done.push(ws),
                Ok(Err(error)) => errors.push(error.to_string()),
                Err(error) => errors.push(format!("subscriber task: {error}")),
            }
        }
    })
    .await;
    if delivered.is_err() {
        errors.push(format!(
            "{} of {clients} subscribers got every message within {DELIVERY_TIMEOUT:?}",
            done.len()
        ));
    }
    let peak_rss = server.rss_bytes()?;
    readers.abort_all();
    let closing = Arc::new(Semaphore::new(CONCURRENT_CONNECTS * 4));
    let mut closes = JoinSet::new();
    for mut ws in done.into_iter().chain(publishers) {
        let closing = Arc::clone(&closing);
        closes.spawn(async move {
            let _permit = closing.acquire_owned().await;
            close(&mut ws).await;
        });
    }
    closes.join_all().await;
    let left = Instant::now();
    let target = baseline_rss + RETURN_MARGIN;
    let mut after_rss = server.rss_bytes()?;
    while after_rss > target && left.elapsed() < RETURN_DEADLINE {
        tokio::time::sleep(POLL).await;
        after_rss = server.rss_bytes()?;
    }
    let return_seconds = (after_rss <= target).then(|| left.elapsed().as_secs_f64());
    if return_seconds.is_none() {
        errors.push(format!(
            "server memory {} MiB, {RETURN_DEADLINE:?} after every client left, is more than \
             {} MiB above its baseline of {} MiB",
            mib(after_rss),
            mib(RETURN_MARGIN),
            mib(baseline_rss)
        ));
    }
    Ok(ChurnMeasurement {
        clients,
        baseline_rss,
        peak_rss,
        after_rss,
        return_seconds,
        errors,
    })
}

/// Mebibytes, rounded, for messages and the table.
pub(crate) fn mib(bytes: u64) -> u64 {
    (bytes + (1 << 19)) >> 20
}

/// Connects `clients` subscribers, subscriber `i` to topic `i % TOPICS`, from source
/// addresses enough for all; returns each with its topic.
async fn connect_subscribers(
    server: &ServerProcess,
    clients: usize,
) -> anyhow::Result<Vec<(usize, Socket)>> {
    let mut connects = idle::connect_subscribers(server, clients, |index| path(index % TOPICS));
    let mut sockets = Vec::with_capacity(clients);
    while let Some(connected) = connects.join_next().await {
        let (index, ws) = connected.context("connect task")??;
        sockets.push((index % TOPICS, ws));
    }
    Ok(sockets)
}

/// Reads until all [`MESSAGES`] of `topic` came, in order; returns the socket to close.
async fn read_all(mut ws: Socket, topic: usize) -> anyhow::Result<Socket> {
    let mut next = 0;
    while next < MESSAGES {
        match ws.next().await {
            Some(Ok(Message::Binary(data))) => {
                anyhow::ensure!(
                    data == message(topic, next),
                    "topic {topic}: message {next} came wrong or out of order"
                );
                next += 1;
            }
            Some(Ok(Message::Close(frame))) => {
                anyhow::bail!("subscriber closed by the server: {frame:?}")
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => anyhow::bail!("subscriber failed: {error}"),
            None => anyhow::bail!("subscriber was closed"),
        }
    }
    Ok(ws)
}

/// The path of topic number `topic`.
fn path(topic: usize) -> String {
    format!("/churn/{topic}")
}

/// Message `sequence` of `topic`: [`PAYLOAD`] bytes that say which they are.
fn message(topic: usize, sequence: usize) -> Bytes {
    let mut payload = vec![(sequence % 251) as u8; PAYLOAD];
    payload[..8].copy_from_slice(&(topic as u64).to_be_bytes());
    payload[8..16].copy_from_slice(&(sequence as u64).to_be_bytes());
    Bytes::from(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_differ_by_topic_and_sequence() {
        assert_eq!(message(3, 7).len(), PAYLOAD);
        assert_ne!(message(3, 7), message(4, 7));
        assert_ne!(message(3, 7), message(3, 8));
        assert_eq!(message(3, 7), message(3, 7));
    }

    #[test]
    fn mib_rounds_to_the_nearest() {
        assert_eq!(mib(0), 0);
        assert_eq!(mib((16 << 20) + (1 << 19) - 1), 16);
        assert_eq!(mib((16 << 20) + (1 << 19)), 17);
    }
}
