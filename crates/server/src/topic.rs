//! The topic actor: one task per topic, the single owner of the topic's message order.
//!
//! Publishers hand messages to the actor over a queue bounded in messages and in bytes (so they
//! are pushed back when it is full); the actor encodes each batch of them once into frames,
//! appends those to the topic's [`Backlog`] and wakes the subscribers, each of which reads the
//! backlog from its own cursor. What happens when the slowest subscriber's unread messages
//! reach the backlog's bound is the [`SlowSubscriber`] policy: with `Close` the actor never
//! waits on a subscriber (the backlog drops the oldest chunk and the subscriber that still
//! held it is closed); with `Hold` the actor waits ([`hold`]) until the subscribers make room,
//! and its publishers wait behind it.
//!
//! A topic's subscribers and publishers may each be raw or in stream mode (`wspubsub.v2`):
//! while it has stream-mode subscribers the actor also envelops every chunk (once, for all of
//! them), and it acks each stream-mode publisher's messages once they are appended ([`ack`]).
//!
//! The actor ends once the topic is closing and its publishers are gone, after moving
//! everything they queued into the backlog and marking it finished. A topic closes when its
//! last client leaves, or when a subscriber sees the server shut down ([`TopicFeed::drain`]):
//! publishers stop reading then, so every message the server read reaches the subscribers
//! before they are closed.

mod ack;
mod broker;
mod forms;
mod hold;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::ClusterNode;
use crate::metrics::{HeldReason, Metrics};
use crate::options::{Options, SlowSubscriber};
use crate::position::{SEQ_CLOCK, Sequence, now_micros};
use crate::retention::{HistoryGap, HistoryPool, JoinPosition, Replay, TopicHistory};
use crate::stats::TopicCounters;
pub(crate) use ack::Acked;
use ack::{AckCell, Pending};
pub(crate) use broker::Consumption;
use broker::Outlet;
use forms::FormReaders;
use hold::Hold;
use wspubsub_fanout::{
    Backlog, Cursor, Form, FrameQueue, Lagged, Record, RecordBuilder, text_frame,
};
use wspubsub_protocol::{Control, Start};

/// Most messages the actor moves into the backlog per wake-up; batching keeps the wake-ups
/// of subscribers (one per batch, not per message) cheap under load.
const ACTOR_BATCH: usize = 256;

/// Target size of one encoded chunk: large enough that a burst of small messages travels as
/// one buffer, small enough that a chunk is a modest unit of backlog accounting.
const CHUNK_BYTES: usize = 64 << 10;

/// The hub's handle to a running topic actor; dropping it closes the topic.
#[derive(Debug)]
pub(crate) struct Topic {
    /// Makes publishers' senders; the actor holds a strong one until the topic closes, so the
    /// queue ends exactly when the topic is closing and its last publisher is gone.
    inbound: mpsc::WeakSender<Arrival>,
    /// The byte bound of the inbound queue.
    room: Arc<QueueRoom>,
    /// Written by the actor (appends) and by subscribers joining and leaving.
    backlog: Arc<watch::Sender<Backlog>>,
    /// Cancelled when the topic stops waiting for new publishers.
    closing: CancellationToken,
    /// Wakes the actor when it waits for subscribers to make room.
    hold: Arc<Hold>,
    /// Where publishers' waits are counted.
    metrics: Arc<Metrics>,
    /// The messages kept after delivery; appended to under the backlog's lock.
    history: Arc<TopicHistory>,
    /// The topic's name, for stream-mode control messages.
    name: Arc<str>,
    /// Its readers by form: the actor builds every form some reader takes.
    readers: Arc<FormReaders>,
    /// In cluster mode, the topic's reading of the stream (its publishers write to it).
    cluster: Option<Arc<Consumption>>,
    /// What the actor took, for the admin API.
    counters: Arc<TopicCounters>,
}

/// A message on its way through the topic's inbound queue.
#[derive(Debug)]
struct Arrival {
    message: Bytes,
    /// When the publisher's connection read it: the start of its publish-to-write latency.
    at: Instant,
    /// Where its publisher hears that it is stored (stream mode only).
    ack: Option<AckCell>,
    /// Its position and time in the cluster's stream (cluster mode only).
    stamp: Option<Stamp>,
}

/// A message's position and time (unix µs) as the cluster's stream gave them.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    seq: u64,
    time: u64,
}

/// Where a topic's positions come from, chosen when it is created.
#[derive(Debug)]
enum Numbering {
    /// This process numbers the topic's messages (plain mode).
    Clock(Sequence),
    /// The cluster's stream numbers them ([`Stamp`]); keeps times from going back.
    Stream {
        /// The time of the newest message taken.
        last_time: u64,
        /// The seq after the newest message taken.
        next_seq: u64,
        /// The seq after the newest message stored (appended to backlog and history): the
        /// topic's loading from the stream waits on it.
        stored: watch::Sender<u64>,
    },
}

