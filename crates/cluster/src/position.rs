//! Positions in cluster mode: the `seq` every node gives a message of the shared stream.
//!
//! A JetStream stream numbers its messages 1, 2, 3, ... and a memory stream recreated after
//! its servers restarted starts at 1 again. Clients must never see a position reused
//! (design.md section 6), so a position is the stream sequence offset by the incarnation's
//! creation time in unix microseconds: `seq = created_µs + stream_sequence - 1`. Every node
//! reads the same creation time from the stream, so positions agree across nodes without
//! any coordination, and a later incarnation starts above an earlier one as long as the
//! earlier one averaged fewer than one message per microsecond over its life (a million a
//! second; one stream takes far fewer). Positions stay below 2^53 until the year 2255.

use std::time::SystemTime;

use wspubsub_protocol::{MAX_SEQ, unix_micros};

/// One incarnation of the stream, known by its creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incarnation {
    /// The position of stream sequence 1.
    base: u64,
}

/// Where a client's position falls in an incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// The message with this stream sequence.
    Sequence(u64),
    /// Before this incarnation began: those messages belong to an earlier one (a gap,
    /// `topic_restarted`).
    Before,
}

impl Incarnation {
    /// The incarnation of a stream created at `created`; `None` for a time before 1970 or
    /// one whose positions would not stay below 2^53.
    pub fn created_at(created: SystemTime) -> Option<Incarnation> {
        let base = unix_micros(created)?;
        (base < MAX_SEQ).then_some(Incarnation { base })
    }

    /// The position of the message with stream sequence `sequence` (from 1).
    pub fn position(&self, sequence: u64) -> u64 {
        self.base + sequence.saturating_sub(1)
    }

    /// The stream sequence a position names in this incarnation.
    pub fn locate(&self, position: u64) -> Located {
        match position.checked_sub(self.base) {
            Some(offset) => Located::Sequence(offset + 1),
            None => Located::Before,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use proptest::prelude::*;

    use super::*;

    fn at(micros: u64) -> Incarnation {
        Incarnation::created_at(UNIX_EPOCH + Duration::from_micros(micros)).expect("in range")
    }

    #[test]
    fn positions_follow_the_sequence_from_the_creation_time() {
        let incarnation = at(1_764_590_400_000_000);
        assert_eq!(incarnation.position(1), 1_764_590_400_000_000);
        assert_eq!(incarnation.position(2), 1_764_590_400_000_001);
        assert_eq!(
            incarnation.locate(1_764_590_400_000_001),
            Located::Sequence(2)
        );
        assert_eq!(incarnation.locate(1_764_590_399_999_999), Located::Before);
    }

    #[test]
    fn a_later_incarnation_starts_above_everything_an_earlier_one_numbered() {
        // A day of 100,000 messages a second, then a restart a second later.
        let first = at(1_764_590_400_000_000);
        let last_of_first = first.position(86_400 * 100_000);
        let second = at(1_764_590_400_000_000 + 86_401 * 1_000_000);
        assert!(second.position(1) > last_of_first);
        assert_eq!(second.locate(last_of_first), Located::Before);
    }

    #[test]
    fn times_whose_positions_reach_two_to_the_53_are_refused() {
        assert!(Incarnation::created_at(UNIX_EPOCH + Duration::from_micros(MAX_SEQ)).is_none());
        assert!(Incarnation::created_at(UNIX_EPOCH - Duration::from_secs(1)).is_none());
    }

    proptest! {
        #[test]
        fn locate_inverts_position(base in 0u64..MAX_SEQ / 2, sequence in 1u64..1 << 40) {
            let incarnation = at(base);
            prop_assert_eq!(
                incarnation.locate(incarnation.position(sequence)),
                Located::Sequence(sequence)
            );
        }
    }
}
