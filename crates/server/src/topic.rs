//! The topic actor: one task per topic, the single owner of the topic's message order.
//!
//! Publishers hand messages to the actor over a bounded queue (so they are pushed back when
//! it is full); the actor appends them to the topic's [`Backlog`] and wakes the subscribers,
//! each of which reads the backlog from its own cursor. The actor never waits on a
//! subscriber, so a stalled subscriber cannot stall the topic.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::task::TaskTracker;

use crate::backlog::{Backlog, Lagged};
use crate::options::Options;

/// Most messages the actor moves into the backlog per wake-up; batching keeps the wake-ups
/// of subscribers (one per batch, not per message) cheap under load.
const ACTOR_BATCH: usize = 256;

/// The hub's handle to a running topic actor. The actor ends once this handle and every
/// [`TopicPublisher`] are dropped.
#[derive(Debug)]
pub(crate) struct Topic {
    inbound: mpsc::Sender<Bytes>,
    backlog: watch::Receiver<Backlog>,
}

impl Topic {
    /// Starts the actor of topic `name` on `tracker`.
    pub(crate) fn spawn(name: Arc<str>, options: &Options, tracker: &TaskTracker) -> Topic {
        let (inbound, receiver) = mpsc::channel(options.topic_queue);
        let backlog = Backlog::new(
            options.subscriber_queue_messages,
            options.subscriber_queue_bytes,
        );
        let (sender, backlog) = watch::channel(backlog);
        tracker.spawn(run(name, receiver, sender));
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
        let backlog = self.backlog.clone();
        let cursor = backlog.borrow().head();
        TopicFeed { backlog, cursor }
    }
}

/// The actor's loop: move queued messages into the backlog, batch by batch, until every
/// sender is gone.
async fn run(name: Arc<str>, mut inbound: mpsc::Receiver<Bytes>, backlog: watch::Sender<Backlog>) {
    tracing::debug!(topic = %name, "topic started");
    let mut batch = Vec::with_capacity(ACTOR_BATCH);
    while inbound.recv_many(&mut batch, ACTOR_BATCH).await > 0 {
        backlog.send_modify(|backlog| batch.drain(..).for_each(|message| backlog.push(message)));
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

/// A subscriber's position in its topic's backlog.
#[derive(Debug)]
pub(crate) struct TopicFeed {
    backlog: watch::Receiver<Backlog>,
    cursor: u64,
}

impl TopicFeed {
    /// Moves (by reference) the next pending messages, about `batch_bytes` of them, into
    /// `out`; says whether more are pending after them.
    pub(crate) fn next_batch(
        &mut self,
        out: &mut Vec<Bytes>,
        batch_bytes: usize,
    ) -> Result<bool, Lagged> {
        let backlog = self.backlog.borrow_and_update();
        self.cursor = backlog.read_from(self.cursor, out, batch_bytes)?;
        Ok(self.cursor < backlog.head())
    }

    /// Waits until the topic has appended messages since the last [`Self::next_batch`].
    pub(crate) async fn changed(&mut self) -> Result<(), TopicGone> {
        self.backlog.changed().await.map_err(|_| TopicGone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // Wait until the actor has appended "a" before the late subscriber joins.
        early.changed().await.expect("topic alive");
        let mut late = topic.subscriber();
        publisher
            .publish(Bytes::from_static(b"b"))
            .await
            .expect("topic alive");

        let mut seen_early = Vec::new();
        while seen_early.len() < 2 {
            early
                .next_batch(&mut seen_early, usize::MAX)
                .expect("not lagged");
            if seen_early.len() < 2 {
                early.changed().await.expect("topic alive");
            }
        }
        late.changed().await.expect("topic alive");
        let mut seen_late = Vec::new();
        late.next_batch(&mut seen_late, usize::MAX)
            .expect("not lagged");
        assert_eq!(
            seen_early,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
        );
        assert_eq!(seen_late, vec![Bytes::from_static(b"b")]);
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