/// The byte bound of a topic's inbound queue: a semaphore of bytes, taken by publishers as
/// they queue a message and given back by the actor per batch it takes out.
#[derive(Debug)]
struct QueueRoom {
    bytes: Semaphore,
    /// The semaphore's size: one message never needs more.
    capacity: usize,
    /// Messages publishers queued that the actor has not yet stored (appended to the backlog
    /// and history): while there are any, a topic whose clients all left is not yet done.
    unstored: AtomicUsize,
    /// Told when `unstored` drops to zero ([`Storing::done`]).
    all_stored: Notify,
}

impl QueueRoom {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        QueueRoom {
            bytes: Semaphore::new(capacity),
            capacity,
            unstored: AtomicUsize::new(0),
            all_stored: Notify::new(),
        }
    }

    /// `count` queued messages are stored (or will never be: the topic is gone): a waiting
    /// [`Storing::done`] is told once none is left. `notify_one` costs an atomic when nobody
    /// waits, and keeps the signal for a waiter that is about to wait.
    fn settled(&self, count: usize) {
        if self.unstored.fetch_sub(count, Ordering::SeqCst) == count {
            self.all_stored.notify_one();
        }
    }

    /// The permits a message of `len` bytes takes (so that even the largest fits).
    fn permits(&self, len: usize) -> u32 {
        u32::try_from(len.min(self.capacity)).unwrap_or(u32::MAX)
    }

    /// Takes the room of a message of `len` bytes if it fits now.
    fn try_take(&self, len: usize) -> bool {
        self.bytes
            .try_acquire_many(self.permits(len))
            .map(tokio::sync::SemaphorePermit::forget)
            .is_ok()
    }

    /// Waits until a message of `len` bytes fits, and takes its room (the actor gives it back
    /// when it takes the message out).
    async fn take(&self, len: usize) {
        // Only closing a semaphore makes acquiring fail, and this one is never closed.
        if let Ok(permit) = self.bytes.acquire_many(self.permits(len)).await {
            permit.forget();
        }
    }
}

impl Topic {
    /// Starts the actor of topic `name` on `tracker`, a new incarnation numbered above any
    /// before it, keeping its history in `pool`. In cluster mode (`cluster`) the stream
    /// numbers its messages, and its first subscriber loads its history from the stream.
    pub(crate) fn spawn(
        name: Arc<str>,
        options: &Options,
        tracker: &TaskTracker,
        metrics: &Arc<Metrics>,
        pool: &Arc<HistoryPool>,
        cluster: Option<&Arc<ClusterNode>>,
    ) -> Topic {
        let (numbering, history, stored) = match cluster {
            None => {
                let sequence = SEQ_CLOCK.incarnation(now_micros());
                let history = pool.open(sequence.next());
                (Numbering::Clock(sequence), history, None)
            }
            Some(node) => {
                let (stored, stored_signal) = watch::channel(0);
                let numbering = Numbering::Stream {
                    last_time: 0,
                    next_seq: 0,
                    stored,
                };
                let history = pool.open(node.incarnation().position(1));
                (numbering, history, Some(stored_signal))
            }
        };
        let (keepalive, receiver) = mpsc::channel(options.topic_queue);
        let backlog = Backlog::new(
            options.subscriber_queue_messages,
            options.subscriber_queue_bytes,
        );
        let room = Arc::new(QueueRoom::new(options.topic_queue_bytes));
        let closing = CancellationToken::new();
        let cluster = cluster.zip(stored).map(|(node, stored)| {
            Arc::new(Consumption {
                stored,
                node: Arc::clone(node),
                name: Arc::clone(&name),
                inbound: keepalive.downgrade(),
                room: Arc::clone(&room),
                metrics: Arc::clone(metrics),
                history: Arc::clone(&history),
                closing: closing.clone(),
                lost: CancellationToken::new(),
                tracker: tracker.clone(),
                started: tokio::sync::OnceCell::new(),
            })
        });
        let topic = Topic {
            inbound: keepalive.downgrade(),
            room,
            backlog: Arc::new(watch::Sender::new(backlog)),
            closing,
            hold: Arc::default(),
            metrics: Arc::clone(metrics),
            history,
            name: Arc::clone(&name),
            readers: Arc::default(),
            cluster,
            counters: Arc::default(),
        };
        tracker.spawn(run(
            name,
            Inbound {
                receiver,
                keepalive: Some(keepalive),
                room: Arc::clone(&topic.room),
            },
            topic.closing.clone(),
            Outbound {
                backlog: Arc::clone(&topic.backlog),
                policy: options.slow_subscriber,
                hold: Arc::clone(&topic.hold),
                metrics: Arc::clone(metrics),
                history: Arc::clone(&topic.history),
                readers: Arc::clone(&topic.readers),
                name: Arc::clone(&topic.name),
                counters: Arc::clone(&topic.counters),
            },
            numbering,
        ));
        topic
    }

