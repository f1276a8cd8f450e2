//! A topic in cluster mode: its publishers write to the NATS stream, and its actor is fed
//! from the stream instead of by them.
//!
//! - [`Outlet`]: one per publisher. Each message is sent to the stream; a task awaits the
//!   stream's acks in order and, for a stream-mode publisher, turns them into its acks
//!   (`seq` is the ack's position). At most [`ACKS_IN_FLIGHT`] wait at once: past that the
//!   publisher's socket is not read (pushback). A failed publish or ack ends the publisher.
//! - [`Consumption`]: one per topic per node, started by the topic's first local subscriber
//!   before its 101 (so whatever is published after the 101 reaches it) and ended with the
//!   topic. It reads the topic's subject from the stream, from the oldest message the stream
//!   holds, and queues each message to the actor with the stream's position and time
//!   ([`Stamp`]), so every node numbers the topic alike. The first subscriber joins once what
//!   the stream held is stored: the node's history of the topic is then the stream's, and a
//!   subscriber resumes on any node where it was.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{OnceCell, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wspubsub_cluster::{BrokerError, Incarnation, PendingAck, Start, Subscription};
use wspubsub_protocol::unix_micros;

use super::{AckCell, Arrival, QueueRoom, Stamp, TopicGone, TopicPublisher};
use crate::cluster::ClusterNode;
use crate::metrics::Metrics;
use crate::retention::TopicHistory;

/// Most publishes of one publisher sent to the stream and not yet acked.
const ACKS_IN_FLIGHT: usize = 256;

/// How long a node may take to load what the stream holds of a topic.
const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a topic could not start reading the stream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadingError {
    /// NATS refused or failed a request.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The topic's history did not arrive within [`LOAD_TIMEOUT`].
    #[error("loading the topic's history from NATS took over {}s", LOAD_TIMEOUT.as_secs())]
    Timeout,
    /// The topic closed while loading.
    #[error("the topic closed while loading its history")]
    Closed,
}

/// A publisher's way into the stream.
#[derive(Debug)]
pub(super) struct Outlet {
    node: Arc<ClusterNode>,
    name: Arc<str>,
    /// Sent publishes, awaited in order by the publisher's ack task.
    pending: mpsc::Sender<PendingAck>,
}

impl Outlet {
    /// An outlet to topic `name`; a stream-mode publisher's acks go to `ack`.
    pub(super) fn new(node: &Arc<ClusterNode>, name: &Arc<str>, ack: Option<AckCell>) -> Self {
        let (pending, acks) = mpsc::channel(ACKS_IN_FLIGHT);
        tokio::spawn(await_acks(acks, ack, node.incarnation, Arc::clone(name)));
        Outlet {
            node: Arc::clone(node),
            name: Arc::clone(name),
            pending,
        }
    }

    /// Sends `message` to the stream, waiting while [`ACKS_IN_FLIGHT`] acks are awaited.
    pub(super) async fn publish(&self, message: Bytes) -> Result<(), TopicGone> {
        let pending = self
            .node
            .broker
            .send_publish(&self.name, message)
            .await
            .map_err(|error| {
                tracing::warn!(topic = %self.name, %error, "publishing to NATS failed");
                TopicGone
            })?;
        // Fails only once the ack task stopped on a failed ack.
        self.pending
            .send(pending)
            .await
            .map_err(|_stopped| TopicGone)
    }
}

/// Awaits a publisher's acks in order and reports them to its ack cell (stream mode); stops
/// at the first failure, which ends the publisher at its next message.
async fn await_acks(
    mut acks: mpsc::Receiver<PendingAck>,
    cell: Option<AckCell>,
    incarnation: Incarnation,
    name: Arc<str>,
) {
    while let Some(pending) = acks.recv().await {
        match pending.sequence().await {
            Ok(sequence) => {
                if let Some(cell) = &cell {
                    cell.send_modify(|acked| {
                        acked.count += 1;
                        acked.seq = incarnation.position(sequence);
                    });
                }
            }
            Err(error) => {
                tracing::warn!(topic = %name, %error, "NATS did not ack a publish");
                return;
            }
        }
    }
}

