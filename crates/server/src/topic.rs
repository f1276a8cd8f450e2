//! The topic actor: one task per topic, the single owner of the topic's message order.
//!
//! Publishers hand messages to the actor over a bounded queue (so they are pushed back when
//! it is full); the actor encodes each batch of them once into frames, appends those to the
//! topic's [`Backlog`] and wakes the subscribers, each of which reads the backlog from its own
//! cursor. The actor never waits on a
//! subscriber, so a stalled subscriber cannot stall the topic.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::task::TaskTracker;

use crate::options::Options;
use wspubsub_fanout::{Backlog, Chunk, ChunkBuilder, Cursor, FrameQueue, Lagged};

/// Most messages the actor moves into the backlog per wake-up; batching keeps the wake-ups
/// of subscribers (one per batch, not per message) cheap under load.
const ACTOR_BATCH: usize = 256;

/// Target size of one encoded chunk: large enough that a burst of small messages travels as
/// one buffer, small enough that a chunk is a modest unit of backlog accounting.
const CHUNK_BYTES: usize = 64 << 10;

/// The hub's handle to a running topic actor. The actor ends once this handle and every
/// [`TopicPublisher`] are dropped.
#[derive(Debug)]
pub(crate) struct Topic {
    inbound: mpsc::Sender<Bytes>,
    /// Written by the actor (appends) and by subscribers joining and leaving.
    backlog: Arc<watch::Sender<Backlog>>,
}

impl Topic {
    /// Starts the actor of topic `name` on `tracker`.
    pub(crate) fn spawn(name: Arc<str>, options: &Options, tracker: &TaskTracker) -> Topic {
        let (inbound, receiver) = mpsc::channel(options.topic_queue);
        let backlog = Backlog::new(
            options.subscriber_queue_messages,
            options.subscriber_queue_bytes,
        );
        let backlog = Arc::new(watch::Sender::new(backlog));
        tracker.spawn(run(name, receiver, Arc::clone(&backlog)));
        Topic { inbound, backlog }
    }

    /// A way in for a new publisher.
    pub(crate) fn publisher(&self) -> TopicPublisher {
        TopicPublisher {
            inbound: self.inbound.clone(),
        }
    }

    /// A way out for a new subscriber: it will get every message appended from now on.
    pub(crate) fn subscriber(&self) -> TopicFeed {
        let mut cursor = Cursor::default();
        // Joining changes no message: nobody needs waking.
        self.backlog.send_if_modified(|backlog| {
            cursor = backlog.join();
            false
        });
        TopicFeed {
            updates: self.backlog.subscribe(),
            backlog: Arc::clone(&self.backlog),
            cursor,
        }
    }
}

/// The actor's loop: move queued messages into the backlog, batch by batch, until every
/// sender is gone.
async fn run(
    name: Arc<str>,
    mut inbound: mpsc::Receiver<Bytes>,
    backlog: Arc<watch::Sender<Backlog>>,
) {
    tracing::debug!(topic = %name, "topic started");
    let mut batch = Vec::with_capacity(ACTOR_BATCH);
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut builder = ChunkBuilder::new(CHUNK_BYTES);
    while inbound.recv_many(&mut batch, ACTOR_BATCH).await > 0 {
        // Encode outside the backlog's lock; subscribers only wait for the appends.
        for message in batch.drain(..) {
            chunks.extend(builder.push(&message));
        }
        chunks.extend(builder.finish());
        backlog.send_modify(|backlog| chunks.drain(..).for_each(|chunk| backlog.push(chunk)));
    }
    tracing::debug!(topic = %name, "topic ended");
}

/// A publisher's handle to its topic's inbound queue.
#[derive(Debug, Clone)]
pub(crate) struct TopicPublisher {
    inbound: mpsc::Sender<Bytes>,
}

/// The topic actor has ended; only possible while the server is going down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("topic has ended")]
pub(crate) struct TopicGone;

impl TopicPublisher {
    /// Queues a message for the topic, waiting while the topic's inbound queue is full.
    pub(crate) async fn publish(&self, message: Bytes) -> Result<(), TopicGone> {
        self.inbound.send(message).await.map_err(|_| TopicGone)
    }
}

/// What one [`TopicFeed::next_batch`] took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Batch {
    /// Whether more is pending after it.
    pub(crate) more_pending: bool,
    /// Messages in it.
    pub(crate) messages: u64,
    /// When its oldest message was encoded, if it has any.
    pub(crate) oldest: Option<std::time::Instant>,
}