    /// A way in for a new publisher; one in stream mode ([`Form::Enveloped`]) hears of its
    /// messages being stored ([`TopicPublisher::acks`]).
    /// In cluster mode its messages go to the stream, and its acks are the stream's.
    pub(crate) fn publisher(&self, form: Form) -> TopicPublisher {
        let ack: Option<AckCell> =
            (form == Form::Enveloped).then(|| Arc::new(watch::Sender::new(Acked::default())));
        let outlet = self.cluster.as_ref().map(|cluster| {
            Outlet::new(
                &cluster.node,
                &self.name,
                ack.clone(),
                &cluster.tracker,
                &self.metrics,
            )
        });
        TopicPublisher {
            // A cluster-mode publisher never queues to the actor: it must not keep it alive.
            inbound: outlet.is_none().then(|| self.inbound.upgrade()).flatten(),
            room: Arc::clone(&self.room),
            metrics: Arc::clone(&self.metrics),
            ack,
            outlet,
        }
    }

    /// A way out for a new subscriber starting at `start`, taking frames in `form`: it
    /// replays what history has from there, then gets every message appended from now on
    /// (both taken under the backlog's lock, so there is neither a gap nor a duplicate
    /// between them). Refused when history does not cover `start` and the subscriber did not
    /// accept gaps. A stream-mode subscriber gets its `subscribed` frame (and its `gap`
    /// frame, if any) before everything else.
    pub(crate) fn subscriber(&self, start: Start, form: Form) -> Result<TopicFeed, HistoryGap> {
        let mut joined = None;
        // Joining changes no message: nobody needs waking.
        self.backlog.send_if_modified(|backlog| {
            joined = Some(self.history.join(start, form, &self.name).map(|joined| {
                // Under the backlog's lock: every chunk appended after this join is built in
                // this form.
                self.readers.joined(form);
                (joined, backlog.join_as(form))
            }));
            false
        });
        let (joined, cursor) = joined.expect("send_if_modified always runs its closure")?;
        let mut replay = joined.replay;
        if form != Form::Raw {
            announce(&mut replay, &self.name, &joined.position);
        }
        Ok(TopicFeed {
            updates: self.backlog.subscribe(),
            backlog: Arc::clone(&self.backlog),
            cursor,
            closing: self.closing.clone(),
            hold: Arc::clone(&self.hold),
            replay,
            readers: Arc::clone(&self.readers),
            form,
            lost: self.cluster.as_ref().map(|cluster| cluster.lost.clone()),
        })
    }

    /// Cluster mode: whether the topic's reading found messages lost; such a topic takes
    /// no new clients (the hub makes a fresh one).
    pub(crate) fn is_lost(&self) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|cluster| cluster.lost.is_cancelled())
    }

    /// In cluster mode, the topic's reading of the stream (started by its first subscriber).
    pub(crate) fn reading(&self) -> Option<Arc<Consumption>> {
        self.cluster.clone()
    }

    /// The topic's history.
    pub(crate) fn history(&self) -> &Arc<TopicHistory> {
        &self.history
    }

    /// What the topic took so far.
    pub(crate) fn counters(&self) -> &Arc<TopicCounters> {
        &self.counters
    }

    /// Whether messages publishers queued are still on their way into the backlog and
    /// history (a publisher that just left may have sent its last ones a moment ago).
    pub(crate) fn storing(&self) -> bool {
        self.room.unstored.load(Ordering::SeqCst) > 0
    }

    /// A way to wait until [`Self::storing`] is over, without holding the topic.
    pub(crate) fn storing_signal(&self) -> Storing {
        Storing(Arc::clone(&self.room))
    }
}

/// Waits for the messages a topic's publishers queued to be stored (see [`Topic::storing`]).
#[derive(Debug)]
pub(crate) struct Storing(Arc<QueueRoom>);

impl Storing {
    /// Completes once no queued message is left unstored (at once if none is).
    pub(crate) async fn done(&self) {
        // A notification sent between the load and the wait is kept for the wait.
        while self.0.unstored.load(Ordering::SeqCst) > 0 {
            self.0.all_stored.notified().await;
        }
    }
}

/// Puts a stream-mode subscriber's `subscribed` frame, and its `gap` frame if it has one,
/// before everything it replays.
fn announce(replay: &mut Replay, topic: &str, position: &JoinPosition) {
    if let Some(gap) = position.gap {
        let notice = Control::Gap {
            topic: topic.to_owned(),
            from: gap.asked,
            to: position.from,
            reason: gap.reason.as_str().to_owned(),
        };
        replay.prepend(text_frame(&notice.to_json()));
    }
    let subscribed = Control::Subscribed {
        topic: topic.to_owned(),
        from: position.from,
        head: position.head,
        earliest: position.earliest,
    };
    replay.prepend(text_frame(&subscribed.to_json()));
}

impl Drop for Topic {
    fn drop(&mut self) {
        self.closing.cancel();
    }
}

/// The actor's side of the inbound queue.
struct Inbound {
    receiver: mpsc::Receiver<Arrival>,
    /// Keeps the queue open for publishers yet to come, until the topic closes.
    keepalive: Option<mpsc::Sender<Arrival>>,
    room: Arc<QueueRoom>,
}

