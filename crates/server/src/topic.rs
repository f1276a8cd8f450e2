//! The topic actor: one task per topic, the single owner of the topic's message order.
//!
//! Publishers hand messages to the actor over a queue bounded in messages and in bytes (so they
//! are pushed back when it is full); the actor encodes each batch of them once into frames,
//! appends those to the topic's [`Backlog`] and wakes the subscribers, each of which reads the
//! backlog from its own cursor. The actor never waits on a subscriber, so a stalled subscriber
//! cannot stall the topic.
//!
//! The actor ends once the topic is closing and its publishers are gone, after moving
//! everything they queued into the backlog and marking it finished. A topic closes when its
//! last client leaves, or when a subscriber sees the server shut down ([`TopicFeed::drain`]):
//! publishers stop reading then, so every message the server read reaches the subscribers
//! before they are closed.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::options::Options;
use crate::position::{SEQ_CLOCK, Sequence, now_micros};
use crate::retention::{HistoryGap, HistoryPool, Replay, TopicHistory};
use wspubsub_fanout::{Backlog, Cursor, FrameQueue, Lagged, Record, RecordBuilder};
use wspubsub_protocol::Start;

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
    /// The messages kept after delivery; appended to under the backlog's lock.
    history: Arc<TopicHistory>,
}

/// A message on its way through the topic's inbound queue.
#[derive(Debug)]
struct Arrival {
    message: Bytes,
    /// When the publisher's connection read it: the start of its publish-to-write latency.
    at: Instant,
}

/// The byte bound of a topic's inbound queue: a semaphore of bytes, taken by publishers as
/// they queue a message and given back by the actor per batch it takes out.
#[derive(Debug)]
struct QueueRoom {
    bytes: Semaphore,
    /// The semaphore's size: one message never needs more.
    capacity: usize,
}

impl QueueRoom {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        QueueRoom {
            bytes: Semaphore::new(capacity),
            capacity,
        }
    }

    /// The permits a message of `len` bytes takes (so that even the largest fits).
    fn permits(&self, len: usize) -> u32 {
        u32::try_from(len.min(self.capacity)).unwrap_or(u32::MAX)
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
    /// before it, keeping its history in `pool`.
    pub(crate) fn spawn(
        name: Arc<str>,
        options: &Options,
        tracker: &TaskTracker,
        pool: &Arc<HistoryPool>,
    ) -> Topic {
        let sequence = SEQ_CLOCK.incarnation(now_micros());
        let (keepalive, receiver) = mpsc::channel(options.topic_queue);
        let backlog = Backlog::new(
            options.subscriber_queue_messages,
            options.subscriber_queue_bytes,
        );
        let topic = Topic {
            inbound: keepalive.downgrade(),
            room: Arc::new(QueueRoom::new(options.topic_queue_bytes)),
            backlog: Arc::new(watch::Sender::new(backlog)),
            closing: CancellationToken::new(),
            history: pool.open(sequence.next()),
        };
        tracker.spawn(run(
            name,
            Inbound {
                receiver,
                keepalive: Some(keepalive),
                room: Arc::clone(&topic.room),
            },
            topic.closing.clone(),
            Arc::clone(&topic.backlog),
            Stamping {
                sequence,
                history: Arc::clone(&topic.history),
            },
        ));
        topic
    }

    /// A way in for a new publisher.
    pub(crate) fn publisher(&self) -> TopicPublisher {
        TopicPublisher {
            inbound: self.inbound.upgrade(),
            room: Arc::clone(&self.room),
        }
    }

    /// A way out for a new subscriber starting at `start`: it replays what history has from
    /// there, then gets every message appended from now on (both taken under the backlog's
    /// lock, so there is neither a gap nor a duplicate between them). Refused when history
    /// does not cover `start` and the subscriber did not accept gaps.
    pub(crate) fn subscriber(&self, start: Start) -> Result<TopicFeed, HistoryGap> {
        let mut joined = None;
        // Joining changes no message: nobody needs waking.
        self.backlog.send_if_modified(|backlog| {
            joined = Some(
                self.history
                    .join(start)
                    .map(|replay| (replay, backlog.join())),
            );
            false
        });
        let (replay, cursor) = joined.expect("send_if_modified always runs its closure")?;
        Ok(TopicFeed {
            updates: self.backlog.subscribe(),
            backlog: Arc::clone(&self.backlog),
            cursor,
            closing: self.closing.clone(),
            replay,
        })
    }

    /// The topic's history.
    pub(crate) fn history(&self) -> &Arc<TopicHistory> {
        &self.history
    }
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

/// What the actor stamps each message with, and keeps it in.
struct Stamping {
    sequence: Sequence,
    history: Arc<TopicHistory>,
}

/// The actor's loop: move queued messages into the backlog and history, batch by batch, each
/// message numbered and timed, until the topic is closing and every publisher is gone; then
/// mark the backlog finished.
async fn run(
    name: Arc<str>,
    mut inbound: Inbound,
    closing: CancellationToken,
    backlog: Arc<watch::Sender<Backlog>>,
    mut stamping: Stamping,
) {
    tracing::debug!(topic = %name, "topic started");
    let mut batch = Vec::with_capacity(ACTOR_BATCH);
    let mut records: Vec<Record> = Vec::new();
    let mut builder = RecordBuilder::new(CHUNK_BYTES);
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
        // Number the batch: the one place seqs are assigned.
        let (mut seq, time) = stamping.sequence.take(batch.len() as u64, now_micros());
        // Encode outside the backlog's lock; subscribers only wait for the appends.
        for arrival in batch.drain(..) {
            taken += inbound.room.permits(arrival.message.len()) as usize;
            records.extend(builder.push(&arrival.message, arrival.at, seq, time));
            seq += 1;
        }
        records.extend(builder.finish());
        inbound.room.bytes.add_permits(taken);
        let history = &stamping.history;
        backlog.send_modify(|backlog| {
            history.append(
                records
                    .drain(..)
                    .inspect(|record| backlog.push(record.chunk.clone())),
                time,
            );
        });
        history.enforce_total();
    }
    backlog.send_modify(Backlog::finish);
    tracing::debug!(topic = %name, "topic ended");
}

