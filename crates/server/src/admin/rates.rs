//! Current rates: each topic's counters sampled whenever the API is read, the rate being the
//! change since the newest sample at least [`WINDOW`] old (or the topic's start, or the first
//! read after it). Nothing runs between reads, and a topic nobody looks at costs nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::stats::Traffic;

/// How far back the rates look, about.
pub(crate) const WINDOW: Duration = Duration::from_secs(5);

/// Most samples kept per topic (a dashboard polling faster than this many per window only
/// shortens the window).
const MAX_SAMPLES: usize = 32;

/// A topic's counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// What the topic took.
    pub(crate) taken: Traffic,
    /// What was written to its subscribers.
    pub(crate) delivered: Traffic,
}

/// Per-second rates of a topic's counters, over `seconds`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub(crate) struct Rate {
    /// Messages taken per second.
    pub(crate) messages_in: f64,
    /// Payload bytes taken per second.
    pub(crate) bytes_in: f64,
    /// Messages written to subscribers per second.
    pub(crate) messages_out: f64,
    /// Bytes written to subscribers per second.
    pub(crate) bytes_out: f64,
    /// The interval the rates are over.
    pub(crate) seconds: f64,
}

/// Every topic's recent samples, by name.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    topics: Mutex<HashMap<Arc<str>, Samples>>,
}

#[derive(Debug)]
struct Samples {
    /// The start of the topic incarnation sampled (a reborn topic starts from zero).
    started: Instant,
    points: VecDeque<(Instant, Totals)>,
}

impl Rates {
    /// Samples topic `name` (started at `started`) at `now`, and says its current rates.
    pub(crate) fn sample(
        &self,
        name: &Arc<str>,
        started: Instant,
        now: Instant,
        totals: Totals,
    ) -> Rate {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        let samples = topics.entry(Arc::clone(name)).or_insert_with(|| Samples {
            started,
            points: VecDeque::new(),
        });
        if samples.started != started {
            samples.started = started;
            samples.points.clear();
        }
        let since = now.checked_sub(WINDOW);
        // Keep one sample at least a window old, as the baseline; drop what is older.
        while samples.points.len() > 1 && since.is_some_and(|since| samples.points[1].0 <= since)
            || samples.points.len() >= MAX_SAMPLES
        {
            samples.points.pop_front();
        }
        let (then, before) = samples
            .points
            .front()
            .copied()
            .unwrap_or((started, Totals::default()));
        samples.points.push_back((now, totals));
        rate(before, totals, now.saturating_duration_since(then))
    }

    /// Forgets the topics not in `live` (they ended).
    pub(crate) fn keep_only(&self, live: &[Arc<str>]) {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        topics.retain(|name, _| live.contains(name));
    }
}

/// The rates of going from `before` to `after` in `elapsed`.
fn rate(before: Totals, after: Totals, elapsed: Duration) -> Rate {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return Rate::default();
    }
    let per_second = |before: u64, after: u64| after.saturating_sub(before) as f64 / seconds;
    Rate {
        messages_in: per_second(before.taken.messages, after.taken.messages),
        bytes_in: per_second(before.taken.bytes, after.taken.bytes),
        messages_out: per_second(before.delivered.messages, after.delivered.messages),
        bytes_out: per_second(before.delivered.bytes, after.delivered.bytes),
        seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(messages: u64) -> Totals {
        Totals {
            taken: Traffic {
                messages,
                bytes: messages * 10,
            },
            delivered: Traffic {
                messages: messages * 2,
                bytes: messages * 20,
            },
        }
    }

    #[test]
    fn rates_are_over_the_last_window_and_restart_with_the_topic() {
        let rates = Rates::default();
        let name: Arc<str> = "/t".into();
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        let first = rates.sample(&name, start, at(2), taken(20));
        assert_eq!(
            (first.messages_in, first.seconds),
            (10.0, 2.0),
            "since start"
        );
        assert_eq!(
            (first.bytes_in, first.messages_out, first.bytes_out),
            (100.0, 20.0, 200.0)
        );
        let second = rates.sample(&name, start, at(4), taken(30));
        assert_eq!(second.messages_in, 5.0, "since the sample at 2 s");
        rates.sample(&name, start, at(8), taken(30));
        let late = rates.sample(&name, start, at(10), taken(30));
        assert_eq!(
            (late.messages_in, late.seconds),
            (0.0, 6.0),
            "the baseline is the newest sample at least 5 s old"
        );
        let reborn = rates.sample(&name, at(10), at(11), taken(3));
        assert_eq!(reborn.messages_in, 3.0, "a new topic counts from its start");
        rates.keep_only(&[]);
        let fresh = rates.sample(&name, at(10), at(12), taken(4));
        assert_eq!(fresh.messages_in, 2.0, "forgotten samples start over");
    }
}
