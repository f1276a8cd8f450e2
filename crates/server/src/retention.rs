//! History across topics: each topic's [`History`] behind a lock ([`TopicHistory`]), the
//! process-wide byte budget that evicts oldest-first across topics ([`HistoryPool`]), the
//! joining of a subscriber at its start position, and the history metrics.
//!
//! Lock order: a topic's backlog (its `watch` lock) before its history, the pool's registry
//! before any history. A topic appends and a subscriber joins under the backlog lock, so the
//! replay a subscriber gets ends exactly where its live cursor begins.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use wspubsub_fanout::{
    Evictions, Form, FrameQueue, GapReason, History, HistoryLimits, Record, Wanted,
};
use wspubsub_protocol::{Start, StartPosition};

use crate::options::Options;
use crate::position::now_micros;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EvictionLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GapLabel {
    reason: &'static str,
    outcome: &'static str,
}

/// The history metrics, registered with the server's others.
#[derive(Debug, Clone, Default)]
pub(crate) struct HistoryMetrics {
    messages: Gauge,
    bytes: Gauge,
    evictions: Family<EvictionLabel, Counter>,
    replays: Counter,
    gaps: Family<GapLabel, Counter>,
}

impl HistoryMetrics {
    /// Adds them to `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "history_messages",
            "Messages held in topic histories",
            self.messages.clone(),
        );
        registry.register(
            "history_bytes",
            "Frame bytes held in topic histories",
            self.bytes.clone(),
        );
        registry.register(
            "history_evictions",
            "Messages evicted from history, by the bound that evicted them",
            self.evictions.clone(),
        );
        registry.register(
            "history_replays",
            "Subscribers that started from a position in history",
            self.replays.clone(),
        );
        registry.register(
            "history_gaps",
            "Start positions history did not cover, by reason and whether the gap was refused or accepted",
            self.gaps.clone(),
        );
    }

    fn evicted(&self, reason: &'static str, count: u64) {
        if count > 0 {
            self.evictions
                .get_or_create(&EvictionLabel { reason })
                .inc_by(count);
        }
    }

    fn gap(&self, reason: GapReason, outcome: &'static str) {
        self.gaps
            .get_or_create(&GapLabel {
                reason: reason.as_str(),
                outcome,
            })
            .inc();
    }
}

/// Every topic's history, and the process-wide budget on their bytes.
#[derive(Debug)]
pub(crate) struct HistoryPool {
    limits: HistoryLimits,
    total_bytes: usize,
    /// The histories of live topics (dead entries are pruned as the budget is enforced).
    registry: Mutex<Vec<Weak<TopicHistory>>>,
    metrics: HistoryMetrics,
}

impl HistoryPool {
    /// A pool with the bounds of `options`, reporting to `metrics`.
    pub(crate) fn new(options: &Options, metrics: HistoryMetrics) -> Self {
        HistoryPool {
            limits: HistoryLimits {
                messages: options.history_messages,
                bytes: options.history_bytes,
                age_micros: u64::try_from(options.history_age.as_micros()).unwrap_or(u64::MAX),
            },
            total_bytes: options.history_total_bytes,
            registry: Mutex::default(),
            metrics,
        }
    }

    /// The history of a new topic incarnation whose first message gets `start`.
    pub(crate) fn open(self: &Arc<Self>, start: u64) -> Arc<TopicHistory> {
        let history = Arc::new(TopicHistory {
            history: Mutex::new(History::new(self.limits, start)),
            pool: Arc::clone(self),
        });
        if self.limits.messages > 0 {
            let mut registry = lock(&self.registry);
            if registry.len() == registry.capacity() {
                // Before the list grows, forget the topics that ended: amortized O(1), and the
                // list stays within twice the live topics.
                registry.retain(|history| history.strong_count() > 0);
            }
            registry.push(Arc::downgrade(&history));
        }
        history
    }

    /// Whether history is on.
    pub(crate) fn enabled(&self) -> bool {
        self.limits.messages > 0
    }

