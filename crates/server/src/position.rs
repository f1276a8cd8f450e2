//! Sequence numbers and times: the position of every message a topic takes.
//!
//! Each topic incarnation numbers its messages consecutively from a start above anything it
//! could have had before: `max(unix time in µs, highest seq this process ever assigned + 1)`
//! (design.md section 6). The process-wide highest seq ([`SeqClock`]) rules out reuse after a
//! topic ends and is created again within the same microsecond tick; the clock rules it out
//! across restarts (as long as a topic takes fewer than a million messages a second on
//! average over its life). The topic actor is the only caller, once per batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use wspubsub_protocol::unix_micros;

/// The highest sequence number a process ever assigned, over all topics.
#[derive(Debug, Default)]
pub(crate) struct SeqClock {
    highest: AtomicU64,
}

/// The clock of this process.
pub(crate) static SEQ_CLOCK: SeqClock = SeqClock {
    highest: AtomicU64::new(0),
};

/// The unix time in microseconds now (0 for a clock before 1970).
pub(crate) fn now_micros() -> u64 {
    unix_micros(SystemTime::now()).unwrap_or(0)
}

impl SeqClock {
    /// The numbering of a new topic incarnation created at `now` (unix µs).
    pub(crate) fn incarnation(&'static self, now: u64) -> Sequence {
        let above = self.highest.load(Ordering::Acquire).saturating_add(1);
        Sequence {
            clock: self,
            next: now.max(above),
            last_time: 0,
        }
    }
}

/// One topic incarnation's numbering: consecutive sequence numbers and non-decreasing times.
#[derive(Debug)]
pub(crate) struct Sequence {
    clock: &'static SeqClock,
    next: u64,
    last_time: u64,
}

impl Sequence {
    /// The number the next message will get.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// Numbers a batch of `count` messages taken at `now` (unix µs): returns the first seq and
    /// the time to stamp them with (never before the previous batch's, even if the wall clock
    /// steps back, so that times order like seqs).
    pub(crate) fn take(&mut self, count: u64, now: u64) -> (u64, u64) {
        let first = self.next;
        self.next += count;
        self.last_time = self.last_time.max(now);
        if count > 0 {
            self.clock
                .highest
                .fetch_max(self.next - 1, Ordering::AcqRel);
        }
        (first, self.last_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> &'static SeqClock {
        Box::leak(Box::default())
    }

    #[test]
    fn seqs_are_consecutive_and_times_never_go_back() {
        let mut sequence = clock().incarnation(1_000);
        assert_eq!(sequence.take(3, 50), (1_000, 50));
        assert_eq!(sequence.take(2, 40), (1_003, 50), "the clock stepped back");
        assert_eq!(sequence.next(), 1_005);
    }

    #[test]
    fn a_new_incarnation_starts_above_every_seq_ever_assigned() {
        let clock = clock();
        let mut first = clock.incarnation(1_000);
        first.take(5_000, 0);
        // Recreated while the clock still reads less than the seqs the first one reached.
        let second = clock.incarnation(2_000);
        assert_eq!(second.next(), 6_000);
        // And once the clock is ahead, it starts at the clock.
        assert_eq!(clock.incarnation(10_000).next(), 10_000);
        // An older incarnation that keeps numbering raises the floor for the next one.
        first.take(10_000, 0);
        assert_eq!(clock.incarnation(10_000).next(), 16_000);
    }

    #[test]
    fn the_process_clock_never_hands_out_a_seq_twice_for_a_recreated_topic() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            let mut sequence = SEQ_CLOCK.incarnation(now_micros());
            for _ in 0..50 {
                let (first, _) = sequence.take(1, now_micros());
                assert!(seen.insert(first), "seq {first} reused");
            }
        }
    }
}
