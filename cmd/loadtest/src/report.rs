//! Verdicts: did each subscriber get exactly what was published, and how fast.

use std::fmt;
use std::time::Duration;

use wspubsub_testdata::Digest;

use crate::run::Received;

/// One subscriber's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Which subscriber (0-based).
    pub subscriber: usize,
    /// Messages it received.
    pub received: usize,
    /// SHA-256 over what it received, sorted.
    pub digest: Digest,
    /// How its connection ended, if it ended before everything arrived.
    pub ended_early: Option<String>,
    /// Whether it received exactly the expected messages.
    pub passed: bool,
}

impl Verdict {
    /// Judges what a subscriber received against what was published.
    pub(crate) fn judge(
        subscriber: usize,
        received: Received,
        expected_count: usize,
        expected: Digest,
    ) -> Verdict {
        let count = received.messages.len();
        let digest = Digest::of_messages(received.messages);
        Verdict {
            subscriber,
            received: count,
            digest,
            passed: received.ended_early.is_none() && count == expected_count && digest == expected,
            ended_early: received.ended_early,
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
            write!(
                f,
                "{status} subscriber {}: {} of {} messages, sha256 {}",
                verdict.subscriber, verdict.received, self.expected_messages, verdict.digest
            )?;
            if let Some(why) = &verdict.ended_early {
                write!(f, " (ended early: {why})")?;
            }
            writeln!(f)?;
        }
        writeln!(f, "expected sha256 {}", self.expected)?;
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

    fn received(messages: &[&'static [u8]], ended_early: Option<&str>) -> Received {
        Received {
            messages: messages.iter().map(|m| Bytes::from_static(m)).collect(),
            ended_early: ended_early.map(str::to_owned),
            completed_at: None,
        }
    }

    #[test]
    fn exact_copies_in_any_order_pass() {
        let expected = data().expected_digest(2);
        let verdict = Verdict::judge(
            0,
            received(&[b"two", b"one", b"one", b"two"], None),
            4,
            expected,
        );
        assert!(verdict.passed, "{verdict:?}");
    }

    #[test]
    fn loss_duplication_alteration_and_early_end_fail() {
        let expected = data().expected_digest(2);
        let cases: [(&[&'static [u8]], Option<&str>); 4] = [
            (&[b"two", b"one", b"one"], None),                        // lost
            (&[b"two", b"one", b"one", b"two", b"two"], None),        // duplicated
            (&[b"two", b"one", b"one", b"twO"], None),                // altered
            (&[b"two", b"one", b"one", b"two"], Some("closed 4000")), // ended early
        ];
        for (messages, ended_early) in cases {
            let verdict = Verdict::judge(0, received(messages, ended_early), 4, expected);
            assert!(!verdict.passed, "{messages:?} {ended_early:?}");
        }
    }

    #[test]
    fn report_passes_only_if_every_subscriber_does() {
        let expected = data().expected_digest(1);
        let good = Verdict::judge(0, received(&[b"one", b"two"], None), 2, expected);
        let bad = Verdict::judge(1, received(&[b"one"], None), 2, expected);
        let report = |verdicts| Report {
            verdicts,
            expected,
            expected_messages: 2,
            message_bytes: 6,
            elapsed: Duration::from_secs(1),
            total_elapsed: Duration::from_secs(1),
        };
        assert!(report(vec![good.clone()]).passed());
        let mixed = report(vec![good, bad]);
        assert!(!mixed.passed());
        assert!(
            mixed.to_string().ends_with("FAIL: 1 passed, 1 failed"),
            "{mixed}"
        );
        assert!(
            !report(Vec::new()).passed(),
            "no subscribers proves nothing"
        );
    }
}
