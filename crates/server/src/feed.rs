//! What a subscriber reads: one topic's feed, or a pattern's feeds of every topic it
//! follows. The subscriber loops (WebSocket and EventSource) read either the same way.

use tokio_util::sync::CancellationToken;
use wspubsub_fanout::{FrameQueue, Lagged};

use crate::pattern::feed::PatternFeed;
use crate::topic::{Batch, TopicFeed};

/// A subscriber's reading.
#[derive(Debug)]
pub(crate) enum Feed {
    /// Of one topic.
    Topic(TopicFeed),
    /// Of every topic a pattern matches.
    Pattern(PatternFeed),
}

impl Feed {
    /// Cluster mode: the signal that the topic's reading of the stream found messages lost
    /// (the subscriber must be closed with 4002), or a pattern's reading did; `None` in plain
    /// mode.
    pub(crate) fn lost(&self) -> Option<CancellationToken> {
        match self {
            Feed::Topic(feed) => feed.lost(),
            Feed::Pattern(feed) => feed.lost(),
        }
    }

    /// Lets go of the previous batch (written by now), then queues (by reference) the next
    /// pending frames, about `batch_bytes` of them, into `out`, and says what it took.
    pub(crate) fn next_batch(
        &mut self,
        out: &mut FrameQueue,
        batch_bytes: usize,
    ) -> Result<Batch, Lagged> {
        match self {
            Feed::Topic(feed) => feed.next_batch(out, batch_bytes),
            Feed::Pattern(feed) => feed.next_batch(out, batch_bytes),
        }
    }

    /// Called when everything taken is written (see [`TopicFeed::written`]).
    pub(crate) fn written(&mut self) {
        match self {
            Feed::Topic(feed) => feed.written(),
            Feed::Pattern(feed) => feed.written(),
        }
    }

    /// Waits until there may be something new to read.
    pub(crate) async fn changed(&mut self) {
        match self {
            Feed::Topic(feed) => feed.changed().await,
            Feed::Pattern(feed) => feed.changed().await,
        }
    }

    /// The server is shutting down: the feed finishes once everything its topics took is
    /// read (see [`TopicFeed::drain`]).
    pub(crate) fn drain(&mut self) {
        match self {
            Feed::Topic(feed) => feed.drain(),
            Feed::Pattern(feed) => feed.drain(),
        }
    }
}
