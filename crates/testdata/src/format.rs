//! The test-data file format (version 1), all integers little endian:
//!
//! | bytes | what |
//! | --- | --- |
//! | 8 | magic `WSPSDATA` |
//! | 4 | format version, `u32` = 1 |
//! | 8 | seed the set was generated from, `u64` (0 when not generated; informational) |
//! | 4 | message count, `u32` |
//! | per message: 4 + n | length `u32` (at most [`MAX_MESSAGE_LEN`]), then that many bytes |
//!
//! Nothing may follow the last message.
//!
//! The reader trusts nothing in the file: a length over [`MAX_MESSAGE_LEN`] is refused before
//! anything is allocated for it, the count only bounds a small initial capacity, and message
//! bytes are read as they arrive, so a lying header costs no more memory than the bytes really
//! present. Every way a file can be wrong has its own [`DataError`] variant.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::DataSet;

/// The file's first bytes.
pub const MAGIC: [u8; 8] = *b"WSPSDATA";

/// The format version this crate reads and writes.
pub const VERSION: u32 = 1;

/// Length of the header: magic, version, seed and count.
pub const HEADER_LEN: usize = 8 + 4 + 8 + 4;

/// Longest message a file may hold (256 MiB): a corrupt length cannot make a reader allocate
/// more than this, and a writer refuses longer messages.
pub const MAX_MESSAGE_LEN: u32 = 256 << 20;

/// Upper bound on the number of messages reserved up front from a file's (untrusted) count.
const MAX_INITIAL_MESSAGES: usize = 4096;

/// Upper bound on the bytes reserved up front from a message's (untrusted) length; a longer
/// message grows its buffer as its bytes actually arrive.
const MAX_INITIAL_MESSAGE_CAPACITY: usize = 1 << 20;

/// Why a data set could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened, created, read, written or renamed.
    #[error("I/O error on {}", path.as_ref().map_or_else(|| "the test-data stream".to_owned(), |p| p.display().to_string()))]
    Io {
        /// The file concerned, when there is one.
        path: Option<PathBuf>,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The input does not start with the magic bytes: not a test-data file.
    #[error("not a wspubsub test-data file (it does not start with \"WSPSDATA\")")]
    BadMagic,
    /// The file is of a format version this crate does not know.
    #[error("unsupported test-data format version {0} (this build reads version {VERSION})")]
    UnsupportedVersion(u32),
    /// The input ended inside the header.
    #[error("truncated test-data file: the header has {got} of its {HEADER_LEN} bytes")]
    TruncatedHeader {
        /// Header bytes present.
        got: usize,
    },
    /// The input ended cleanly between two messages, before as many as the header announced.
    #[error(
        "truncated test-data file: the header announces {announced} messages but the file holds {found}"
    )]
    CountMismatch {
        /// Messages the header announced.
        announced: u32,
        /// Complete messages present.
        found: u32,
    },
    /// The input ended inside a message's 4-byte length.
    #[error("truncated test-data file: the length of message {index} has {got} of its 4 bytes")]
    TruncatedLength {
        /// Which message (0-based).
        index: u32,
        /// Length bytes present.
        got: usize,
    },
    /// The input ended inside a message's bytes.
    #[error("truncated test-data file: message {index} has {got} of its {expected} bytes")]
    TruncatedMessage {
        /// Which message (0-based).
        index: u32,
        /// The length its prefix announced.
        expected: u32,
        /// Bytes present.
        got: u64,
    },
    /// A message is longer than the format allows (over `limit`, [`MAX_MESSAGE_LEN`]).
    #[error("test-data message {index} is {len} bytes long, over the limit of {limit}")]
    MessageTooLarge {
        /// Which message (0-based).
        index: usize,
        /// Its length (claimed, when reading).
        len: u64,
        /// The limit, [`MAX_MESSAGE_LEN`].
        limit: u32,
    },
    /// Bytes follow the last message.
    #[error("corrupt test-data file: bytes follow the last announced message")]
    TrailingBytes,
    /// The set has more messages than the format's `u32` count can hold.
    #[error("a test-data file holds at most {} messages, not {count}", u32::MAX)]
    TooManyMessages {
        /// Messages in the set.
        count: usize,
    },
}

impl DataError {
    fn io(source: io::Error) -> Self {
        DataError::Io { path: None, source }
    }

    /// Names `path` in an I/O error that has no file yet.
    fn at(self, path: &Path) -> Self {
        match self {
            DataError::Io { path: None, source } => DataError::Io {
                path: Some(path.to_owned()),
                source,
            },
            other => other,
        }
    }
}

