//! Test data for wspubsub's load test: a seeded, reproducible set of binary messages, its file
//! format, and the digest that proves a subscriber received exactly the published messages.
//!
//! # Components
//!
//! - **Generator** ([`DataSet::generate`], [`GenerateSpec`]): `count` messages, each of a
//!   length drawn uniformly from `1..=max_message_size` and then filled with random bytes, all
//!   from one ChaCha8 stream (`rand_chacha::ChaCha8Rng::seed_from_u64(seed)`). ChaCha8's output
//!   is fixed by its seed on every platform, so the same [`GenerateSpec`] gives the same
//!   messages, byte for byte; a golden test pins the output of [`GenerateSpec::default`].
//! - **File format** ([`mod@format`]), all integers little endian: the 8-byte magic
//!   `WSPSDATA`, a `u32` version (1), a `u64` seed (informational, 0 when the set was not
//!   generated), a `u32` message count, then per message a `u32` length and that many bytes;
//!   nothing after. Reading a corrupt, truncated or foreign file gives a specific
//!   [`DataError`], never a panic or an allocation larger than the bytes really present
//!   (message lengths are capped at [`format::MAX_MESSAGE_LEN`]).
//! - **Digest** ([`Digest`]): SHA-256 over the messages sorted bytewise, each hashed as its
//!   length (`u64`, little endian) followed by its bytes. Sorting makes it independent of the
//!   order in which a subscriber received the messages; the length prefix keeps message
//!   boundaries in it, so any loss, duplicate, altered byte or re-split message changes it.
//!
//! # Use in the load test
//!
//! P publishers each send every message of the set once; a subscriber must end up with the
//! multiset of P copies of the set. [`DataSet::expected_digest`]`(P)` is the digest of that
//! multiset, and each subscriber computes [`Digest::of_messages`] over what it received: equal
//! digests prove it got exactly the published messages.
//!
//! ```
//! use wspubsub_testdata::{DataSet, Digest, GenerateSpec};
//!
//! let set = DataSet::generate(GenerateSpec { count: 10, max_message_size: 64, seed: 7 });
//! let mut file = Vec::new();
//! set.write_to(&mut file)?;
//! let read = DataSet::read_from(file.as_slice())?;
//!
//! // Two publishers; a subscriber receives their messages interleaved, in any order.
//! let mut received: Vec<_> = read.messages().iter().rev().cloned().collect();
//! received.extend(read.messages().iter().cloned());
//! assert_eq!(Digest::of_messages(received), set.expected_digest(2));
//! # Ok::<(), wspubsub_testdata::DataError>(())
//! ```

mod digest;
pub mod format;
mod generate;

use std::path::Path;

use bytes::Bytes;

pub use digest::Digest;
pub use format::DataError;
pub use generate::{DEFAULT_SEED, GenerateSpec};

/// A set of test messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSet {
    messages: Vec<Bytes>,
    seed: u64,
}

impl DataSet {
    /// Generates the data set `spec` describes; deterministic in `spec` (see [`GenerateSpec`]).
    pub fn generate(spec: GenerateSpec) -> DataSet {
        DataSet {
            messages: generate::messages(&spec),
            seed: spec.seed,
        }
    }

    /// A data set of the given messages (seed 0: not generated).
    pub fn from_messages(messages: Vec<Bytes>) -> DataSet {
        DataSet { messages, seed: 0 }
    }

    /// The messages, in file order.
    pub fn messages(&self) -> &[Bytes] {
        &self.messages
    }

    /// The seed the set was generated from (0 when it was not generated).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the set has no messages.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Sum of the message lengths.
    pub fn total_bytes(&self) -> u64 {
        self.messages
            .iter()
            .map(|message| message.len() as u64)
            .sum()
    }

    /// Writes the set in the file format (pass a buffered writer for a file). Checks every
    /// message length before writing anything.
    pub fn write_to(&self, writer: impl std::io::Write) -> Result<(), DataError> {
        format::write(self, writer)
    }

    /// Reads a set in the file format; the input must end right after the last message.
    pub fn read_from(reader: impl std::io::Read) -> Result<DataSet, DataError> {
        format::read(reader)
    }

    /// Saves the set to `path` (parent directories created; written to a temporary file and
    /// renamed, so a reader never sees half a file).
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        format::save(self, path)
    }

    /// Loads a set from `path`.
    pub fn load(path: &Path) -> Result<DataSet, DataError> {
        format::load(path)
    }

    /// The digest a subscriber must reach when `publishers` publishers each send the set once:
    /// [`Digest::of_messages`] over `publishers` copies of the set.
    pub fn expected_digest(&self, publishers: usize) -> Digest {
        let copies = (0..publishers)
            .flat_map(|_| self.messages.iter().cloned())
            .collect();
        Digest::of_messages(copies)
    }
}