/// A subscriber's position in its topic's backlog; dropping it leaves the backlog, releasing
/// the messages only this subscriber was still to read.
#[derive(Debug)]
pub(crate) struct TopicFeed {
    /// Wakes the subscriber when the actor appends.
    updates: watch::Receiver<Backlog>,
    /// For leaving.
    backlog: Arc<watch::Sender<Backlog>>,
    cursor: Cursor,
}

impl TopicFeed {
    /// Queues (by reference) the next pending frames, about `batch_bytes` of them, into
    /// `out`, and says what it took.
    pub(crate) fn next_batch(
        &mut self,
        out: &mut FrameQueue,
        batch_bytes: usize,
    ) -> Result<Batch, Lagged> {
        let backlog = self.updates.borrow_and_update();
        let read = backlog.read_from(self.cursor, out, batch_bytes)?;
        self.cursor = read.next;
        Ok(Batch {
            more_pending: self.cursor != backlog.head(),
            messages: read.messages,
            oldest: read.oldest,
        })
    }

    /// Waits until the topic has appended messages since the last [`Self::next_batch`].
    pub(crate) async fn changed(&mut self) -> Result<(), TopicGone> {
        self.updates.changed().await.map_err(|_| TopicGone)
    }
}

impl Drop for TopicFeed {
    fn drop(&mut self) {
        let cursor = self.cursor;
        self.backlog.send_if_modified(|backlog| {
            backlog.leave(cursor);
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use bytes::Buf;

    use super::*;

    /// Reads everything pending, waiting until at least `wanted` bytes of frames arrived.
    async fn read_frames(feed: &mut TopicFeed, wanted: usize) -> Vec<u8> {
        let mut out = FrameQueue::default();
        while out.remaining() < wanted {
            if !feed
                .next_batch(&mut out, usize::MAX)
                .expect("not lagged")
                .more_pending
                && out.remaining() < wanted
            {
                feed.changed().await.expect("topic alive");
            }
        }
        out.copy_to_bytes(out.remaining()).to_vec()
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x82, payload.len() as u8];
        frame.extend_from_slice(payload);
        frame
    }

    #[tokio::test]
    async fn subscribers_see_one_order_from_their_join_on() {
        let tracker = TaskTracker::new();
        let topic = Topic::spawn("/t".into(), &Options::default(), &tracker);
        let publisher = topic.publisher();
        let mut early = topic.subscriber();
        publisher
            .publish(Bytes::from_static(b"a"))
            .await
            .expect("topic alive");
        assert_eq!(read_frames(&mut early, 3).await, frame(b"a"));
        let mut late = topic.subscriber();
        publisher
            .publish(Bytes::from_static(b"b"))
            .await
            .expect("topic alive");
        assert_eq!(read_frames(&mut early, 3).await, frame(b"b"));
        assert_eq!(
            read_frames(&mut late, 3).await,
            frame(b"b"),
            "late joiner starts at its join"
        );
    }

    #[tokio::test]
    async fn messages_are_released_once_read_or_when_their_last_reader_leaves() {
        let tracker = TaskTracker::new();
        let topic = Topic::spawn("/t".into(), &Options::default(), &tracker);
        let publisher = topic.publisher();
        let mut reader = topic.subscriber();
        let idle = topic.subscriber();
        for message in [&b"a"[..], b"b", b"c"] {
            publisher
                .publish(Bytes::from_static(message))
                .await
                .expect("topic alive");
            // One message at a time, so that each is a chunk of its own.
            assert_eq!(read_frames(&mut reader, 3).await, frame(message));
        }
        let held = || topic.backlog.borrow().chunks();
        assert_eq!(held(), 3, "the idle subscriber has read none of them");
        drop(idle);
        assert_eq!(
            held(),
            0,
            "everything left was read by the remaining subscriber"
        );
    }

    #[tokio::test]
    async fn actor_ends_when_every_handle_is_gone() {
        let tracker = TaskTracker::new();
        let topic = Topic::spawn("/t".into(), &Options::default(), &tracker);
        let publisher = topic.publisher();
        drop(topic);
        publisher
            .publish(Bytes::from_static(b"x"))
            .await
            .expect("still alive");
        drop(publisher);
        tracker.close();
        tracker.wait().await;
        assert!(tracker.is_empty());
    }
}
