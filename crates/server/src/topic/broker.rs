//! A topic in cluster mode: its publishers write to the NATS stream, and its actor is fed
//! from the stream instead of by them.
//!
//! - [`Outlet`]: one per publisher. Each message is sent to the stream; a task awaits the
//!   stream's acks in order and, for a stream-mode publisher, turns them into its acks
//!   (`seq` is the ack's position). At most [`ACKS_IN_FLIGHT`] wait at once: past that the
//!   publisher's socket is not read (pushback). A message the stream surely did not take
//!   (no leader: an election) is sent again in order for a while; any other failed publish
//!   or ack ends the publisher.
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
use crate::cluster::{Backoff, ClusterNode};
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
    /// The topic closed, or its reading found messages lost, while loading.
    #[error("the topic's reading ended while loading its history")]
    Closed,
}

/// A publisher's way into the stream.
#[derive(Debug)]
pub(super) struct Outlet {
    node: Arc<ClusterNode>,
    name: Arc<str>,
    /// Sent publishes, awaited in order by the ack task.
    pending: mpsc::Sender<Sent>,
    /// Held by the ack task while it sends again what the stream did not take, so that
    /// nothing newer goes out meanwhile; held by [`Outlet::publish`] from sending a message
    /// to queuing its ack, so that the ack task sees every message sent.
    gate: Arc<tokio::sync::Mutex<()>>,
}

/// A message sent to the stream and not yet acked.
struct Sent {
    ack: PendingAck,
    /// Kept to send it again if the stream did not take it.
    message: Bytes,
    at: Instant,
}

impl Outlet {
    /// An outlet to topic `name` whose ack task runs on `tracker` (the drain waits for the
    /// acks of what was sent); a stream-mode publisher's acks go to `ack`.
    pub(super) fn new(
        node: &Arc<ClusterNode>,
        name: &Arc<str>,
        ack: Option<AckCell>,
        tracker: &TaskTracker,
        metrics: &Arc<Metrics>,
    ) -> Self {
        let (pending, acks) = mpsc::channel(ACKS_IN_FLIGHT);
        let gate = Arc::default();
        let acking = Acking {
            node: Arc::clone(node),
            cell: ack,
            name: Arc::clone(name),
            metrics: Arc::clone(metrics),
            gate: Arc::clone(&gate),
        };
        tracker.spawn(acking.run(acks));
        Outlet {
            node: Arc::clone(node),
            name: Arc::clone(name),
            pending,
            gate,
        }
    }

    /// Sends `message` to the stream, waiting while [`ACKS_IN_FLIGHT`] acks are awaited or
    /// while the ack task sends again what the stream did not take.
    pub(super) async fn publish(&self, message: Bytes) -> Result<(), TopicGone> {
        // Room for the ack first: the gate is never held while waiting for the ack task,
        // which may need the gate itself to go on. Fails only once the ack task stopped on a
        // failed ack.
        let room = self.pending.reserve().await.map_err(|_stopped| TopicGone)?;
        let _sending = self.gate.lock().await;
        let at = Instant::now();
        let ack = self
            .node
            .broker
            .send_publish(&self.name, message.clone())
            .await
            .map_err(|error| {
                tracing::warn!(topic = %self.name, %error, "publishing to NATS failed");
                TopicGone
            })?;
        room.send(Sent { ack, message, at });
        Ok(())
    }
}

/// A publisher's ack task: awaits its acks in order, counts their latency and reports them
/// to its ack cell (stream mode). A message the stream surely did not take (no server led
/// it: an election) is sent again, in order with everything sent after it, for up to
/// [`HOLD`]; any other failure stops the task, which ends the publisher (1011) at its next
/// message.
struct Acking {
    node: Arc<ClusterNode>,
    cell: Option<AckCell>,
    name: Arc<str>,
    metrics: Arc<Metrics>,
    gate: Arc<tokio::sync::Mutex<()>>,
}

/// How long a publisher is held while the stream takes no message (no leader), before it
/// is closed with 1011.
const HOLD: Duration = Duration::from_secs(10);

impl Acking {
    async fn run(self, mut acks: mpsc::Receiver<Sent>) {
        while let Some(sent) = acks.recv().await {
            let message = sent.message.clone();
            match sent.ack.sequence().await {
                Ok(sequence) => self.acked(sequence, sent.at),
                Err(error) if error.not_stored() => {
                    if self.send_again(message, &mut acks).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(topic = %self.name, %error, "NATS did not ack a publish");
                    return;
                }
            }
        }
    }