/// A topic's reading of the stream on this node, started once, by its first subscriber.
#[derive(Debug)]
pub(crate) struct Consumption {
    pub(super) node: Arc<ClusterNode>,
    pub(super) name: Arc<str>,
    /// The actor's queue (weak: the reading task holds the only strong sender).
    pub(super) inbound: mpsc::WeakSender<Arrival>,
    pub(super) room: Arc<QueueRoom>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) history: Arc<TopicHistory>,
    /// The seq after the newest message the actor stored.
    pub(super) stored: watch::Receiver<u64>,
    /// The topic's closing: the reading stops then.
    pub(super) closing: CancellationToken,
    /// Where the reading task runs (the drain waits for it).
    pub(super) tracker: TaskTracker,
    pub(super) started: OnceCell<()>,
}

impl Consumption {
    /// Completes once the topic reads the stream and holds what the stream held of it: at
    /// once after the first time.
    pub(crate) async fn ready(&self) -> Result<(), ReadingError> {
        self.started.get_or_try_init(|| self.start()).await?;
        Ok(())
    }

    /// Starts reading the topic from the oldest message the stream holds, and waits until
    /// the actor stored everything up to the topic's newest message of the moment; then
    /// tells the history what the stream had evicted and where the stream stood.
    async fn start(&self) -> Result<(), ReadingError> {
        let broker = &self.node.broker;
        let incarnation = self.node.incarnation;
        // The stream's end first: every message of the topic up to it is at most the
        // topic's newest, looked up next.
        let before = broker.stream_state().await?;
        let newest = broker.last_sequence_of(&self.name).await?;
        let subscription = broker.subscribe(&self.name, Start::Earliest).await?;
        let stop = self.closing.child_token();
        let reading = Reading {
            subscription,
            inlet: TopicPublisher {
                inbound: self.inbound.upgrade(),
                room: Arc::clone(&self.room),
                metrics: Arc::clone(&self.metrics),
                ack: None,
                outlet: None,
            },
            incarnation,
            name: Arc::clone(&self.name),
        };
        self.tracker.spawn(reading.run(stop.clone()));
        let loaded = async {
            if let Some(newest) = newest {
                let target = incarnation.position(newest.saturating_add(1));
                let mut stored = self.stored.clone();
                tokio::time::timeout(LOAD_TIMEOUT, stored.wait_for(|&next| next >= target))
                    .await
                    .map_err(|_elapsed| ReadingError::Timeout)?
                    .map_err(|_closed| ReadingError::Closed)?;
            }
            // Whatever the stream evicted by now is below its first sequence.
            Ok::<_, ReadingError>(broker.stream_state().await?)
        };
        let after = match loaded.await {
            Ok(after) => after,
            Err(error) => {
                stop.cancel();
                return Err(error);
            }
        };
        let (evicted_below, evicted_until) = if after.first_sequence > 1 {
            let first_time = unix_micros(after.first_time).unwrap_or(0);
            (
                incarnation.position(after.first_sequence),
                first_time.saturating_sub(1),
            )
        } else {
            (0, 0)
        };
        self.history.loaded(
            evicted_below,
            evicted_until,
            incarnation.position(before.last_sequence.saturating_add(1)),
        );
        Ok(())
    }
}

/// The task that moves a topic's messages from the stream into its actor's queue.
struct Reading {
    subscription: Subscription,
    inlet: TopicPublisher,
    incarnation: Incarnation,
    name: Arc<str>,
}

impl Reading {
    async fn run(mut self, closing: CancellationToken) {
        loop {
            let next = tokio::select! {
                biased;
                () = closing.cancelled() => return,
                next = self.subscription.next() => next,
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => {
                    tracing::warn!(topic = %self.name, %error, "reading the topic from NATS failed; its subscribers on this node get no more");
                    return;
                }
                None => return,
            };
            let stamp = Stamp {
                seq: self.incarnation.position(delivery.sequence),
                time: unix_micros(delivery.time).unwrap_or(0),
            };
            let queued = self
                .inlet
                .queue(delivery.payload, Instant::now(), Some(stamp))
                .await;
            if queued.is_err() {
                return;
            }
        }
    }
}