/// The actor's side of the backlog and of the history.
struct Outbound {
    backlog: Arc<watch::Sender<Backlog>>,
    /// Whether a full backlog holds the actor or cuts the subscriber.
    policy: SlowSubscriber,
    /// Where a held actor waits for room.
    hold: Arc<Hold>,
    /// Where the actor's waits are counted.
    metrics: Arc<Metrics>,
    /// The messages kept after delivery; appended to under the backlog's lock.
    history: Arc<TopicHistory>,
    /// Its readers by form: every form some reader takes is built for each chunk.
    readers: Arc<FormReaders>,
    /// The topic's name, which named envelopes carry.
    name: Arc<str>,
    /// Where the actor counts what it takes.
    counters: Arc<TopicCounters>,
}

impl Outbound {
    /// Appends `records` (all of them, in order), taken at `time` (unix µs), to the backlog
    /// and the history, as the policy says, and acks what it appended as it goes (`acks`).
    async fn append(&self, records: &mut VecDeque<Record>, time: u64, acks: &mut Pending) {
        match self.policy {
            SlowSubscriber::Close => {
                self.try_append(records, time, Room::Make, acks);
            }
            SlowSubscriber::Hold => {
                let appended = || self.try_append(records, time, Room::Wait, acks);
                if let Some(waited) = self.hold.append(&self.backlog, appended).await {
                    self.metrics.held(HeldReason::SubscriberBacklog, waited);
                }
            }
        }
        self.history.enforce_total();
    }

    /// Moves the records that fit (all of them with [`Room::Make`]) into the backlog and,
    /// under the same lock, into the history, so that a joining subscriber finds each record
    /// in exactly one of its replay and its backlog cursor; says whether all did. Wakes the
    /// subscribers only if it appended something, and acks what it appended at once, not
    /// when the rest of the batch finds room.
    fn try_append(
        &self,
        records: &mut VecDeque<Record>,
        time: u64,
        room: Room,
        acks: &mut Pending,
    ) -> bool {
        self.backlog.send_if_modified(|backlog| {
            let mut appended = false;
            let fitting = std::iter::from_fn(|| {
                let mut record = records.pop_front()?;
                // Under the lock readers join under: any that will read this chunk is
                // counted. Usually built already, outside the lock.
                self.readers.build(&mut record, &self.name);
                let chunk = record.chunk.clone();
                let pushed = match room {
                    Room::Make => {
                        backlog.push(chunk);
                        true
                    }
                    Room::Wait => backlog.try_push(chunk).is_ok(),
                };
                if pushed {
                    appended = true;
                    Some(record)
                } else {
                    records.push_front(record);
                    None
                }
            });
            self.history.append(fitting, time);
            appended
        });
        acks.report_below(records.front().map_or(u64::MAX, |record| record.first_seq));
        records.is_empty()
    }
}

/// How an append finds room in a full backlog.
#[derive(Debug, Clone, Copy)]
enum Room {
    /// Drop the oldest chunks (their laggard readers are closed): `--slow-subscriber close`.
    Make,
    /// Append only what fits: `--slow-subscriber hold`.
    Wait,
}

/// The actor's loop: move queued messages into the backlog and history, batch by batch, each
/// message numbered and timed, until the topic is closing and every publisher is gone; then
/// mark the backlog finished.
async fn run(
    name: Arc<str>,
    mut inbound: Inbound,
    closing: CancellationToken,
    outbound: Outbound,
    mut numbering: Numbering,
) {
    tracing::debug!(topic = %name, "topic started");
    let mut batch = Vec::with_capacity(ACTOR_BATCH);
    let mut records: VecDeque<Record> = VecDeque::new();
    let mut builder = RecordBuilder::new(CHUNK_BYTES);
    let mut acks = Pending::default();
    loop {
        let received = tokio::select! {
            biased;
            () = closing.cancelled(), if inbound.keepalive.is_some() => {
                inbound.keepalive = None;
                continue;
            }
            received = inbound.receiver.recv_many(&mut batch, ACTOR_BATCH) => received,
        };
        if received == 0 {
            break;
        }
        let mut taken: usize = 0;
        // What this batch adds to the topic: (messages, payload bytes).
        let mut took = (0, 0);
        // Encode outside the backlog's lock; subscribers only wait for the appends.
        let time = match &mut numbering {
            Numbering::Clock(sequence) => {
                // Number the batch: the one place seqs are assigned.
                let (mut seq, time) = sequence.take(batch.len() as u64, now_micros());
                for arrival in batch.drain(..) {
                    taken += inbound.room.permits(arrival.message.len()) as usize;
                    if let Some(cell) = &arrival.ack {
                        acks.note(cell, seq);
                    }
                    took = (took.0 + 1, took.1 + arrival.message.len());
                    records.extend(builder.push(&arrival.message, arrival.at, seq, time));
                    seq += 1;
                }
                time
            }
            Numbering::Stream {
                last_time,
                next_seq,
                ..
            } => {
                for arrival in batch.drain(..) {
                    taken += inbound.room.permits(arrival.message.len()) as usize;
                    // Positions only go forward (the reading task skips anything else).
                    let Some(stamp) = arrival.stamp.filter(|stamp| stamp.seq >= *next_seq) else {
                        continue;
                    };
                    if stamp.seq != *next_seq {
                        // A record holds consecutive seqs: the positions between went to
                        // other topics.
                        records.extend(builder.finish());
                    }
                    took = (took.0 + 1, took.1 + arrival.message.len());
                    *last_time = (*last_time).max(stamp.time);
                    *next_seq = stamp.seq + 1;
                    records.extend(builder.push(
                        &arrival.message,
                        arrival.at,
                        stamp.seq,
                        *last_time,
                    ));
                }
                *last_time
            }
        };
        records.extend(builder.finish());
        inbound.room.bytes.add_permits(taken);
        outbound.counters.took(took.0, took.1);
        for record in &mut records {
            outbound.readers.build(record, &name);
        }
        outbound.append(&mut records, time, &mut acks).await;
        inbound.room.settled(received);
        if let Numbering::Stream {
            next_seq, stored, ..
        } = &numbering
        {
            stored.send_replace(*next_seq);
        }
    }
    outbound.backlog.send_modify(Backlog::finish);
    tracing::debug!(topic = %name, "topic ended");
}

