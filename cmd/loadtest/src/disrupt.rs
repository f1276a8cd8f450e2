//! `--disrupt N`: a stream-mode subscriber behind its own proxy, whose connection the run
//! breaks N times (a TCP reset, as a network would) and which must still get every message,
//! by resuming from the server's history.
//!
//! The resets come after random message counts, uniform over the messages the subscriber
//! expects, so that they fall anywhere in the run. Each one waits for the reconnect of the
//! one before: a reset of a subscriber that is still reconnecting would break nothing, and
//! two drops would count as one.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use wspubsub_netfault::Proxy;
use wspubsub_server::Options;
use wspubsub_subclient::{Event, Reconnect, StreamSubscriber, SubscriberOptions};
use wspubsub_testdata::DataSet;

use crate::progress::Progress;
use crate::report::Gap;
use crate::run::{LoadTest, Received, ended_early};

/// First delay before a disrupted subscriber connects again: short, since the drops are ours.
const RECONNECT_INITIAL: Duration = Duration::from_millis(10);

/// Longest delay between two of its attempts.
const RECONNECT_MAX: Duration = Duration::from_millis(500);

/// Room per message for what a frame in history holds besides the payload (WebSocket and
/// envelope headers), generously.
const FRAME_OVERHEAD: usize = 64;

/// Options for a server that `test` runs against in-process: the defaults, with history
/// enough for the whole run when the run is disrupted. A subscriber may be almost a whole
/// run behind when its connection breaks (nothing holds publishers back until it is
/// `--subscriber-queue-bytes` behind), and resumes only if history still holds its position.
pub fn in_process_options(data: &DataSet, test: &LoadTest) -> Options {
    let defaults = Options::default();
    if test.disrupt == 0 {
        return defaults;
    }
    let messages = test.publishers.saturating_mul(data.len());
    let bytes = usize::try_from(data.total_bytes())
        .unwrap_or(usize::MAX)
        .saturating_add(data.len().saturating_mul(FRAME_OVERHEAD))
        .saturating_mul(test.publishers);
    Options {
        history_messages: defaults.history_messages.max(messages),
        history_bytes: defaults.history_bytes.max(bytes),
        history_total_bytes: defaults.history_total_bytes.max(bytes),
        ..defaults
    }
}

/// How a disrupted subscriber connects: stream mode, reconnecting quickly.
pub(crate) fn subscriber_options() -> SubscriberOptions {
    SubscriberOptions::default().reconnect(Reconnect::new(RECONNECT_INITIAL, RECONNECT_MAX))
}

/// The message counts after which to reset, ascending: `resets` of them, uniform in
/// `1..wanted` (so that each falls before the last message), or all 0 when `wanted` < 2.
pub(crate) fn reset_points(resets: usize, wanted: usize) -> Vec<usize> {
    let mut points: Vec<usize> = (0..resets)
        .map(|_| {
            if wanted < 2 {
                0
            } else {
                rand::random_range(1..wanted)
            }
        })
        .collect();
    points.sort_unstable();
    points
}

/// A subscriber's resets: which are due, and whether the last one's reconnect came.
#[derive(Debug)]
struct Resets {
    /// Message counts after which to reset, ascending.
    points: Vec<usize>,
    /// Resets that broke a connection.
    done: usize,
    /// Whether the last reset's reconnect is still to come.
    awaiting: bool,
}

impl Resets {
    /// Resets `proxy` if a reset is due after `received` messages and the last one's
    /// reconnect came. A reset that finds no connection open (the subscriber is between
    /// connections for a reason of its own) does not count, and is tried again later.
    fn maybe_reset(&mut self, received: usize, proxy: &Proxy) {
        let due = self.points.get(self.done).is_some_and(|&at| received >= at);
        if due && !self.awaiting && proxy.reset() > 0 {
            self.done += 1;
            self.awaiting = true;
        }
    }

    /// Whether every reset was made and reconnected from.
    fn finished(&self) -> bool {
        self.done == self.points.len() && !self.awaiting
    }
}

/// Reads `wanted` messages while breaking the connection through `proxy` at `points`, then
/// waits for the last reconnect and closes. Stops at the first gap: the messages it names
/// will never come.
pub(crate) async fn collect(
    mut subscriber: StreamSubscriber,
    proxy: Proxy,
    points: Vec<usize>,
    wanted: usize,
    progress: &Progress,
) -> Received {
    let mut received = Received::new(wanted);
    let mut resets = Resets {
        points,
        done: 0,
        awaiting: false,
    };
    while received.messages.len() < wanted || !resets.finished() {
        resets.maybe_reset(received.messages.len(), &proxy);
        match subscriber.next().await {
            Some(Ok(event)) => {
                let counted = record(&mut received, &mut resets, event);
                progress.delivered(counted);
                if !received.gaps.is_empty() {
                    break;
                }
                if received.messages.len() == wanted && received.completed_at.is_none() {
                    received.completed_at = Some(Instant::now());
                }
            }
            ended => {
                received.ended_early = Some(ended_early(ended));
                return received;
            }
        }
    }
    let stopped_at_gap = !received.gaps.is_empty();
    // Anything that arrives before our close is a duplicate, or one more reconnect.
    let _ = subscriber.close().await;
    while let Some(Ok(event)) = subscriber.next().await {
        record(&mut received, &mut resets, event);
    }
    if stopped_at_gap {
        received.completed_at = None;
    }
    received
}

/// Adds `event` to what the subscriber received; returns the messages it counts (0 or 1).
fn record(received: &mut Received, resets: &mut Resets, event: Event) -> u64 {
    match event {
        Event::Message(message) => {
            received.messages.push(message.payload);
            return 1;
        }
        Event::Reconnected { from, after } => {
            received.reconnects += 1;
            if resets.awaiting {
                resets.awaiting = false;
            } else {
                received
                    .unplanned
                    .push(format!("reconnected at {from} after {after}"));
            }
        }
        Event::Gap { from, to, reason } => received.gaps.push(Gap { from, to, reason }),
        // Events of later versions of the client say nothing about delivery.
        _ => {}
    }
    0
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn a_disrupted_in_process_server_keeps_the_whole_run_in_history() {
        let data = DataSet::from_messages(vec![Bytes::from(vec![7; 64 << 10]); 300]);
        let mut test = LoadTest::default();
        let defaults = Options::default();
        let plain = in_process_options(&data, &test);
        assert_eq!(
            (plain.history_messages, plain.history_bytes),
            (defaults.history_messages, defaults.history_bytes),
            "undisrupted: the defaults"
        );
        test.disrupt = 1;
        let disrupted = in_process_options(&data, &test);
        assert_eq!(disrupted.history_messages, 5 * 300);
        assert!(disrupted.history_bytes >= 5 * 300 * (64 << 10));
        assert!(disrupted.history_total_bytes >= disrupted.history_bytes);
        assert_eq!(disrupted.validate(), Ok(()));
    }

    #[test]
    fn reset_points_fall_before_the_last_message_in_order() {
        for _ in 0..100 {
            let points = reset_points(3, 10);
            assert_eq!(points.len(), 3);
            assert!(points.is_sorted(), "{points:?}");
            assert!(points.iter().all(|&at| (1..10).contains(&at)), "{points:?}");
        }
        assert_eq!(reset_points(2, 1), [0, 0], "nothing to spread over");
        assert!(reset_points(0, 10).is_empty());
    }
}