    /// Evicts the oldest messages across topics until every history together is within the
    /// process-wide byte budget.
    pub(crate) fn enforce_total(&self) {
        if self.held_bytes() <= self.total_bytes {
            return;
        }
        let mut registry = lock(&self.registry);
        registry.retain(|history| history.strong_count() > 0);
        let live: Vec<Arc<TopicHistory>> = registry.iter().filter_map(Weak::upgrade).collect();
        // The histories by the time of their oldest message: one scan, then O(log topics) per
        // message evicted. Topics only ever append newer messages meanwhile, so a history's
        // oldest time can only have grown since it was read (evicting it a little early).
        let mut oldest: BinaryHeap<Reverse<(u64, usize)>> = live
            .iter()
            .enumerate()
            .filter_map(|(index, history)| Some(Reverse((history.lock().oldest_time()?, index))))
            .collect();
        let mut evicted = 0;
        while self.held_bytes() > self.total_bytes {
            let Some(Reverse((_, index))) = oldest.pop() else {
                break;
            };
            let next = live[index].update(|history| {
                history.evict_oldest();
                history.oldest_time()
            });
            evicted += 1;
            if let Some(time) = next {
                oldest.push(Reverse((time, index)));
            }
        }
        self.metrics.evicted("total_bytes", evicted);
    }

    fn held_bytes(&self) -> usize {
        usize::try_from(self.metrics.bytes.get()).unwrap_or(0)
    }
}

/// One topic's history, counted in the pool while it lives.
#[derive(Debug)]
pub(crate) struct TopicHistory {
    history: Mutex<History>,
    pool: Arc<HistoryPool>,
}

/// What a joining subscriber replays before its live stream.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// Frames, by reference, oldest first, each with the number of messages it holds.
    parts: VecDeque<(Bytes, u64)>,
}

impl Replay {
    /// Queues `frame` (control frames, no message) before everything else.
    pub(crate) fn prepend(&mut self, frame: Bytes) {
        self.parts.push_front((frame, 0));
    }

    /// Queues the next parts, about `batch_bytes` of them, into `out`; returns how many
    /// messages, or `None` once the replay is over.
    pub(crate) fn take(&mut self, out: &mut FrameQueue, batch_bytes: usize) -> Option<u64> {
        if self.parts.is_empty() {
            return None;
        }
        let (mut bytes, mut messages) = (0, 0);
        while bytes < batch_bytes {
            let Some((part, count)) = self.parts.pop_front() else {
                break;
            };
            bytes += part.len();
            messages += count;
            out.push(part);
        }
        Some(messages)
    }
}

/// What a topic's history holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistorySummary {
    /// Messages held.
    pub(crate) messages: usize,
    /// Frame bytes held.
    pub(crate) bytes: usize,
    /// The oldest message's seq, if any is held.
    pub(crate) oldest_seq: Option<u64>,
    /// The newest message's seq, if any is held.
    pub(crate) newest_seq: Option<u64>,
}

/// A start position history does not cover, for a subscriber that did not accept gaps: the
/// refusal (416) names the earliest position available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "start position not in history ({}): the earliest position available is {earliest}; add gap=ok to accept the gap",
    reason.as_str()
)]
pub(crate) struct HistoryGap {
    /// Why.
    pub(crate) reason: GapReason,
    /// The earliest position history has (the next message's, for a position ahead of it).
    pub(crate) earliest: u64,
}

