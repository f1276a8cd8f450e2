//! Cluster mode (`--nats-url`): this node's link to NATS JetStream, shared by every topic.
//!
//! At start the node connects (bounded by [`CONNECT_TIMEOUT`], with the `--nats-*`
//! credentials and CA file) and creates or updates the one stream every topic lives in, with
//! its storage and replicas, and the history flags as its limits. Publishers send
//! each message to the stream; a topic with local subscribers reads its subject back from
//! the stream in stream order (`topic::broker`), so every node delivers one order with the
//! same positions: `seq` is the stream sequence offset by the stream's creation time
//! ([`Incarnation`]).

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::watch;
use wspubsub_cluster::{Broker, BrokerError, ConnectConfig, Incarnation, StreamSpec};

use crate::options::Options;

/// How long the start waits for NATS before giving up.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// NATS did not answer within the start's bound (10 s).
    #[error("cannot reach NATS at {urls} within {}s", CONNECT_TIMEOUT.as_secs())]
    Timeout {
        /// The URLs tried.
        urls: String,
    },
    /// NATS refused us, or the stream could not be created.
    #[error("NATS at {urls}: {error}")]
    Broker {
        /// The URLs tried.
        urls: String,
        /// What went wrong. Its text is part of this error's, so it is not also this error's
        /// `source()`: a binary printing the chain would say it twice.
        error: BrokerError,
    },
    /// The stream's creation time gives positions out of range.
    #[error("stream created at an unusable time: {0:?}")]
    Created(std::time::SystemTime),
}

/// Pauses between attempts at something NATS refuses for now: each twice the one before,
/// up to a bound.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Pauses from `first` up to `max`.
    pub(crate) fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { next: first, max }
    }

    /// Sleeps the next pause.
    pub(crate) async fn pause(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }
}

/// The pauses between attempts at a stream that NATS does not give back.
fn stream_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
}

/// This node's connection to the stream, and the incarnation its positions count from.
#[derive(Debug)]
pub(crate) struct ClusterNode {
    /// The NATS connection (it reconnects by itself).
    pub(crate) broker: Broker,
    /// The stream's current incarnation: positions are its sequences offset by it. It
    /// changes when the stream is found recreated after a reconnection.
    incarnation: watch::Sender<Incarnation>,
    /// The stream's shape, to create it again if it is gone after a reconnection.
    spec: StreamSpec,
    /// Why the stream is unusable now, if it is (with NATS connected).
    trouble: Mutex<Option<String>>,
}

impl ClusterNode {
    /// Connects to `urls` with `options`'s credentials and CA file, and ensures the stream
    /// with its storage, replicas and the history flags as limits.
    pub(crate) async fn connect(urls: &str, options: &Options) -> Result<Self, ClusterError> {
        let started = async {
            let broker = Broker::connect(&connect_config(urls, options)).await?;
            let spec = stream_spec(options);
            let mut backoff = stream_backoff();
            loop {
                match broker.ensure_stream(&spec).await {
                    Ok(state) => return Ok::<_, BrokerError>((broker, state)),
                    // A NATS cluster starting with the nodes may not have elected its
                    // JetStream leaders yet: wait for it, within the start's bound.
                    Err(error) if error.is_transient() => {
                        tracing::info!(%error, "the NATS stream is not ready yet; retrying");
                        backoff.pause().await;
                    }
                    Err(error) => return Err(error),
                }
            }
        };
        let (broker, state) = tokio::time::timeout(CONNECT_TIMEOUT, started)
            .await
            .map_err(|_elapsed| ClusterError::Timeout { urls: urls.into() })?
            .map_err(|error| ClusterError::Broker {
                urls: urls.into(),
                error,
            })?;
        let incarnation =
            Incarnation::created_at(state.created).ok_or(ClusterError::Created(state.created))?;
        tracing::info!(
            urls,
            storage = options.nats_storage.as_str(),
            replicas = options.nats_replicas,
            last_sequence = state.last_sequence,
            "cluster mode: NATS stream ready"
        );
        Ok(ClusterNode {
            broker,
            incarnation: watch::Sender::new(incarnation),
            spec: stream_spec(options),
            trouble: Mutex::new(None),
        })
    }

    /// The incarnation positions count from now.
    pub(crate) fn incarnation(&self) -> Incarnation {
        *self.incarnation.borrow()
    }

    /// The most messages the stream keeps of one topic, if it has a bound.
    pub(crate) fn messages_per_topic(&self) -> Option<u64> {
        self.spec.messages_per_topic
    }

    /// Tells of each new incarnation (a stream recreated while NATS was away).
    pub(crate) fn incarnations(&self) -> watch::Receiver<Incarnation> {
        self.incarnation.subscribe()
    }