/// A publisher's handle to its topic's inbound queue.
#[derive(Debug)]
pub(crate) struct TopicPublisher {
    /// `None` when the publisher joined as the topic finished (in the last instant before a
    /// shutdown): such a publisher is closed before it reads anything.
    inbound: Option<mpsc::Sender<Arrival>>,
    room: Arc<QueueRoom>,
    /// Where waits for a full queue are counted.
    metrics: Arc<Metrics>,
    /// Where the actor acks this publisher's messages (stream mode only).
    ack: Option<AckCell>,
    /// In cluster mode, where its messages go instead of the queue.
    outlet: Option<Outlet>,
}

/// The topic takes no more messages: it finished draining for a shutdown, or its actor
/// failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("topic takes no more messages")]
pub(crate) struct TopicGone;

impl TopicPublisher {
    /// Queues a message that arrived at `at` for the topic, waiting while the topic's inbound
    /// queue is full (in messages or in bytes); the wait is counted, and costs no clock read
    /// when there is none.
    pub(crate) async fn publish(&self, message: Bytes, at: Instant) -> Result<(), TopicGone> {
        if let Some(outlet) = &self.outlet {
            return outlet.publish(message).await;
        }
        self.queue(message, at, None).await
    }

    /// Queues a message for the actor, with its position in the stream in cluster mode.
    async fn queue(
        &self,
        message: Bytes,
        at: Instant,
        stamp: Option<Stamp>,
    ) -> Result<(), TopicGone> {
        let inbound = self.inbound.as_ref().ok_or(TopicGone)?;
        let len = message.len();
        let mut waiting_since = None;
        if !self.room.try_take(len) {
            waiting_since = Some(Instant::now());
            self.room.take(len).await;
        }
        let arrival = Arrival {
            message,
            at,
            ack: self.ack.clone(),
            stamp,
        };
        // Counted before it is queued, so that the count never misses a queued message.
        self.room.unstored.fetch_add(1, Ordering::SeqCst);
        let queued = match inbound.try_send(arrival) {
            Ok(()) => Ok(()),
            Err(TrySendError::Closed(_)) => Err(TopicGone),
            Err(TrySendError::Full(arrival)) => {
                waiting_since.get_or_insert_with(Instant::now);
                inbound.send(arrival).await.map_err(|_closed| TopicGone)
            }
        };
        if queued.is_err() {
            self.room.settled(1);
        }
        if let Some(since) = waiting_since {
            self.metrics.held(HeldReason::TopicQueue, since.elapsed());
        }
        queued
    }

    /// For a stream-mode publisher, where its acks appear: the count of its messages stored
    /// and the seq of the last, as the topic appends them.
    pub(crate) fn acks(&self) -> Option<watch::Receiver<Acked>> {
        self.ack.as_ref().map(|cell| cell.subscribe())
    }
}

/// What one [`TopicFeed::next_batch`] took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Batch {
    /// Whether more is pending after it.
    pub(crate) more_pending: bool,
    /// Whether the topic has finished and this subscriber has everything it appended.
    pub(crate) finished: bool,
    /// Messages in it.
    pub(crate) messages: u64,
    /// When its oldest message arrived, if it has any.
    pub(crate) oldest: Option<Instant>,
}

/// A subscriber's position in its topic's backlog; dropping it leaves the backlog, releasing
/// the messages only this subscriber was still to read or write.
#[derive(Debug)]
pub(crate) struct TopicFeed {
    /// Wakes the subscriber when the actor appends.
    updates: watch::Receiver<Backlog>,
    /// For leaving; also keeps `updates` from ever seeing the sender gone.
    backlog: Arc<watch::Sender<Backlog>>,
    cursor: Cursor,
    /// The topic's closing signal, for [`Self::drain`].
    closing: CancellationToken,
    /// Told when this subscriber makes room, in case the actor waits for it.
    hold: Arc<Hold>,
    /// What history had for this subscriber when it joined, written before the backlog.
    replay: Replay,
    /// The topic's readers by form, counting this one.
    readers: Arc<FormReaders>,
    /// The form this subscriber reads.
    form: Form,
    /// Cluster mode: cancelled when the topic's reading found messages lost.
    lost: Option<CancellationToken>,
}

