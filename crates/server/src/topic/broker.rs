//! A topic in cluster mode: its publishers write to the NATS stream, and its actor is fed
//! from the stream instead of by them.
//!
//! - [`Outlet`]: one per publisher. Each message is sent to the stream; a task awaits the
//!   stream's acks in order and, for a stream-mode publisher, turns them into its acks
//!   (`seq` is the ack's position). At most [`ACKS_IN_FLIGHT`] wait at once: past that the
//!   publisher's socket is not read (pushback). A failed publish or ack ends the publisher.
//! - [`Consumption`]: one per topic per node, started by the topic's first local subscriber
//!   before its 101 (so whatever is published after the 101 reaches it) and ended with the
//!   topic. It reads the topic's subject from the stream (`Start::New`) and queues each
//!   message to the actor with the stream's position and time ([`Stamp`]), so every node
//!   numbers the topic alike.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{OnceCell, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wspubsub_cluster::{BrokerError, Incarnation, PendingAck, Start, Subscription};
use wspubsub_protocol::unix_micros;

use super::{AckCell, Arrival, QueueRoom, Stamp, TopicGone, TopicPublisher};
use crate::cluster::ClusterNode;
use crate::metrics::Metrics;
use crate::position::now_micros;
use crate::retention::TopicHistory;

/// Most publishes of one publisher sent to the stream and not yet acked.
const ACKS_IN_FLIGHT: usize = 256;

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
    /// The topic's closing: the reading stops then.
    pub(super) closing: CancellationToken,
    /// Where the reading task runs (the drain waits for it).
    pub(super) tracker: TaskTracker,
    pub(super) started: OnceCell<()>,
}

impl Consumption {
    /// Completes once the topic reads the stream: at once after the first time.
    pub(crate) async fn ready(&self) -> Result<(), BrokerError> {
        self.started.get_or_try_init(|| self.start()).await?;
        Ok(())
    }

    /// Creates the topic's consumer, then starts the history where the stream stands now
    /// (anything the consumer delivers below that was published before the first 101, and
    /// is skipped) and spawns the task that queues the stream's messages to the actor.
    async fn start(&self) -> Result<(), BrokerError> {
        let subscription = self.node.broker.subscribe(&self.name, Start::New).await?;
        let state = self.node.broker.stream_state().await?;
        let start = self
            .node
            .incarnation
            .position(state.last_sequence.saturating_add(1));
        self.history.skip_to(start, now_micros());
        let inlet = TopicPublisher {
            inbound: self.inbound.upgrade(),
            room: Arc::clone(&self.room),
            metrics: Arc::clone(&self.metrics),
            ack: None,
            outlet: None,
        };
        let reading = Reading {
            subscription,
            inlet,
            incarnation: self.node.incarnation,
            start,
            name: Arc::clone(&self.name),
        };
        self.tracker.spawn(reading.run(self.closing.clone()));
        Ok(())
    }
}

/// The task that moves a topic's messages from the stream into its actor's queue.
struct Reading {
    subscription: Subscription,
    inlet: TopicPublisher,
    incarnation: Incarnation,
    /// The first position this node holds.
    start: u64,
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
            let seq = self.incarnation.position(delivery.sequence);
            if seq < self.start {
                continue;
            }
            let stamp = Stamp {
                seq,
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
