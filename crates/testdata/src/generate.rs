//! The seeded generator.

use bytes::Bytes;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The seed used when none is given, so that every default run sees the same data.
pub const DEFAULT_SEED: u64 = 0x5753_5055_4253_5542; // "WSPUBSUB"

/// What to generate. The same spec gives the same messages, byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateSpec {
    /// Number of messages.
    pub count: usize,
    /// Largest message length; each length is uniform in `1..=max_message_size` (0 counts as
    /// 1). A file holds messages of at most [`crate::format::MAX_MESSAGE_LEN`] bytes.
    pub max_message_size: usize,
    /// Seed of the ChaCha8 generator.
    pub seed: u64,
}

impl Default for GenerateSpec {
    fn default() -> Self {
        GenerateSpec {
            count: 100,
            max_message_size: 100_000,
            seed: DEFAULT_SEED,
        }
    }
}

/// The messages for `spec`: for each, a length, then that many random bytes, all from one
/// generator, so that the sequence is fixed by the seed.
pub(crate) fn messages(spec: &GenerateSpec) -> Vec<Bytes> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let max = spec.max_message_size.max(1);
    (0..spec.count)
        .map(|_| {
            let mut message = vec![0u8; rng.random_range(1..=max)];
            rng.fill_bytes(&mut message);
            Bytes::from(message)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_messages_other_seed_other_messages() {
        let spec = GenerateSpec {
            count: 20,
            max_message_size: 1000,
            seed: 1,
        };
        assert_eq!(messages(&spec), messages(&spec));
        assert_ne!(messages(&spec), messages(&GenerateSpec { seed: 2, ..spec }));
    }

    #[test]
    fn lengths_stay_within_bounds() {
        let spec = GenerateSpec {
            count: 500,
            max_message_size: 64,
            seed: 3,
        };
        let generated = messages(&spec);
        assert_eq!(generated.len(), 500);
        assert!(generated.iter().all(|m| (1..=64).contains(&m.len())));
        assert!(generated.iter().any(|m| m.len() == 1) && generated.iter().any(|m| m.len() == 64));
    }
}