impl TopicFeed {
    /// Cluster mode: the signal that the topic's reading of the stream found messages lost
    /// (the subscriber must be closed with 4002); `None` in plain mode.
    pub(crate) fn lost(&self) -> Option<CancellationToken> {
        self.lost.clone()
    }

    /// A signal of the topic's appends, for a reader that waits on many feeds at once: it
    /// changes whenever [`Self::changed`] would complete.
    pub(crate) fn updates(&self) -> watch::Receiver<Backlog> {
        self.backlog.subscribe()
    }

    /// Lets go of the previous batch (written by now), then queues (by reference) the next
    /// pending frames, about `batch_bytes` of them, into `out`, and says what it took.
    pub(crate) fn next_batch(
        &mut self,
        out: &mut FrameQueue,
        batch_bytes: usize,
    ) -> Result<Batch, Lagged> {
        if let Some(messages) = self.replay.take(out, batch_bytes) {
            return Ok(Batch {
                more_pending: true,
                finished: false,
                messages,
                oldest: None,
            });
        }
        let backlog = self.updates.borrow_and_update();
        let read = backlog.read_from(&mut self.cursor, out, batch_bytes)?;
        drop(backlog);
        self.hold.room_made();
        Ok(Batch {
            more_pending: !read.caught_up,
            finished: read.finished,
            messages: read.messages,
            oldest: read.oldest,
        })
    }

    /// Called when everything taken is written: if the topic waits for room, lets go of it at
    /// once rather than at the next read, which may be long in coming.
    pub(crate) fn written(&mut self) {
        if self.hold.waited_for() && self.updates.borrow().let_go(&mut self.cursor) {
            self.hold.room_made();
        }
    }

    /// Waits until the topic has appended messages (or finished) since the last
    /// [`Self::next_batch`].
    pub(crate) async fn changed(&mut self) {
        // This feed holds the sender (`self.backlog`), so waiting cannot fail.
        let _sender_held_by_self = self.updates.changed().await;
    }

    /// The server is shutting down: the topic stops waiting for new publishers, and finishes
    /// once the connected ones have stopped and everything they queued is in the backlog.
    pub(crate) fn drain(&self) {
        self.closing.cancel();
    }
}

impl Drop for TopicFeed {
    fn drop(&mut self) {
        let cursor = &mut self.cursor;
        self.backlog.send_if_modified(|backlog| {
            backlog.leave(cursor);
            false
        });
        self.readers.left(self.form);
        self.hold.room_made();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Buf;
    use futures_util::FutureExt;

    use super::*;

    fn spawn(options: &Options, tracker: &TaskTracker) -> Topic {
        spawn_counted(options, tracker, &Arc::new(Metrics::new()))
    }

    /// A topic `/t` that counts into `metrics`.
    fn spawn_counted(options: &Options, tracker: &TaskTracker, metrics: &Arc<Metrics>) -> Topic {
        let pool = HistoryPool::new(options, metrics.history.clone());
        Topic::spawn(
            "/t".into(),
            options,
            tracker,
            metrics,
            &Arc::new(pool),
            None,
        )
    }

    /// Reads everything pending, waiting until at least `wanted` bytes of frames arrived.
    async fn read_frames(feed: &mut TopicFeed, wanted: usize) -> Vec<u8> {
        let mut out = FrameQueue::default();
        while out.remaining() < wanted {
            let batch = feed.next_batch(&mut out, usize::MAX).expect("not lagged");
            if !batch.more_pending && out.remaining() < wanted {
                // As a subscriber's task does once it has written everything.
                feed.written();
                feed.changed().await;
            }
        }
        out.copy_to_bytes(out.remaining()).to_vec()
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x82, payload.len() as u8];
        frame.extend_from_slice(payload);
        frame
    }

    async fn publish(publisher: &TopicPublisher, message: &'static [u8]) {
        publisher
            .publish(Bytes::from_static(message), Instant::now())
            .await
            .expect("topic alive");
    }

    #[tokio::test]
    async fn subscribers_see_one_order_from_their_join_on() {
        let tracker = TaskTracker::new();
        let topic = spawn(&Options::default(), &tracker);
        let publisher = topic.publisher(Form::Raw);
        let mut early = topic
            .subscriber(Start::default(), Form::Raw)
            .expect("latest");
        publish(&publisher, b"a").await;
        assert_eq!(read_frames(&mut early, 3).await, frame(b"a"));
        let mut late = topic
            .subscriber(Start::default(), Form::Raw)
            .expect("latest");
        publish(&publisher, b"b").await;
        assert_eq!(read_frames(&mut early, 3).await, frame(b"b"));
        assert_eq!(
            read_frames(&mut late, 3).await,
            frame(b"b"),
            "late joiner starts at its join"
        );
    }

