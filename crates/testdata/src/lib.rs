//! Test data for wspubsub's load test: a seeded, reproducible set of binary messages, its file
//! format, and the digest that proves a subscriber received exactly the published messages.
//!
//! - [`DataSet::generate`] makes `count` messages of random length (1 to `max_message_size`
//!   bytes) and random content from a ChaCha8 generator seeded with a `u64`: the same
//!   [`GenerateSpec`] gives the same messages, byte for byte, everywhere.
//! - The file format ([`mod@format`]) is a small header and length-prefixed messages; reading a
//!   corrupt or truncated file gives a [`DataError`], never a panic or a huge allocation.
//! - [`Digest::of_messages`] sorts messages and hashes them with SHA-256, so the order in
//!   which a subscriber received them does not matter, but any loss, duplicate or altered
//!   byte does. [`DataSet::expected_digest`] is what a subscriber of P publishers must reach.

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
    /// Generates the data set `spec` describes; deterministic in `spec`.
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

    /// Writes the set in the file format.
    pub fn write_to(&self, writer: impl std::io::Write) -> Result<(), DataError> {
        format::write(self, writer)
    }

    /// Reads a set in the file format.
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

    /// The digest a subscriber must reach when `publishers` publishers each send the set once.
    pub fn expected_digest(&self, publishers: usize) -> Digest {
        let copies = (0..publishers)
            .flat_map(|_| self.messages.iter().cloned())
            .collect();
        Digest::of_messages(copies)
    }
}