pub(crate) fn write(set: &DataSet, mut writer: impl Write) -> Result<(), DataError> {
    let count =
        u32::try_from(set.len()).map_err(|_| DataError::TooManyMessages { count: set.len() })?;
    // Check every length before writing a byte, so a refused set leaves no partial output.
    if let Some((index, message)) = set
        .messages()
        .iter()
        .enumerate()
        .find(|(_, message)| message.len() as u64 > u64::from(MAX_MESSAGE_LEN))
    {
        return Err(DataError::MessageTooLarge {
            index,
            len: message.len() as u64,
            limit: MAX_MESSAGE_LEN,
        });
    }
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&set.seed().to_le_bytes());
    header[20..24].copy_from_slice(&count.to_le_bytes());
    writer.write_all(&header).map_err(DataError::io)?;
    for message in set.messages() {
        // Cannot truncate: checked against MAX_MESSAGE_LEN above.
        let len = message.len() as u32;
        writer
            .write_all(&len.to_le_bytes())
            .map_err(DataError::io)?;
        writer.write_all(message).map_err(DataError::io)?;
    }
    writer.flush().map_err(DataError::io)
}

pub(crate) fn read(mut reader: impl Read) -> Result<DataSet, DataError> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(&mut reader, &mut header)?;
    // A short input that does not even start like a test-data file is "not ours", not
    // "truncated": only a prefix of the magic counts as a truncated header.
    if header[..got.min(8)] != MAGIC[..got.min(8)] {
        return Err(DataError::BadMagic);
    }
    if got < HEADER_LEN {
        return Err(DataError::TruncatedHeader { got });
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != VERSION {
        return Err(DataError::UnsupportedVersion(version));
    }
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&header[12..20]);
    let seed = u64::from_le_bytes(seed);
    let count = u32::from_le_bytes([header[20], header[21], header[22], header[23]]);

    let mut messages = Vec::with_capacity((count as usize).min(MAX_INITIAL_MESSAGES));
    for index in 0..count {
        let mut len = [0u8; 4];
        match read_full(&mut reader, &mut len)? {
            4 => {}
            0 => {
                return Err(DataError::CountMismatch {
                    announced: count,
                    found: index,
                });
            }
            got => return Err(DataError::TruncatedLength { index, got }),
        }
        let len = u32::from_le_bytes(len);
        if len > MAX_MESSAGE_LEN {
            return Err(DataError::MessageTooLarge {
                index: index as usize,
                len: u64::from(len),
                limit: MAX_MESSAGE_LEN,
            });
        }
        // Read through `take` so that a lying length costs only the bytes really there.
        let mut message = Vec::with_capacity((len as usize).min(MAX_INITIAL_MESSAGE_CAPACITY));
        reader
            .by_ref()
            .take(u64::from(len))
            .read_to_end(&mut message)
            .map_err(DataError::io)?;
        if message.len() != len as usize {
            return Err(DataError::TruncatedMessage {
                index,
                expected: len,
                got: message.len() as u64,
            });
        }
        messages.push(Bytes::from(message));
    }
    match read_full(&mut reader, &mut [0u8; 1])? {
        0 => Ok(DataSet { messages, seed }),
        _ => Err(DataError::TrailingBytes),
    }
}

/// Fills `buffer` unless the input ends first; returns how many bytes were read.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> Result<usize, DataError> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(DataError::io(error)),
        }
    }
    Ok(filled)
}

pub(crate) fn save(set: &DataSet, path: &Path) -> Result<(), DataError> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|source| DataError::Io {
            path: Some(parent.to_owned()),
            source,
        })?;
    }
    // A sibling of the target, so that the rename stays within one file system and a reader
    // never sees half a file.
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let written = File::create(&temporary)
        .map_err(DataError::io)
        .and_then(|file| {
            let mut writer = BufWriter::new(file);
            write(set, &mut writer)?;
            let file = writer
                .into_inner()
                .map_err(|error| DataError::io(error.into_error()))?;
            file.sync_all().map_err(DataError::io)
        })
        .and_then(|()| std::fs::rename(&temporary, path).map_err(DataError::io));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(|error| error.at(path))
}

