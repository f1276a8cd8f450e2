//! Publisher acks in stream mode: the topic actor tells each stream-mode publisher how many of
//! its messages are stored (appended to the backlog and history) and the seq of the last.
//!
//! Each such publisher has one [`AckCell`], a `watch` its connection task waits on; the actor
//! notes the publisher's messages as it numbers a batch ([`Pending::note`]) and reports them
//! once the batch is appended ([`Pending::report`]): one update per publisher per batch, and
//! the publisher's task coalesces whatever piled up while it was busy into one ack. Raw
//! publishers have no cell and cost the actor nothing.

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

/// The acks of the batch being appended, one entry per run of one publisher's messages.
#[derive(Debug, Default)]
pub(super) struct Pending {
    runs: Vec<(AckCell, Acked)>,
}

impl Pending {
    /// Message `seq` came from the publisher of `cell`.
    pub(super) fn note(&mut self, cell: &AckCell, seq: u64) {
        match self.runs.last_mut() {
            Some((last, acked)) if Arc::ptr_eq(last, cell) => {
                acked.count += 1;
                acked.seq = seq;
            }
            _ => self.runs.push((Arc::clone(cell), Acked { count: 1, seq })),
        }
    }

    /// The noted messages are stored: tells their publishers.
    pub(super) fn report(&mut self) {
        for (cell, run) in self.runs.drain(..) {
            cell.send_modify(|acked| {
                acked.count += run.count;
                acked.seq = run.seq;
            });
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
        pending.report();
        assert_eq!(*one.borrow(), Acked { count: 3, seq: 13 });
        assert_eq!(*two.borrow(), Acked { count: 1, seq: 12 });
        pending.note(&two, 14);
        pending.report();
        assert_eq!(*two.borrow(), Acked { count: 2, seq: 14 });
    }
}
