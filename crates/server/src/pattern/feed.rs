//! A pattern subscriber's reading: one [`TopicFeed`] per topic it follows, read as one feed.
//!
//! Each topic's feed keeps that topic's order; topics take turns (a topic with more pending
//! goes to the back of the line), so a busy topic cannot starve a quiet one. Only the topics
//! that changed are read: each feed's change signal wakes the subscriber with the feed's key.
//! A topic that ends (its last client left) finishes its feed, which is dropped; if the topic
//! comes back, the hub hands the subscriber a new feed of it. In cluster mode the feed reads
//! the pattern's own reading of the stream instead ([`super::cluster`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures_util::stream::{BoxStream, SelectAll, StreamExt};
use wspubsub_fanout::{FrameQueue, Lagged};

use super::cluster::{Frames, StreamReading};
use super::registry::Arrivals;
use crate::topic::{Batch, TopicFeed};

/// Key of one followed topic's feed within a pattern feed.
type Key = u64;

/// One followed topic.
#[derive(Debug)]
struct Followed {
    feed: TopicFeed,
    /// In the ready line already.
    queued: bool,
    /// Read since everything read was last reported written.
    unwritten: bool,
}

/// The feeds of every topic a pattern subscriber follows, read as one.
pub(crate) struct PatternFeed {
    /// What goes before everything else (a stream-mode subscriber's `following` frame).
    preamble: Option<Bytes>,
    /// Readings of topics created since the last look.
    arrivals: Arc<Arrivals>,
    followed: HashMap<Key, Followed>,
    next_key: Key,
    /// Yields a feed's key whenever its topic appended (or finished); made with the first
    /// topic followed (an idle pattern holds as little as it can).
    signals: Option<SelectAll<BoxStream<'static, Key>>>,
    /// Feeds that may have something to read, in turn order.
    ready: VecDeque<Key>,
    /// Feeds read since everything read was last reported written.
    unwritten: Vec<Key>,
    /// The server shuts down: every feed, and every one yet to arrive, drains.
    draining: bool,
    /// Cluster mode: the pattern's own reading of the stream, in place of topics' feeds.
    stream: Option<StreamReading>,
    /// Frames of the stream reading taken while waiting, not yet read.
    stream_held: Option<Frames>,
}

impl std::fmt::Debug for PatternFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatternFeed")
            .field("followed", &self.followed.len())
            .field("ready", &self.ready.len())
            .field("draining", &self.draining)
            .finish_non_exhaustive()
    }
}

impl PatternFeed {
    /// A feed of `preamble` (if any), then of the topics in `existing` and of those that
    /// will arrive on `arrivals`.
    pub(crate) fn new(
        preamble: Option<Bytes>,
        existing: Vec<TopicFeed>,
        arrivals: Arc<Arrivals>,
    ) -> Self {
        let mut feed = PatternFeed {
            preamble,
            arrivals,
            followed: HashMap::new(),
            next_key: 0,
            signals: None,
            ready: VecDeque::new(),
            unwritten: Vec::new(),
            draining: false,
            stream: None,
            stream_held: None,
        };
        existing.into_iter().for_each(|topic| feed.follow(topic));
        feed
    }

    /// Starts reading one more topic: ready at once (a stream-mode reader has its
    /// `subscribed` frame to send).
    fn follow(&mut self, feed: TopicFeed) {
        if self.draining {
            feed.drain();
        }
        let key = self.next_key;
        self.next_key += 1;
        let signal = futures_util::stream::unfold(feed.updates(), move |mut updates| async move {
            // Ends once the topic's backlog is gone.
            updates.changed().await.ok()?;
            Some((key, updates))
        });
        self.signals
            .get_or_insert_with(SelectAll::new)
            .push(signal.boxed());
        self.followed.insert(
            key,
            Followed {
                feed,
                queued: true,
                unwritten: false,
            },
        );
        self.ready.push_back(key);
    }

    /// Cluster mode: a feed of `preamble`, then of the pattern's reading of the stream.
    pub(crate) fn of_stream(
        preamble: Option<Bytes>,
        stream: StreamReading,
        arrivals: Arc<Arrivals>,
    ) -> Self {
        let mut feed = PatternFeed::new(preamble, Vec::new(), arrivals);
        feed.stream = Some(stream);
        feed
    }

    /// Cluster mode: the signal that the pattern's reading of the stream lost messages.
    pub(crate) fn lost(&self) -> Option<tokio_util::sync::CancellationToken> {
        self.stream.as_ref().map(|stream| stream.lost.clone())
    }