    /// Why the node cannot serve cluster topics now (`/readyz` says it), if it cannot.
    pub(crate) fn trouble(&self) -> Option<String> {
        if !self.broker.is_connected() {
            return Some("NATS unreachable; reconnecting".into());
        }
        self.trouble
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Starts looking at the stream again after every reconnection to NATS: a memory stream
    /// whose servers restarted is gone, and is created again as a new incarnation.
    pub(crate) fn watch_stream(self: &Arc<Self>) {
        let connections = self.broker.connections();
        tokio::spawn(watch_stream(Arc::downgrade(self), connections));
    }

    /// Ensures the stream exists, retrying while NATS is connected and refuses; notes a
    /// recreated stream as the new incarnation.
    async fn check_stream(&self) {
        let mut backoff = stream_backoff();
        loop {
            let problem = match self.broker.ensure_stream(&self.spec).await {
                Ok(state) => match Incarnation::created_at(state.created) {
                    Some(incarnation) => {
                        if incarnation != self.incarnation() {
                            tracing::warn!(
                                last_sequence = state.last_sequence,
                                "the NATS stream was created again (its servers restarted \
                                 with memory storage): positions continue above the old \
                                 ones, and subscribers of what it lost are closed with 4002"
                            );
                            self.incarnation.send_replace(incarnation);
                        }
                        self.set_trouble(None);
                        return;
                    }
                    None => ClusterError::Created(state.created).to_string(),
                },
                Err(error) => error.to_string(),
            };
            tracing::warn!(%problem, "the NATS stream is unusable");
            self.set_trouble(Some(format!("NATS stream unusable: {problem}")));
            if !self.broker.is_connected() {
                // The next connection looks again.
                return;
            }
            backoff.pause().await;
        }
    }

    fn set_trouble(&self, trouble: Option<String>) {
        *self.trouble.lock().unwrap_or_else(PoisonError::into_inner) = trouble;
    }
}

/// Looks at the stream after each reconnection, for as long as the node lives.
async fn watch_stream(node: Weak<ClusterNode>, mut connections: watch::Receiver<u64>) {
    connections.borrow_and_update();
    while connections.changed().await.is_ok() {
        let Some(node) = node.upgrade() else {
            return;
        };
        node.check_stream().await;
    }
}

/// How to reach NATS: `urls` with `options`'s credentials and CA file.
fn connect_config(urls: &str, options: &Options) -> ConnectConfig {
    ConnectConfig {
        credentials: options.nats_credentials.clone(),
        ca_file: options.nats_ca_file.clone(),
        ..ConnectConfig::new(urls)
    }
}

/// The stream's storage and replicas from their flags, and its limits from the history
/// flags: messages and age per topic, bytes over all topics (JetStream has no per-subject byte
/// limit). With history off the stream still keeps each topic's latest message, as JetStream
/// needs a limit above zero.
fn stream_spec(options: &Options) -> StreamSpec {
    let as_u64 = |value: usize| u64::try_from(value).unwrap_or(u64::MAX);
    StreamSpec {
        messages_per_topic: Some(as_u64(options.history_messages.max(1))),
        total_bytes: Some(as_u64(options.history_total_bytes)),
        max_age: Some(options.history_age),
        storage: options.nats_storage,
        replicas: options.nats_replicas,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use wspubsub_cluster::{Credentials, Storage};

    use super::*;

    #[test]
    fn the_nats_flags_reach_the_connection_and_the_stream() {
        let options = Options {
            nats_credentials: Credentials::Token("t0k".into()),
            nats_ca_file: Some(PathBuf::from("/etc/nats/ca.pem")),
            nats_storage: Storage::File,
            nats_replicas: 3,
            ..Options::default()
        };
        let config = connect_config("nats://a:4222,nats://b:4222", &options);
        assert_eq!(config.urls, "nats://a:4222,nats://b:4222");
        assert_eq!(config.credentials, Credentials::Token("t0k".into()));
        assert_eq!(config.ca_file, options.nats_ca_file);
        let spec = stream_spec(&options);
        assert_eq!((spec.storage, spec.replicas), (Storage::File, 3));
    }

    #[test]
    fn the_history_flags_become_the_stream_limits() {
        let options = Options {
            history_messages: 7,
            history_total_bytes: 1 << 20,
            history_age: Duration::from_secs(30),
            ..Options::default()
        };
        let spec = stream_spec(&options);
        assert_eq!(spec.messages_per_topic, Some(7));
        assert_eq!(spec.total_bytes, Some(1 << 20));
        assert_eq!(spec.max_age, Some(Duration::from_secs(30)));
        assert_eq!(spec.replicas, 1);
        assert_eq!(spec.storage, Storage::Memory);
        let off = stream_spec(&Options {
            history_messages: 0,
            ..Options::default()
        });
        assert_eq!(
            off.messages_per_topic,
            Some(1),
            "history off keeps the latest"
        );
    }
}