/// A publisher's handle to its topic's inbound queue.
#[derive(Debug)]
pub(crate) struct TopicPublisher {
    /// `None` when the publisher joined as the topic finished (in the last instant before a
    /// shutdown): such a publisher is closed before it reads anything.
    inbound: Option<mpsc::Sender<Arrival>>,
    room: Arc<QueueRoom>,
}

/// The topic takes no more messages: it finished draining for a shutdown, or its actor
/// failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("topic takes no more messages")]
pub(crate) struct TopicGone;

impl TopicPublisher {
    /// Queues a message that arrived at `at` for the topic, waiting while the topic's inbound
    /// queue is full (in messages or in bytes).
    pub(crate) async fn publish(&self, message: Bytes, at: Instant) -> Result<(), TopicGone> {
        let inbound = self.inbound.as_ref().ok_or(TopicGone)?;
        self.room.take(message.len()).await;
        inbound
            .send(Arrival { message, at })
            .await
            .map_err(|_closed| TopicGone)
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
    /// What history had for this subscriber when it joined, written before the backlog.
    replay: Replay,
}

impl TopicFeed {
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
        Ok(Batch {
            more_pending: !read.caught_up,
            finished: read.finished,
            messages: read.messages,
            oldest: read.oldest,
        })
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
    }
}

#[cfg(test)]
mod tests {
    use bytes::Buf;
    use futures_util::FutureExt;

    use super::*;

    fn spawn(options: &Options, tracker: &TaskTracker) -> Topic {
        let pool = HistoryPool::new(options, crate::retention::HistoryMetrics::default());
        Topic::spawn("/t".into(), options, tracker, &Arc::new(pool))
    }

    /// Reads everything pending, waiting until at least `wanted` bytes of frames arrived.
    async fn read_frames(feed: &mut TopicFeed, wanted: usize) -> Vec<u8> {
        let mut out = FrameQueue::default();
        while out.remaining() < wanted {
            let batch = feed.next_batch(&mut out, usize::MAX).expect("not lagged");
            if !batch.more_pending && out.remaining() < wanted {
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
        let publisher = topic.publisher();
        let mut early = topic.subscriber(Start::default()).expect("latest");
        publish(&publisher, b"a").await;
        assert_eq!(read_frames(&mut early, 3).await, frame(b"a"));
        let mut late = topic.subscriber(Start::default()).expect("latest");
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
        let publisher = topic.publisher();
        let mut witness = topic.subscriber(Start::default()).expect("latest");
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
        let mut resumed = topic.subscriber(from(start + 1)).expect("in history");
        publish(&publisher, b"d").await;
        let mut expected = frame(b"b");
        for message in [&b"c"[..], b"d"] {
            expected.extend(frame(message));
        }
        assert_eq!(read_frames(&mut resumed, expected.len()).await, expected);
        assert!(
            topic.subscriber(from(start + 5)).is_err(),
            "beyond the head"
        );
    }

    #[tokio::test]
    async fn messages_are_released_once_let_go_of_or_when_their_last_reader_leaves() {
        let tracker = TaskTracker::new();
        let topic = spawn(&Options::default(), &tracker);
        let publisher = topic.publisher();
        let mut reader = topic.subscriber(Start::default()).expect("latest");
        let idle = topic.subscriber(Start::default()).expect("latest");
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
        let publisher = topic.publisher();
        let mut feed = topic.subscriber(Start::default()).expect("latest");
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
        let publisher = topic.publisher();
        let mut feed = topic.subscriber(Start::default()).expect("latest");
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
        let publisher = topic.publisher();
        drop(topic);
        publish(&publisher, b"x").await;
        drop(publisher);
        tracker.close();
        tracker.wait().await;
        assert!(tracker.is_empty());
    }
}
