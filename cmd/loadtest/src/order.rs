//! The order check: a topic has one order, the same for all its subscribers, so every
//! subscriber of a run must have received the same sequence of messages, not only the same
//! set. Each subscriber's sequence is the SHA-256 of each message in arrival order; the
//! sequence most subscribers share is the reference, and every other one is named with the
//! first position where it departs from it.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use wspubsub_testdata::Digest;

/// A subscriber's messages in the order it received them, each as its SHA-256 (the digest
/// of the one-message set, see [`Digest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sequence(Vec<Digest>);

impl Sequence {
    /// The sequence of `messages`, in the order given.
    pub(crate) fn of(messages: &[Bytes]) -> Sequence {
        Sequence(
            messages
                .iter()
                .map(|message| Digest::of_messages(vec![message.clone()]))
                .collect(),
        )
    }
}

/// Where a subscriber's order first departs from the reference order (the one most
/// subscribers received).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderMismatch {
    /// The subscriber whose sequence is the reference.
    pub reference: usize,
    /// The first position (0-based) at which the two differ.
    pub position: usize,
    /// This subscriber's message there (its SHA-256); `None` if its sequence ended before.
    pub here: Option<Digest>,
    /// The reference's message there; `None` if the reference's sequence ended before.
    pub there: Option<Digest>,
}

impl fmt::Display for OrderMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = |digest: &Option<Digest>| match digest {
            Some(digest) => format!("sha256 {}…", &digest.to_string()[..16]),
            None => "nothing".to_owned(),
        };
        write!(
            f,
            "order differs from subscriber {} at position {}: {} here, {} there",
            self.reference,
            self.position,
            short(&self.here),
            short(&self.there)
        )
    }
}

/// For each of `sequences` (subscriber i's at index i): `None` if it is the reference
/// sequence (the one most subscribers share; on a tie, the one of the lowest subscriber),
/// else where it first departs from it.
pub(crate) fn check(sequences: &[Sequence]) -> Vec<Option<OrderMismatch>> {
    let mut sharing: HashMap<&[Digest], Vec<usize>> = HashMap::new();
    for (subscriber, sequence) in sequences.iter().enumerate() {
        sharing.entry(&sequence.0).or_default().push(subscriber);
    }
    // Each group lists its subscribers ascending, so its first is its lowest.
    let Some(reference) = sharing
        .values()
        .max_by_key(|group| (group.len(), std::cmp::Reverse(group[0])))
        .map(|group| group[0])
    else {
        return Vec::new();
    };
    let wanted = &sequences[reference].0;
    sequences
        .iter()
        .map(|Sequence(got)| {
            let position = got
                .iter()
                .zip(wanted)
                .position(|(here, there)| here != there)
                .or_else(|| (got.len() != wanted.len()).then(|| got.len().min(wanted.len())))?;
            Some(OrderMismatch {
                reference,
                position,
                here: got.get(position).copied(),
                there: wanted.get(position).copied(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(messages: &[&'static [u8]]) -> Sequence {
        let messages: Vec<Bytes> = messages.iter().map(|m| Bytes::from_static(m)).collect();
        Sequence::of(&messages)
    }

    fn hash(message: &'static [u8]) -> Option<Digest> {
        Some(Digest::of_messages(vec![Bytes::from_static(message)]))
    }

    #[test]
    fn equal_sequences_agree() {
        let same = || sequence(&[b"a", b"b", b"a"]);
        assert_eq!(check(&[same(), same(), same()]), [None, None, None]);
        assert!(check(&[]).is_empty());
    }

    #[test]
    fn the_same_set_in_another_order_is_named_at_its_first_difference() {
        let checked = check(&[sequence(&[b"a", b"b", b"c"]), sequence(&[b"a", b"c", b"b"])]);
        assert_eq!(
            checked[0], None,
            "on a tie the lowest subscriber is the reference"
        );
        assert_eq!(
            checked[1],
            Some(OrderMismatch {
                reference: 0,
                position: 1,
                here: hash(b"c"),
                there: hash(b"b"),
            })
        );
        let shown = checked[1]
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            shown.starts_with("order differs from subscriber 0 at position 1: sha256 "),
            "{shown}"
        );
    }

    #[test]
    fn the_majority_is_the_reference_even_against_subscriber_0() {
        let usual = || sequence(&[b"a", b"b"]);
        let checked = check(&[sequence(&[b"b", b"a"]), usual(), usual()]);
        assert_eq!(checked[1..], [None, None]);
        assert!(
            matches!(
                &checked[0],
                Some(OrderMismatch {
                    reference: 1,
                    position: 0,
                    ..
                })
            ),
            "{checked:?}"
        );
    }

    #[test]
    fn a_shorter_or_longer_sequence_differs_where_one_ends() {
        let full = || sequence(&[b"a", b"b", b"c"]);
        let checked = check(&[
            full(),
            full(),
            sequence(&[b"a", b"b"]),
            sequence(&[b"a", b"b", b"c", b"c"]),
        ]);
        assert_eq!(
            checked[2],
            Some(OrderMismatch {
                reference: 0,
                position: 2,
                here: None,
                there: hash(b"c"),
            })
        );
        assert_eq!(
            checked[3],
            Some(OrderMismatch {
                reference: 0,
                position: 3,
                here: hash(b"c"),
                there: None,
            })
        );
        assert!(
            checked[2]
                .as_ref()
                .is_some_and(|m| m.to_string().contains("nothing here"))
        );
    }
}
