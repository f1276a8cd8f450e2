//! Verdicts: did each subscriber get exactly what was published, and how fast.

use std::fmt;
use std::time::Duration;

use wspubsub_testdata::Digest;

use crate::order::{self, OrderMismatch, Sequence};
use crate::run::Received;

/// Messages a subscriber wanted that the server could no longer give it: history did not
/// cover its connection's outage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The first position it asked for.
    pub from: u64,
    /// Where delivery went on.
    pub to: u64,
    /// Why, as the server names it (`history_evicted`, `history_off`, ...).
    pub reason: String,
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gap: seq {}..{} lost ({})",
            self.from, self.to, self.reason
        )
    }
}

/// What every subscriber must end up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expected {
    /// Messages.
    pub(crate) messages: usize,
    /// SHA-256 over them, sorted.
    pub(crate) digest: Digest,
    /// Reconnects (`--disrupt`).
    pub(crate) reconnects: usize,
}

/// One subscriber's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Which subscriber (0-based).
    pub subscriber: usize,
    /// The node it was connected to (0-based index into the `--url` list).
    pub node: usize,
    /// Messages it received.
    pub received: usize,
    /// SHA-256 over what it received, sorted.
    pub digest: Digest,
    /// How its connection ended, if it ended before everything arrived.
    pub ended_early: Option<String>,
    /// Times it connected again and resumed (`--disrupt`; always 0 without).
    pub reconnects: usize,
    /// Reconnects that none of the run's resets caused, with why each connection ended.
    pub unplanned: Vec<String>,
    /// Gaps it was told of (it stops at the first).
    pub gaps: Vec<Gap>,
    /// Where the order it received first departs from the one most subscribers received;
    /// `None` if it is that order.
    pub order: Option<OrderMismatch>,
    /// Whether it received exactly the expected messages, in the run's one order, with no
    /// gap, after exactly the expected reconnects.
    pub passed: bool,
}

/// Judges every subscriber: `(subscriber, node, what it received)` each. Each must reach
/// `expected`, and all must have received the same sequence (see [`order`]).
pub(crate) fn judge_all(
    mut collected: Vec<(usize, usize, Received)>,
    expected: Expected,
) -> Vec<Verdict> {
    collected.sort_by_key(|(subscriber, ..)| *subscriber);
    let sequences: Vec<Sequence> = collected
        .iter()
        .map(|(_, _, received)| Sequence::of(&received.messages))
        .collect();
    let mut orders = order::check(&sequences);
    // `check` names positions in `collected`; name subscribers instead.
    for mismatch in orders.iter_mut().flatten() {
        mismatch.reference = collected[mismatch.reference].0;
    }
    collected
        .into_iter()
        .zip(orders)
        .map(|((subscriber, node, received), order)| {
            Verdict::judge(subscriber, node, received, order, expected)
        })
        .collect()
}

impl Verdict {
    /// Judges what a subscriber received against what was published, given how its order
    /// compares with the other subscribers'.
    fn judge(
        subscriber: usize,
        node: usize,
        received: Received,
        order: Option<OrderMismatch>,
        expected: Expected,
    ) -> Verdict {
        let count = received.messages.len();
        let digest = Digest::of_messages(received.messages);
        Verdict {
            subscriber,
            node,
            received: count,
            digest,
            passed: received.ended_early.is_none()
                && received.gaps.is_empty()
                && received.reconnects == expected.reconnects
                && count == expected.messages
                && digest == expected.digest
                && order.is_none(),
            order,
            ended_early: received.ended_early,
            reconnects: received.reconnects,
            unplanned: received.unplanned,
            gaps: received.gaps,
        }
    }
}

/// The result of a whole load test.
#[derive(Debug, Clone)]
pub struct Report {
    /// One verdict per subscriber, in subscriber order.
    pub verdicts: Vec<Verdict>,
    /// The digest every subscriber had to reach.
    pub expected: Digest,
    /// Messages every subscriber had to receive.
    pub expected_messages: usize,
    /// Reconnects every subscriber had to make (`--disrupt`).
    pub expected_reconnects: usize,
    /// Nodes the run was spread over (the `--url` list); with more than one, each verdict
    /// names its subscriber's node.
    pub nodes: usize,
    /// Bytes every subscriber had to receive.
    pub message_bytes: u64,
    /// From the first publish to the last subscriber's last message.
    pub elapsed: Duration,
    /// From the first connection to the last verdict.
    pub total_elapsed: Duration,
}

impl Report {
    /// Whether every subscriber passed.
    pub fn passed(&self) -> bool {
        !self.verdicts.is_empty() && self.verdicts.iter().all(|verdict| verdict.passed)
    }