    #[tokio::test]
    async fn a_subscriber_from_a_seq_replays_history_then_reads_live_without_a_seam() {
        let tracker = TaskTracker::new();
        let topic = spawn(&Options::default(), &tracker);
        let start = topic.history().lock_head();
        let publisher = topic.publisher(Form::Raw);
        let mut witness = topic
            .subscriber(Start::default(), Form::Raw)
            .expect("latest");
        for message in [&b"a"[..], b"b", b"c"] {
            publish(&publisher, message).await;
        }
        assert_eq!(
            read_frames(&mut witness, 9).await.len(),
            9,
            "all three taken"
        );
        let from = |seq| Start {
            position: wspubsub_protocol::StartPosition::Seq(seq),
            gap_ok: false,
        };
        let mut resumed = topic
            .subscriber(from(start + 1), Form::Raw)
            .expect("in history");
        publish(&publisher, b"d").await;
        let mut expected = frame(b"b");
        for message in [&b"c"[..], b"d"] {
            expected.extend(frame(message));
        }
        assert_eq!(read_frames(&mut resumed, expected.len()).await, expected);
        assert!(
            topic.subscriber(from(start + 5), Form::Raw).is_err(),
            "beyond the head"
        );
    }

    #[tokio::test]
    async fn messages_are_released_once_let_go_of_or_when_their_last_reader_leaves() {
        let tracker = TaskTracker::new();
        let topic = spawn(&Options::default(), &tracker);
        let publisher = topic.publisher(Form::Raw);
        let mut reader = topic
            .subscriber(Start::default(), Form::Raw)
            .expect("latest");
        let idle = topic
            .subscriber(Start::default(), Form::Raw)
            .expect("latest");
        for message in [&b"a"[..], b"b", b"c"] {
            publish(&publisher, message).await;
            // One message at a time, so that each is a chunk of its own.
            assert_eq!(read_frames(&mut reader, 3).await, frame(message));
        }
        let held = || topic.backlog.borrow().chunks();
        assert_eq!(held(), 3, "the idle subscriber has read none of them");
        drop(idle);
        assert_eq!(
            held(),
            1,
            "the reader let go of the first two; it still holds the last one it read"
        );
        drop(reader);
        assert_eq!(held(), 0);
    }

    #[tokio::test]
    async fn the_inbound_queue_is_bounded_in_bytes() {
        let options = Options {
            topic_queue_bytes: 10,
            ..Options::default()
        };
        let tracker = TaskTracker::new();
        let topic = spawn(&options, &tracker);
        let publisher = topic.publisher(Form::Raw);
        let mut feed = topic
            .subscriber(Start::default(), Form::Raw)
            .expect("latest");
        // The actor does not run while this (single-threaded) test does not yield.
        for message in [&b"1234"[..], b"5678"] {
            let queued = publisher.publish(Bytes::from_static(message), Instant::now());
            assert!(matches!(queued.now_or_never(), Some(Ok(()))), "room left");
        }
        let third = publisher.publish(Bytes::from_static(b"9abc"), Instant::now());
        tokio::pin!(third);
        assert!(
            third.as_mut().now_or_never().is_none(),
            "12 bytes do not fit in 10: the publisher waits"
        );
        third.await.expect("room once the actor took the first two");
        let mut expected = frame(b"1234");
        expected.extend(frame(b"5678"));
        expected.extend(frame(b"9abc"));
        assert_eq!(read_frames(&mut feed, expected.len()).await, expected);
    }

    #[tokio::test]
    async fn a_draining_topic_finishes_after_its_last_publisher_with_everything_appended() {
        let tracker = TaskTracker::new();
        let topic = spawn(&Options::default(), &tracker);
        let publisher = topic.publisher(Form::Raw);
        let mut feed = topic
            .subscriber(Start::default(), Form::Raw)
            .expect("latest");
        publish(&publisher, b"a").await;
        feed.drain();
        publish(&publisher, b"b").await;
        let mut out = FrameQueue::default();
        tokio::task::yield_now().await;
        let batch = feed.next_batch(&mut out, usize::MAX).expect("not lagged");
        assert!(!batch.finished, "a publisher is still connected");
        drop(publisher);
        loop {
            let batch = feed.next_batch(&mut out, usize::MAX).expect("not lagged");
            if batch.finished {
                break;
            }
            feed.changed().await;
        }
        let mut expected = frame(b"a");
        expected.extend(frame(b"b"));
        assert_eq!(out.copy_to_bytes(out.remaining()).as_ref(), expected);
        drop((feed, topic));
        tracker.close();
        tracker.wait().await;
    }

    #[tokio::test]
    async fn actor_ends_when_the_topic_is_dropped_and_its_publishers_are_gone() {
        let tracker = TaskTracker::new();
        let topic = spawn(&Options::default(), &tracker);
        let publisher = topic.publisher(Form::Raw);
        drop(topic);
        publish(&publisher, b"x").await;
        drop(publisher);
        tracker.close();
        tracker.wait().await;
        assert!(tracker.is_empty());
    }