    fn acked(&self, sequence: u64, at: Instant) {
        self.metrics.nats.acked(at.elapsed());
        if let Some(cell) = &self.cell {
            let seq = self.node.incarnation().position(sequence);
            cell.send_modify(|acked| {
                acked.count += 1;
                acked.seq = seq;
            });
        }
    }

    /// Holds the publisher, then sends `first` and every message sent after it again, in
    /// order, each once the one before is stored. Fails when one sent after `first` was
    /// stored before it (the order is lost), or the stream takes nothing for [`HOLD`].
    async fn send_again(&self, first: Bytes, acks: &mut mpsc::Receiver<Sent>) -> Result<(), ()> {
        let _holding = self.gate.lock().await;
        let mut again = vec![first];
        // Under the gate, every message sent is queued here.
        while let Ok(sent) = acks.try_recv() {
            let message = sent.message.clone();
            match sent.ack.sequence().await {
                Err(error) if error.not_stored() => again.push(message),
                Ok(_) => {
                    tracing::warn!(topic = %self.name, "NATS stored a message before an earlier one it refused: the publisher's order is lost");
                    return Err(());
                }
                Err(error) => {
                    tracing::warn!(topic = %self.name, %error, "NATS did not ack a publish");
                    return Err(());
                }
            }
        }
        let deadline = Instant::now() + HOLD;
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(500));
        for message in again {
            loop {
                let at = Instant::now();
                match self.node.broker.publish(&self.name, message.clone()).await {
                    Ok(sequence) => {
                        self.acked(sequence, at);
                        break;
                    }
                    Err(error) if error.not_stored() && Instant::now() < deadline => {
                        backoff.pause().await;
                    }
                    Err(error) => {
                        tracing::warn!(topic = %self.name, %error, "NATS took no message for the publisher's hold");
                        return Err(());
                    }
                }
            }
        }
        Ok(())
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
    /// Cancelled when the reading found messages lost: the topic's subscribers are closed
    /// with 4002, and the hub gives later clients a fresh topic.
    pub(super) lost: CancellationToken,
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
        let incarnation = self.node.incarnation();
        // The stream's end first: every message of the topic up to it is at most the
        // topic's newest, looked up next.
        let before = broker.stream_state().await?;
        let newest = broker.last_sequence_of(&self.name).await?;
        let subscription = broker.subscribe(&self.name, Start::Earliest).await?;
        let stop = self.closing.child_token();
        let reading = Reading {
            node: Arc::clone(&self.node),
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
            last: None,
            loading_through: newest.unwrap_or(0),
            lag: 0,
            metrics: Arc::clone(&self.metrics),
            lost: self.lost.clone(),
        };
        self.tracker.spawn(reading.run(stop.clone()));
        let loaded = async {
            if let Some(newest) = newest {
                let target = incarnation.position(newest.saturating_add(1));
                let mut stored = self.stored.clone();
                let caught_up = async {
                    tokio::select! {
                        waited = stored.wait_for(|&next| next >= target) => waited.is_ok(),
                        () = self.lost.cancelled() => false,
                    }
                };
                let caught_up = tokio::time::timeout(LOAD_TIMEOUT, caught_up)
                    .await
                    .map_err(|_elapsed| ReadingError::Timeout)?;
                if !caught_up {
                    return Err(ReadingError::Closed);
                }
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

/// Longest pause between two attempts to read a topic again after its reading failed.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Why a topic's reading found messages lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum Loss {
    /// The stream was created again (its servers restarted with memory storage).
    #[error("the stream was created again and lost what it held")]
    Recreated,
    /// The stream evicted messages after the last one read before they could be read.
    #[error("the stream evicted messages the node had not read yet")]
    Evicted,
    /// After loading, the reading fell as far behind as the stream keeps of a topic: the
    /// stream may drop messages before they are read.
    #[error("the reading fell {pending} messages behind, as many as the stream keeps")]
    Behind {
        /// Messages of the topic in the stream not yet read.
        pending: u64,
    },
}

/// The task that moves a topic's messages from the stream into its actor's queue. When
/// NATS fails it, it reads again from the message after the last one read; when messages
/// it had not read are gone, it ends and the topic's subscribers on this node are closed
/// with 4002 ([`Consumption`]'s `lost`).
struct Reading {
    node: Arc<ClusterNode>,
    subscription: Subscription,
    inlet: TopicPublisher,
    incarnation: Incarnation,
    name: Arc<str>,
    /// The stream sequence of the newest message read, once one was.
    last: Option<u64>,
    /// The stream sequence of the topic's newest message when loading began: up to it the
    /// reading is loading history, and is as far behind as the history is long.
    loading_through: u64,
    /// How far behind the reading was at its last delivery (for the lag gauge).
    lag: u64,
    metrics: Arc<Metrics>,
    lost: CancellationToken,
}

impl Reading {
    async fn run(mut self, closing: CancellationToken) {
        let ended = self.read(&closing).await;
        self.metrics.nats.lag(self.lag, 0);
        if let Err(loss) = ended {
            tracing::warn!(
                topic = %self.name,
                %loss,
                "messages of the topic were lost by NATS; its subscribers on this node are closed with 4002"
            );
            self.metrics.nats.lost();
            self.lost.cancel();
        }
    }

    /// Reads until the topic closes (`Ok`) or messages are lost.
    async fn read(&mut self, closing: &CancellationToken) -> Result<(), Loss> {
        let mut incarnations = self.node.incarnations();
        let per_topic = self.node.messages_per_topic();
        loop {
            let next = tokio::select! {
                biased;
                () = closing.cancelled() => return Ok(()),
                changed = incarnations.changed() => match changed {
                    Ok(()) if *incarnations.borrow_and_update() != self.incarnation => {
                        return Err(Loss::Recreated);
                    }
                    Ok(()) => continue,
                    // The node is going away.
                    Err(_gone) => return Ok(()),
                },
                next = self.subscription.next() => next,
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => {
                    tracing::warn!(topic = %self.name, %error, "reading the topic from NATS failed; reading it again");
                    if !self.read_again(closing).await? {
                        return Ok(());
                    }
                    continue;
                }
                None => {
                    if !self.read_again(closing).await? {
                        return Ok(());
                    }
                    continue;
                }
            };
            // This message and those after it fill all the stream keeps of the topic: one
            // more publish drops the oldest, unread.
            if let Some(limit) = per_topic
                && delivery.sequence > self.loading_through
                && delivery.pending > 0
                && delivery.pending + 1 >= limit
            {
                return Err(Loss::Behind {
                    pending: delivery.pending,
                });
            }
            self.metrics.nats.lag(self.lag, delivery.pending);
            self.lag = delivery.pending;
            self.last = Some(delivery.sequence);
            let stamp = Stamp {
                seq: self.incarnation.position(delivery.sequence),
                time: unix_micros(delivery.time).unwrap_or(0),
            };
            let queued = self
                .inlet
                .queue(delivery.payload, Instant::now(), Some(stamp))
                .await;
            if queued.is_err() {
                return Ok(());
            }
        }
    }

    /// Subscribes again from the message after the last one read, retrying with backoff
    /// while NATS refuses; says whether it did (`false`: the topic closed meanwhile). A
    /// stream that no longer holds that message is a loss.
    async fn read_again(&mut self, closing: &CancellationToken) -> Result<bool, Loss> {
        let mut backoff = Backoff::new(Duration::from_millis(100), RETRY_MAX);
        loop {
            let attempt = async {
                let broker = &self.node.broker;
                let state = broker.stream_state().await?;
                if Incarnation::created_at(state.created) != Some(self.incarnation) {
                    return Ok(Err(Loss::Recreated));
                }
                let start = match self.last {
                    Some(last) if state.first_sequence > last + 1 => {
                        return Ok(Err(Loss::Evicted));
                    }
                    Some(last) => Start::Sequence(last + 1),
                    None => Start::Earliest,
                };
                broker.subscribe(&self.name, start).await.map(Ok)
            };
            let attempted: Result<Result<Subscription, Loss>, BrokerError> = tokio::select! {
                biased;
                () = closing.cancelled() => return Ok(false),
                attempted = attempt => attempted,
            };
            match attempted {
                Ok(Ok(subscription)) => {
                    self.subscription = subscription;
                    return Ok(true);
                }
                Ok(Err(loss)) => return Err(loss),
                Err(error) => {
                    tracing::warn!(topic = %self.name, %error, "reading the topic from NATS again failed; retrying");
                }
            }
            tokio::select! {
                biased;
                () = closing.cancelled() => return Ok(false),
                () = backoff.pause() => {}
            }
        }
    }
}