    /// Messages delivered to all subscribers together.
    pub fn delivered_messages(&self) -> u64 {
        self.verdicts
            .iter()
            .map(|verdict| verdict.received as u64)
            .sum()
    }

    /// Delivered messages per second of publishing time.
    pub fn messages_per_second(&self) -> f64 {
        self.delivered_messages() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Delivered bytes per second of publishing time (counting only subscribers that passed
    /// would hide the failures, so this counts the expected bytes of every subscriber).
    pub fn bytes_per_second(&self) -> f64 {
        let delivered = self.message_bytes * self.verdicts.len() as u64;
        delivered as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for verdict in &self.verdicts {
            let status = if verdict.passed { "ok  " } else { "FAIL" };
            write!(f, "{status} subscriber {}", verdict.subscriber)?;
            if self.nodes > 1 {
                write!(f, " on node {}", verdict.node + 1)?;
            }
            write!(
                f,
                ": {} of {} messages, sha256 {}",
                verdict.received, self.expected_messages, verdict.digest
            )?;
            if self.expected_reconnects > 0 {
                write!(
                    f,
                    ", {} of {} reconnects",
                    verdict.reconnects, self.expected_reconnects
                )?;
            }
            if let Some(why) = &verdict.ended_early {
                write!(f, " (ended early: {why})")?;
            }
            for gap in &verdict.gaps {
                write!(f, " ({gap})")?;
            }
            for why in &verdict.unplanned {
                write!(f, " (unplanned: {why})")?;
            }
            if let Some(mismatch) = &verdict.order {
                write!(f, " ({mismatch})")?;
            }
            writeln!(f)?;
        }
        writeln!(f, "expected sha256 {}", self.expected)?;
        let reordered = self
            .verdicts
            .iter()
            .filter(|verdict| verdict.order.is_some())
            .count();
        match self
            .verdicts
            .iter()
            .find_map(|verdict| verdict.order.as_ref())
        {
            None => writeln!(
                f,
                "order: all {} subscribers received the same sequence",
                self.verdicts.len()
            )?,
            Some(mismatch) => writeln!(
                f,
                "order: {reordered} of {} subscribers received another sequence than subscriber {}",
                self.verdicts.len(),
                mismatch.reference
            )?,
        }
        writeln!(
            f,
            "delivered {} messages ({:.1} MB) in {:.3} s: {:.0} messages/s, {:.1} MB/s",
            self.delivered_messages(),
            (self.message_bytes * self.verdicts.len() as u64) as f64 / 1e6,
            self.elapsed.as_secs_f64(),
            self.messages_per_second(),
            self.bytes_per_second() / 1e6,
        )?;
        let passed = self
            .verdicts
            .iter()
            .filter(|verdict| verdict.passed)
            .count();
        write!(
            f,
            "{}: {passed} passed, {} failed",
            if self.passed() { "PASS" } else { "FAIL" },
            self.verdicts.len() - passed
        )
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use wspubsub_testdata::DataSet;

    use super::*;

    fn data() -> DataSet {
        DataSet::from_messages(vec![Bytes::from_static(b"one"), Bytes::from_static(b"two")])
    }

    fn expected(publishers: usize, reconnects: usize) -> Expected {
        Expected {
            messages: 2 * publishers,
            digest: data().expected_digest(publishers),
            reconnects,
        }
    }

    fn received(messages: &[&'static [u8]], ended_early: Option<&str>) -> Received {
        let mut received = Received::new(messages.len());
        received
            .messages
            .extend(messages.iter().map(|m| Bytes::from_static(m)));
        received.ended_early = ended_early.map(str::to_owned);
        received
    }

    /// One subscriber's verdict on node 1, with no other subscriber to compare orders with.
    fn judged(subscriber: usize, received: Received, expected: Expected) -> Verdict {
        Verdict::judge(subscriber, 0, received, None, expected)
    }

    fn report(verdicts: Vec<Verdict>, expected_reconnects: usize) -> Report {
        Report {
            verdicts,
            expected: data().expected_digest(1),
            expected_messages: 2,
            expected_reconnects,
            nodes: 1,
            message_bytes: 6,
            elapsed: Duration::from_secs(1),
            total_elapsed: Duration::from_secs(1),
        }
    }

    #[test]
    fn exact_copies_in_any_order_pass() {
        let verdict = judged(
            0,
            received(&[b"two", b"one", b"one", b"two"], None),
            expected(2, 0),
        );
        assert!(verdict.passed, "{verdict:?}");
    }

    #[test]
    fn loss_duplication_alteration_and_early_end_fail() {
        let cases: [(&[&'static [u8]], Option<&str>); 4] = [
            (&[b"two", b"one", b"one"], None),                        // lost
            (&[b"two", b"one", b"one", b"two", b"two"], None),        // duplicated
            (&[b"two", b"one", b"one", b"twO"], None),                // altered
            (&[b"two", b"one", b"one", b"two"], Some("closed 4000")), // ended early
        ];
        for (messages, ended_early) in cases {
            let verdict = judged(0, received(messages, ended_early), expected(2, 0));
            assert!(!verdict.passed, "{messages:?} {ended_early:?}");
        }
    }

    #[test]
    fn a_disrupted_subscriber_passes_only_with_every_reconnect_and_no_gap() {
        let all = || received(&[b"one", b"two"], None);
        let resumed = |reconnects| {
            let mut received = all();
            received.reconnects = reconnects;
            received
        };
        assert!(judged(0, resumed(3), expected(1, 3)).passed);
        for reconnects in [0, 2, 4] {
            let verdict = judged(0, resumed(reconnects), expected(1, 3));
            assert!(!verdict.passed, "{reconnects} reconnects of 3");
        }
        let mut gapped = resumed(3);
        gapped.gaps.push(Gap {
            from: 10,
            to: 12,
            reason: "history_off".into(),
        });
        let verdict = judged(1, gapped, expected(1, 3));
        assert!(!verdict.passed, "a gap fails even when the digest matches");
        let shown = report(vec![verdict], 3).to_string();
        assert!(
            shown.contains("FAIL subscriber 1: 2 of 2 messages")
                && shown.contains(", 3 of 3 reconnects (gap: seq 10..12 lost (history_off))"),
            "{shown}"
        );
    }

    #[test]
    fn without_disruption_the_report_does_not_mention_reconnects() {
        let verdict = judged(0, received(&[b"one", b"two"], None), expected(1, 0));
        let shown = report(vec![verdict], 0).to_string();
        assert!(!shown.contains("reconnect"), "{shown}");
        assert!(
            shown.contains("ok   subscriber 0: 2 of 2 messages, sha256 "),
            "{shown}"
        );
    }

    #[test]
    fn report_passes_only_if_every_subscriber_does() {
        let good = judged(0, received(&[b"one", b"two"], None), expected(1, 0));
        let bad = judged(1, received(&[b"one"], None), expected(1, 0));
        assert!(report(vec![good.clone()], 0).passed());
        let mixed = report(vec![good, bad], 0);
        assert!(!mixed.passed());
        assert!(
            mixed.to_string().ends_with("FAIL: 1 passed, 1 failed"),
            "{mixed}"
        );
        assert!(
            !report(Vec::new(), 0).passed(),
            "no subscribers proves nothing"
        );
    }

    #[test]
    fn the_same_set_in_different_orders_fails_the_run_naming_the_position() {
        let verdicts = judge_all(
            vec![
                (1, 1, received(&[b"two", b"one", b"one", b"two"], None)),
                (0, 0, received(&[b"one", b"two", b"one", b"two"], None)),
            ],
            expected(2, 0),
        );
        assert_eq!(
            verdicts[0].subscriber, 0,
            "verdicts come in subscriber order"
        );
        assert_eq!(verdicts[0].digest, verdicts[1].digest, "same set");
        assert!(verdicts[0].passed, "{verdicts:?}");
        assert!(!verdicts[1].passed, "another order fails: {verdicts:?}");
        let mut run = report(verdicts, 0);
        run.expected = data().expected_digest(2);
        run.expected_messages = 4;
        run.nodes = 2;
        assert!(!run.passed());
        let shown = run.to_string();
        assert!(
            shown.contains("ok   subscriber 0 on node 1: 4 of 4 messages")
                && shown.contains("FAIL subscriber 1 on node 2: 4 of 4 messages, sha256 ")
                && shown.contains("(order differs from subscriber 0 at position 0: sha256 ")
                && shown.contains(
                    "order: 1 of 2 subscribers received another sequence than subscriber 0"
                ),
            "{shown}"
        );
    }

    #[test]
    fn subscribers_in_one_order_pass_the_order_check() {
        let same = || received(&[b"two", b"one", b"one", b"two"], None);
        let verdicts = judge_all(
            vec![(0, 0, same()), (1, 0, same()), (2, 0, same())],
            expected(2, 0),
        );
        assert!(
            verdicts
                .iter()
                .all(|verdict| verdict.passed && verdict.order.is_none())
        );
        let shown = report(verdicts, 0).to_string();
        assert!(
            shown.contains("order: all 3 subscribers received the same sequence"),
            "{shown}"
        );
    }
}
