//! The digest that proves a subscriber got exactly what was published.

use std::fmt;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

/// SHA-256 over a multiset of messages: sorted bytewise, then each hashed as its length
/// (`u64`, little endian) followed by its bytes. Sorting makes the digest independent of
/// arrival order; the length prefix makes it unambiguous (without it, `["ab", "c"]` and
/// `["a", "bc"]` would hash alike, and so would a lost empty message). The prefix is a `u64`,
/// not the file's `u32`, so the definition does not depend on the file format's limits.
///
/// Displays as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `messages`, in any order.
    pub fn of_messages(mut messages: Vec<Bytes>) -> Digest {
        messages.sort_unstable();
        let mut hasher = Sha256::new();
        for message in &messages {
            hasher.update((message.len() as u64).to_le_bytes());
            hasher.update(message);
        }
        Digest(hasher.finalize().into())
    }

    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(messages: &[&'static [u8]]) -> Vec<Bytes> {
        messages.iter().map(|m| Bytes::from_static(m)).collect()
    }

    #[test]
    fn order_does_not_matter_content_does() {
        let base = Digest::of_messages(set(&[b"a", b"bc", b"a"]));
        assert_eq!(base, Digest::of_messages(set(&[b"bc", b"a", b"a"])));
        assert_ne!(
            base,
            Digest::of_messages(set(&[b"a", b"bc"])),
            "a lost message"
        );
        assert_ne!(
            base,
            Digest::of_messages(set(&[b"a", b"bc", b"a", b"a"])),
            "a duplicate"
        );
        assert_ne!(
            base,
            Digest::of_messages(set(&[b"a", b"bd", b"a"])),
            "an altered byte"
        );
    }

    #[test]
    fn boundaries_are_part_of_the_digest() {
        assert_ne!(
            Digest::of_messages(set(&[b"ab", b"c"])),
            Digest::of_messages(set(&[b"a", b"bc"]))
        );
    }

    #[test]
    fn empty_set_is_sha256_of_nothing() {
        assert_eq!(
            Digest::of_messages(Vec::new()).to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