    /// Queues the stream reading's frames, about `budget` bytes of them, into `out`.
    fn read_stream(&mut self, out: &mut FrameQueue, budget: usize, batch: &mut Batch) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let mut taken = 0;
        while taken < budget {
            let Some(frames) = self
                .stream_held
                .take()
                .or_else(|| stream.frames.try_recv().ok())
            else {
                break;
            };
            taken += frames.bytes.len();
            out.push(frames.bytes);
            batch.messages += 1;
            batch.oldest = Some(
                batch
                    .oldest
                    .map_or(frames.since, |oldest| oldest.min(frames.since)),
            );
        }
        batch.more_pending |= !stream.frames.is_empty();
    }

    /// Whether everything the stream reading had is read.
    fn stream_read(&self) -> bool {
        self.stream_held.is_none()
            && self
                .stream
                .as_ref()
                .is_none_or(|stream| stream.frames.is_empty())
    }

    /// Follows the topics that arrived since the last look.
    fn take_arrivals(&mut self) {
        for feed in self.arrivals.take() {
            self.follow(feed);
        }
    }

    /// Puts feed `key` in the ready line, once.
    fn mark_ready(&mut self, key: Key) {
        if let Some(followed) = self.followed.get_mut(&key)
            && !std::mem::replace(&mut followed.queued, true)
        {
            self.ready.push_back(key);
        }
    }

    /// Queues the next pending frames of the ready topics, about `batch_bytes` of them in
    /// all, into `out`, each ready topic in turn, and says what it took. A topic that fell
    /// out of its backlog fails the whole subscriber, as it would a topic's subscriber.
    pub(crate) fn next_batch(
        &mut self,
        out: &mut FrameQueue,
        batch_bytes: usize,
    ) -> Result<Batch, Lagged> {
        self.take_arrivals();
        if let Some(preamble) = self.preamble.take() {
            out.push(preamble);
        }
        let start = out.remaining();
        let mut batch = Batch {
            more_pending: false,
            finished: false,
            messages: 0,
            oldest: None,
        };
        for _ in 0..self.ready.len() {
            let taken = out.remaining() - start;
            if taken >= batch_bytes {
                break;
            }
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            let Some(followed) = self.followed.get_mut(&key) else {
                continue;
            };
            followed.queued = false;
            let read = followed.feed.next_batch(out, batch_bytes - taken)?;
            if !std::mem::replace(&mut followed.unwritten, true) {
                self.unwritten.push(key);
            }
            batch.messages += read.messages;
            batch.oldest = match (batch.oldest, read.oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if read.finished {
                // Its topic ended: everything it appended is taken (and written before the
                // next read, which lets go of nothing more).
                self.followed.remove(&key);
            } else if read.more_pending {
                self.mark_ready(key);
            }
        }
        batch.more_pending = !self.ready.is_empty();
        let taken = out.remaining() - start;
        self.read_stream(out, batch_bytes.saturating_sub(taken), &mut batch);
        batch.finished = self.draining && self.followed.is_empty() && self.stream_read();
        Ok(batch)
    }

    /// Called when everything taken is written: every topic read since lets go at once if
    /// it waits for room.
    pub(crate) fn written(&mut self) {
        for key in self.unwritten.drain(..) {
            if let Some(followed) = self.followed.get_mut(&key) {
                followed.unwritten = false;
                followed.feed.written();
            }
        }
    }

    /// Waits until a followed topic has appended (or finished), or a new one arrived.
    pub(crate) async fn changed(&mut self) {
        let arrivals = Arc::clone(&self.arrivals);
        loop {
            let signal = async {
                match self.signals.as_mut() {
                    Some(signals) if !signals.is_empty() => signals.next().await,
                    _ => std::future::pending().await,
                }
            };
            let streamed = async {
                match self.stream.as_mut() {
                    Some(stream) if self.stream_held.is_none() => stream.frames.recv().await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                // Followed at the next read.
                () = arrivals.arrived() => return,
                Some(frames) = streamed => {
                    self.stream_held = Some(frames);
                    return;
                }
                Some(key) = signal => {
                    if self.followed.contains_key(&key) {
                        self.mark_ready(key);
                        return;
                    }
                }
            }
        }
    }

    /// The server is shutting down: every followed topic drains (see [`TopicFeed::drain`]);
    /// the feed finishes once they all have.
    pub(crate) fn drain(&mut self) {
        self.draining = true;
        self.take_arrivals();
        for followed in self.followed.values() {
            followed.feed.drain();
        }
    }
}