pub(crate) fn load(path: &Path) -> Result<DataSet, DataError> {
    let file = File::open(path).map_err(|source| DataError::Io {
        path: Some(path.to_owned()),
        source,
    })?;
    read(BufReader::new(file)).map_err(|error| error.at(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GenerateSpec;

    fn sample() -> DataSet {
        DataSet::generate(GenerateSpec {
            count: 5,
            max_message_size: 300,
            seed: 9,
        })
    }

    fn encoded(set: &DataSet) -> Vec<u8> {
        let mut bytes = Vec::new();
        set.write_to(&mut bytes).expect("write to memory");
        bytes
    }

    fn read(bytes: &[u8]) -> DataError {
        DataSet::read_from(bytes).expect_err("must fail")
    }

    /// Offset of message `index`'s length prefix in `bytes`.
    fn offset_of(set: &DataSet, index: usize) -> usize {
        HEADER_LEN
            + set.messages()[..index]
                .iter()
                .map(|m| 4 + m.len())
                .sum::<usize>()
    }

    #[test]
    fn round_trips_and_keeps_the_seed() {
        let set = sample();
        let bytes = encoded(&set);
        assert_eq!(&bytes[..8], b"WSPSDATA");
        assert_eq!(
            bytes.len() as u64,
            HEADER_LEN as u64 + 4 * 5 + set.total_bytes()
        );
        let back = DataSet::read_from(bytes.as_slice()).expect("read");
        assert_eq!(back, set);
        assert_eq!(back.seed(), 9);
        let empty = DataSet::from_messages(Vec::new());
        assert_eq!(
            DataSet::read_from(encoded(&empty).as_slice()).expect("read"),
            empty
        );
    }

    #[test]
    fn empty_input_is_a_truncated_header() {
        assert!(matches!(read(&[]), DataError::TruncatedHeader { got: 0 }));
    }

    #[test]
    fn a_cut_header_is_a_truncated_header() {
        let good = encoded(&sample());
        assert!(matches!(
            read(&good[..5]),
            DataError::TruncatedHeader { got: 5 }
        ));
        assert!(matches!(
            read(&good[..HEADER_LEN - 1]),
            DataError::TruncatedHeader { got: 23 }
        ));
    }

    #[test]
    fn wrong_magic_is_bad_magic_even_when_short() {
        let mut magic = encoded(&sample());
        magic[0] = b'X';
        assert!(matches!(read(&magic), DataError::BadMagic));
        assert!(matches!(read(b"hello"), DataError::BadMagic));
    }

    #[test]
    fn another_version_is_unsupported() {
        let mut version = encoded(&sample());
        version[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(read(&version), DataError::UnsupportedVersion(2)));
    }

    #[test]
    fn a_cut_message_is_a_truncated_message() {
        let set = sample();
        let good = encoded(&set);
        let last = set.messages()[4].len() as u32;
        assert!(matches!(
            read(&good[..good.len() - 1]),
            DataError::TruncatedMessage { index: 4, expected, got }
                if expected == last && got == u64::from(last) - 1
        ));
        let second = offset_of(&set, 1);
        assert!(matches!(
            read(&good[..second + 2]),
            DataError::TruncatedLength { index: 1, got: 2 }
        ));
        assert!(matches!(
            read(&good[..second]),
            DataError::CountMismatch {
                announced: 5,
                found: 1
            }
        ));
    }

    #[test]
    fn a_lying_count_costs_nothing() {
        let mut lying_count = encoded(&sample())[..HEADER_LEN].to_vec();
        lying_count[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read(&lying_count),
            DataError::CountMismatch {
                announced: u32::MAX,
                found: 0
            }
        ));
    }

    #[test]
    fn a_length_over_the_cap_is_refused_before_allocating() {
        let mut huge = encoded(&sample());
        huge[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read(&huge),
            DataError::MessageTooLarge { index: 0, len, limit: MAX_MESSAGE_LEN }
                if len == u64::from(u32::MAX)
        ));
        // Just under the cap: accepted as a length, then found truncated, without a 256 MiB
        // buffer (the initial capacity is capped).
        huge[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&MAX_MESSAGE_LEN.to_le_bytes());
        assert!(matches!(
            read(&huge),
            DataError::TruncatedMessage {
                index: 0,
                expected: MAX_MESSAGE_LEN,
                ..
            }
        ));
    }

    #[test]
    fn bytes_after_the_last_message_are_refused() {
        let mut trailing = encoded(&sample());
        trailing.push(0);
        assert!(matches!(read(&trailing), DataError::TrailingBytes));
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x1234_5678_u32;
        for len in 0..300 {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (state >> 16) as u8
                })
                .collect();
            let mut prefixed = MAGIC.to_vec();
            prefixed.extend_from_slice(&VERSION.to_le_bytes());
            prefixed.extend_from_slice(&garbage);
            assert!(DataSet::read_from(garbage.as_slice()).is_err());
            let _ = DataSet::read_from(prefixed.as_slice());
        }
    }

    #[test]
    fn every_cut_of_a_good_file_is_an_error() {
        let good = encoded(&sample());
        for end in 0..good.len() {
            assert!(DataSet::read_from(&good[..end]).is_err(), "cut at {end}");
        }
    }

    #[test]
    fn writing_refuses_what_the_format_cannot_hold() {
        let too_long = Bytes::from(vec![0u8; MAX_MESSAGE_LEN as usize + 1]);
        let set = DataSet::from_messages(vec![Bytes::from_static(b"ok"), too_long]);
        let mut out = Vec::new();
        assert!(matches!(
            set.write_to(&mut out),
            Err(DataError::MessageTooLarge { index: 1, .. })
        ));
        assert!(out.is_empty(), "nothing written for a refused set");
    }

    #[test]
    fn save_and_load_name_the_file_in_errors() {
        let dir = std::env::temp_dir().join(format!(
            "wspubsub-testdata-unit-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        let path = dir.join("nested/set.dat");
        let set = sample();
        set.save(&path).expect("save");
        assert_eq!(DataSet::load(&path).expect("load"), set);
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("nested"))
            .expect("list")
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
        let missing = DataSet::load(&dir.join("missing.dat")).expect_err("no such file");
        assert!(missing.to_string().contains("missing.dat"), "{missing}");
        assert!(matches!(missing, DataError::Io { path: Some(_), .. }));
        std::fs::write(&path, b"WSPSDATA").expect("truncate");
        assert!(matches!(
            DataSet::load(&path),
            Err(DataError::TruncatedHeader { got: 8 })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