    /// A topic whose backlog holds two messages and whose inbound queue one, with a task
    /// publishing `a` to `f`, one byte each, and a subscriber that joined before.
    fn six_messages_into_a_small_topic(
        policy: SlowSubscriber,
    ) -> (Topic, TopicFeed, tokio::task::JoinHandle<()>, Arc<Metrics>) {
        let options = Options {
            subscriber_queue_messages: 2,
            topic_queue: 1,
            slow_subscriber: policy,
            ..Options::default()
        };
        let metrics = Arc::new(Metrics::new());
        let topic = spawn_counted(&options, &TaskTracker::new(), &metrics);
        let feed = topic
            .subscriber(Start::default(), Form::Raw)
            .expect("latest");
        let publisher = topic.publisher(Form::Raw);
        let publishing = tokio::spawn(async move {
            for message in [&b"a"[..], b"b", b"c", b"d", b"e", b"f"] {
                publish(&publisher, message).await;
            }
        });
        (topic, feed, publishing, metrics)
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_topic_waits_for_its_slowest_subscriber_and_it_loses_nothing() {
        let (_topic, mut feed, mut publishing, metrics) =
            six_messages_into_a_small_topic(SlowSubscriber::Hold);
        // Paused time advances only once every task is idle: the publisher is stuck.
        let stuck = tokio::time::timeout(Duration::from_secs(60), &mut publishing).await;
        assert!(stuck.is_err(), "the publisher is held while nobody reads");
        let all: Vec<u8> = [&b"a"[..], b"b", b"c", b"d", b"e", b"f"]
            .iter()
            .flat_map(|message| frame(message))
            .collect();
        assert_eq!(read_frames(&mut feed, all.len()).await, all);
        publishing
            .await
            .expect("the publisher went on as the subscriber read");
        assert!(
            metrics
                .encode(1, None)
                .contains("wspubsub_publish_held_seconds_total{reason=\"subscriber_backlog\"}"),
            "the wait is counted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_topic_that_closes_slow_subscribers_never_waits_for_them() {
        let (_topic, mut feed, publishing, _metrics) =
            six_messages_into_a_small_topic(SlowSubscriber::Close);
        tokio::time::timeout(Duration::from_secs(60), publishing)
            .await
            .expect("the publisher is never held")
            .expect("published");
        let mut out = FrameQueue::default();
        assert!(
            feed.next_batch(&mut out, usize::MAX).is_err(),
            "the subscriber fell out of the backlog"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_topic_acks_what_it_appended_without_waiting_for_room_for_the_rest() {
        let options = Options {
            subscriber_queue_messages: 2,
            subscriber_queue_bytes: 1 << 20,
            topic_queue_bytes: 1 << 20,
            slow_subscriber: SlowSubscriber::Hold,
            ..Options::default()
        };
        let topic = spawn(&options, &TaskTracker::new());
        let head = topic.history().lock_head();
        let _idle = topic
            .subscriber(Start::default(), Form::Raw)
            .expect("latest");
        let publisher = topic.publisher(Form::Enveloped);
        let mut acks = publisher.acks().expect("a stream-mode publisher");
        // Three messages of a chunk each, queued before the actor runs: one batch, of which
        // the backlog takes two while nobody reads.
        let message = Bytes::from(vec![7; CHUNK_BYTES]);
        for _ in 0..3 {
            let queued = publisher.publish(message.clone(), Instant::now());
            assert!(matches!(queued.now_or_never(), Some(Ok(()))), "room left");
        }
        // Paused time advances only once every task is idle: a missing ack never comes.
        let acked = tokio::time::timeout(
            Duration::from_secs(60),
            acks.wait_for(|acked| acked.count > 0),
        )
        .await
        .expect("the appended part is acked while the rest waits for room")
        .map(|acked| *acked)
        .expect("the publisher holds the ack cell");
        assert_eq!(
            acked,
            Acked {
                count: 2,
                seq: head + 1
            }
        );
        assert!(topic.storing(), "the third message still waits for room");
    }

    #[tokio::test]
    async fn storing_is_over_once_the_actor_stored_everything_queued() {
        let tracker = TaskTracker::new();
        let topic = spawn(&Options::default(), &tracker);
        let publisher = topic.publisher(Form::Raw);
        let storing = topic.storing_signal();
        assert!(
            storing.done().now_or_never().is_some(),
            "nothing queued, nothing to wait for"
        );
        // Queued without yielding: the actor has not run yet.
        let queued = publisher.publish(Bytes::from_static(b"m"), Instant::now());
        assert!(matches!(queued.now_or_never(), Some(Ok(()))), "room left");
        assert!(topic.storing());
        let done = storing.done();
        tokio::pin!(done);
        assert!(
            futures_util::poll!(done.as_mut()).is_pending(),
            "the message is not stored yet"
        );
        tokio::time::timeout(Duration::from_secs(10), done)
            .await
            .expect("told once the actor stored it");
        assert!(!topic.storing());
        assert!(topic.history().expire(), "the message is in history");
    }
}
