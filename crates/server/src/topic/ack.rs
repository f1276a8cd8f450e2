//! Publisher acks in stream mode: the topic actor tells each stream-mode publisher how many of
//! its messages are stored (appended to the backlog and history) and the seq of the last.
//!
//! Each such publisher has one [`AckCell`], a `watch` its connection task waits on; the actor
//! notes the publisher's messages as it numbers a batch ([`Pending::note`]) and reports them
//! as soon as they are appended ([`Pending::report_below`]): once per batch, or once per part
//! of a batch when a held topic appends it in parts, so that no ack waits for the rest of its
//! batch to find room. The publisher's task coalesces whatever piled up while it was busy into
//! one ack. Raw publishers have no cell and cost the actor nothing.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;

/// What a publisher's messages have reached: its first `count` messages are stored, the
/// last as `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Acked {
    /// Messages of the connection stored so far.
    pub(crate) count: u64,
    /// Seq of the last of them.
    pub(crate) seq: u64,
}

/// One stream-mode publisher's acks, written by the actor.
pub(crate) type AckCell = Arc<watch::Sender<Acked>>;

/// The acks of the batch being appended, one entry per run of one publisher's messages (a
/// run's messages have consecutive seqs, the last being its `seq`).
#[derive(Debug, Default)]
pub(super) struct Pending {
    runs: VecDeque<(AckCell, Acked)>,
}

impl Pending {
    /// Message `seq` came from the publisher of `cell`.
    pub(super) fn note(&mut self, cell: &AckCell, seq: u64) {
        match self.runs.back_mut() {
            Some((last, acked)) if Arc::ptr_eq(last, cell) => {
                acked.count += 1;
                acked.seq = seq;
            }
            _ => self
                .runs
                .push_back((Arc::clone(cell), Acked { count: 1, seq })),
        }
    }

    /// The noted messages below seq `end` are stored: tells their publishers, and keeps the
    /// rest noted.
    pub(super) fn report_below(&mut self, end: u64) {
        while let Some((cell, run)) = self.runs.front_mut() {
            let first = run.seq + 1 - run.count;
            if first >= end {
                return;
            }
            let stored = Acked {
                count: run.count.min(end - first),
                seq: run.seq.min(end - 1),
            };
            cell.send_modify(|acked| {
                acked.count += stored.count;
                acked.seq = stored.seq;
            });
            if stored.count < run.count {
                run.count -= stored.count;
                return;
            }
            self.runs.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_one_publisher_are_reported_cumulatively() {
        let one: AckCell = Arc::new(watch::Sender::new(Acked::default()));
        let two: AckCell = Arc::new(watch::Sender::new(Acked::default()));
        let mut pending = Pending::default();
        for (cell, seq) in [(&one, 10), (&one, 11), (&two, 12), (&one, 13)] {
            pending.note(cell, seq);
        }
        assert_eq!(*one.borrow(), Acked::default(), "nothing before the append");
        pending.report_below(u64::MAX);
        assert_eq!(*one.borrow(), Acked { count: 3, seq: 13 });
        assert_eq!(*two.borrow(), Acked { count: 1, seq: 12 });
        pending.note(&two, 14);
        pending.report_below(u64::MAX);
        assert_eq!(*two.borrow(), Acked { count: 2, seq: 14 });
    }

    #[test]
    fn a_batch_stored_in_parts_is_acked_part_by_part() {
        let one: AckCell = Arc::new(watch::Sender::new(Acked::default()));
        let two: AckCell = Arc::new(watch::Sender::new(Acked::default()));
        let mut pending = Pending::default();
        for (cell, seq) in [(&one, 20), (&one, 21), (&one, 22), (&two, 23), (&two, 24)] {
            pending.note(cell, seq);
        }
        pending.report_below(20);
        assert_eq!(*one.borrow(), Acked::default(), "nothing below 20 is noted");
        pending.report_below(22);
        assert_eq!(
            *one.borrow(),
            Acked { count: 2, seq: 21 },
            "a run cut in two"
        );
        assert_eq!(*two.borrow(), Acked::default());
        pending.report_below(24);
        assert_eq!(*one.borrow(), Acked { count: 3, seq: 22 });
        assert_eq!(*two.borrow(), Acked { count: 1, seq: 23 });
        pending.report_below(u64::MAX);
        assert_eq!(*one.borrow(), Acked { count: 3, seq: 22 }, "reported once");
        assert_eq!(*two.borrow(), Acked { count: 2, seq: 24 });
    }
}