impl TopicHistory {
    fn lock(&self) -> MutexGuard<'_, History> {
        lock(&self.history)
    }

    /// Runs `change` on the history, keeping the pool's gauges in step.
    fn update<R>(&self, change: impl FnOnce(&mut History) -> R) -> R {
        let mut history = self.lock();
        let (messages, bytes) = (history.messages(), history.bytes());
        let result = change(&mut history);
        let metrics = &self.pool.metrics;
        metrics.messages.inc_by(delta(messages, history.messages()));
        metrics.bytes.inc_by(delta(bytes, history.bytes()));
        result
    }

    /// Appends the records the topic just took at `now` (unix µs; under its backlog lock)
    /// and evicts what the per-topic bounds no longer hold.
    pub(crate) fn append(&self, records: impl Iterator<Item = Record>, now: u64) {
        let (evictions, expired) = self.update(|history| {
            let mut evictions = Evictions::default();
            for record in records {
                let more = history.push(record);
                evictions.messages += more.messages;
                evictions.bytes += more.bytes;
            }
            (evictions, history.expire(now))
        });
        let metrics = &self.pool.metrics;
        metrics.evicted("messages", evictions.messages);
        metrics.evicted("bytes", evictions.bytes);
        metrics.evicted("age", expired);
    }

    /// Cluster mode: the node has loaded what the stream held of the topic (see
    /// [`History::loaded`]).
    pub(crate) fn loaded(&self, evicted_below: u64, evicted_until: u64, next: u64) {
        self.lock().loaded(evicted_below, evicted_until, next);
    }

    /// Evicts what is older than the age bound; returns whether anything is left.
    pub(crate) fn expire(&self) -> bool {
        let now = now_micros();
        let (expired, left) = self.update(|history| (history.expire(now), history.messages()));
        self.pool.metrics.evicted("age", expired);
        left > 0
    }

    /// The sequence number the next message will get (for tests).
    #[cfg(test)]
    pub(crate) fn lock_head(&self) -> u64 {
        self.lock().head()
    }

    /// Evicts across topics what the process-wide budget no longer holds.
    pub(crate) fn enforce_total(&self) {
        self.pool.enforce_total();
    }

    /// What history holds now, for the admin API.
    pub(crate) fn summary(&self) -> HistorySummary {
        let history = self.lock();
        let held = history.messages() > 0;
        HistorySummary {
            messages: history.messages(),
            bytes: history.bytes(),
            oldest_seq: held.then(|| history.earliest()),
            newest_seq: held.then(|| history.head() - 1),
        }
    }

    /// When the newest message held was taken (unix µs), if history holds any.
    pub(crate) fn newest_time(&self) -> Option<u64> {
        self.lock().newest_time()
    }

    /// Where a subscriber starting at `start` begins, and what it replays (in `form`, of topic
    /// `topic`) up to the head; called under the topic's backlog lock, so the replay ends
    /// where the live stream begins.
    pub(crate) fn join(&self, start: Start, form: Form, topic: &str) -> Result<Joined, HistoryGap> {
        let wanted = match start.position {
            StartPosition::Latest => None,
            StartPosition::Earliest => Some(None),
            StartPosition::Seq(seq) => Some(Some(Wanted::Seq(seq))),
            StartPosition::Since(time) => Some(Some(Wanted::Since(time))),
        };
        let now = now_micros();
        let (joined, located, expired) = self.update(|history| {
            let expired = if wanted.is_some() {
                history.expire(now)
            } else {
                0
            };
            let (head, earliest) = (history.head(), history.earliest());
            let located = match wanted {
                None => Ok(head),
                Some(None) => Ok(earliest),
                Some(Some(wanted)) => history.locate(wanted).map_err(|gap| {
                    let asked = match wanted {
                        Wanted::Seq(seq) => seq,
                        Wanted::Since(_) => history.start(),
                    };
                    (gap, asked)
                }),
            };
            let from = match located {
                Ok(from) => from,
                Err((gap, _)) => gap.resume,
            };
            let mut parts = Vec::new();
            if wanted.is_some() && (located.is_ok() || start.gap_ok) {
                history.replay(from, form, topic, &mut parts);
            }
            let joined = Joined {
                replay: Replay {
                    parts: parts.into(),
                },
                position: JoinPosition {
                    from,
                    head,
                    earliest,
                    gap: None,
                },
            };
            (joined, located, expired)
        });
        let metrics = &self.pool.metrics;
        metrics.evicted("age", expired);
        if wanted.is_none() {
            return Ok(joined);
        }
        let mut joined = joined;
        match located {
            Err((gap, _)) if !start.gap_ok => {
                metrics.gap(gap.reason, "refused");
                return Err(HistoryGap {
                    reason: gap.reason,
                    earliest: gap.resume,
                });
            }
            Err((gap, asked)) => {
                metrics.gap(gap.reason, "accepted");
                joined.position.gap = Some(SkippedGap {
                    reason: gap.reason,
                    asked,
                });
            }
            Ok(_) => {}
        }
        metrics.replays.inc();
        Ok(joined)
    }
}

/// Where a joining subscriber begins, where the topic stands, and what it replays first.
#[derive(Debug)]
pub(crate) struct Joined {
    /// What it replays before its live stream.
    pub(crate) replay: Replay,
    /// Where it begins, and where the topic stands.
    pub(crate) position: JoinPosition,
}

/// Where a joining subscriber begins and where the topic stands: its `subscribed` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JoinPosition {
    /// The seq its delivery begins with.
    pub(crate) from: u64,
    /// The seq the next new message will get.
    pub(crate) head: u64,
    /// The oldest seq history holds (the head when it holds none).
    pub(crate) earliest: u64,
    /// The gap it accepted, if its start position was not covered.
    pub(crate) gap: Option<SkippedGap>,
}

/// A gap a subscriber accepted: it asked for `asked` and begins at [`JoinPosition::from`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SkippedGap {
    /// Why the messages are missing.
    pub(crate) reason: GapReason,
    /// The position it asked for (for a time, the topic incarnation's first seq).
    pub(crate) asked: u64,
}

impl Drop for TopicHistory {
    fn drop(&mut self) {
        let history = self.lock();
        let metrics = &self.pool.metrics;
        metrics.messages.dec_by(count(history.messages()));
        metrics.bytes.dec_by(count(history.bytes()));
    }
}

fn count(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// `after - before` as a gauge step.
fn delta(before: usize, after: usize) -> i64 {
    count(after) - count(before)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding these locks; if one ever did, the data is still consistent
    // enough to count and evict.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use wspubsub_fanout::RecordBuilder;

    use super::*;

    fn pool(options: &Options) -> Arc<HistoryPool> {
        Arc::new(HistoryPool::new(options, HistoryMetrics::default()))
    }

    /// One record of `count` 10-byte messages (12-byte frames) from `first`, taken now.
    fn record(first: u64, count: u64, time: u64) -> Record {
        let mut builder = RecordBuilder::new(usize::MAX);
        for seq in first..first + count {
            let _ = builder.push(&[0; 10], Instant::now(), seq, time);
        }
        builder.finish().expect("a record")
    }

    #[test]
    fn the_total_budget_evicts_the_oldest_messages_across_topics() {
        let pool = pool(&Options {
            history_total_bytes: 60,
            ..Options::default()
        });
        let now = now_micros();
        let old = pool.open(0);
        let new = pool.open(0);
        old.append(std::iter::once(record(0, 3, now - 10)), now);
        new.append(std::iter::once(record(0, 3, now)), now);
        assert_eq!(pool.metrics.bytes.get(), 72);
        pool.enforce_total();
        assert_eq!(pool.metrics.bytes.get(), 60);
        assert_eq!(old.lock().messages(), 2, "the oldest message went");
        assert_eq!(new.lock().messages(), 3);
        assert_eq!(
            pool.metrics
                .evictions
                .get_or_create(&EvictionLabel {
                    reason: "total_bytes"
                })
                .get(),
            1
        );
        drop(old);
        assert_eq!(
            pool.metrics.messages.get(),
            3,
            "a dropped history is uncounted"
        );
    }

    #[test]
    fn join_refuses_a_gap_unless_accepted_and_replays_to_the_head() {
        let pool = pool(&Options {
            history_messages: 2,
            ..Options::default()
        });
        let history = pool.open(100);
        history.append(std::iter::once(record(100, 3, now_micros())), now_micros());
        let seq = |from| Start {
            position: StartPosition::Seq(from),
            gap_ok: false,
        };
        let messages = |joined: Result<Joined, HistoryGap>| {
            joined.map(|mut joined| joined.replay.take(&mut FrameQueue::default(), usize::MAX))
        };
        assert_eq!(
            messages(history.join(seq(101), Form::Raw, "/t")),
            Ok(Some(2))
        );
        assert_eq!(
            history.join(seq(100), Form::Raw, "/t").err(),
            Some(HistoryGap {
                reason: GapReason::HistoryEvicted,
                earliest: 101
            })
        );
        let accepted = Start {
            gap_ok: true,
            ..seq(100)
        };
        let joined = history.join(accepted, Form::Raw, "/t").expect("accepted");
        let position = joined.position;
        assert_eq!(
            (position.from, position.head, position.earliest),
            (101, 103, 101)
        );
        assert_eq!(
            position.gap,
            Some(SkippedGap {
                reason: GapReason::HistoryEvicted,
                asked: 100
            })
        );
        assert_eq!(messages(Ok(joined)), Ok(Some(2)));
        let refused = pool.metrics.gaps.get_or_create(&GapLabel {
            reason: "history_evicted",
            outcome: "refused",
        });
        assert_eq!(refused.get(), 1);
        assert_eq!(pool.metrics.replays.get(), 2);
    }

    #[test]
    fn messages_past_the_age_are_expired() {
        let pool = pool(&Options {
            history_age: Duration::from_secs(1),
            ..Options::default()
        });
        let history = pool.open(0);
        history.append(
            std::iter::once(record(0, 2, now_micros() - 2_000_000)),
            now_micros(),
        );
        assert_eq!(history.lock().messages(), 0, "expired as it was appended");
        history.append(std::iter::once(record(2, 2, now_micros())), now_micros());
        assert!(history.expire(), "fresh messages stay");
        assert_eq!(pool.metrics.messages.get(), 2);
    }
}
