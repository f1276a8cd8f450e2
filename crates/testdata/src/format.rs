//! The test-data file format (version 1), all integers little endian:
//!
//! | bytes | what |
//! | --- | --- |
//! | 8 | magic `WSPSDATA` |
//! | 4 | format version, `u32` = 1 |
//! | 8 | seed the set was generated from, `u64` (0 when not generated; informational) |
//! | 4 | message count, `u32` |
//! | per message: 4 + n | length `u32`, then that many bytes |
//!
//! Nothing may follow the last message.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::DataSet;

/// The file's first bytes.
pub const MAGIC: [u8; 8] = *b"WSPSDATA";

/// The format version this crate reads and writes.
pub const VERSION: u32 = 1;

/// Longest message a file may hold (256 MiB): a corrupt length cannot make a reader allocate
/// more than this.
pub const MAX_MESSAGE_LEN: u32 = 256 << 20;

/// Upper bound on the capacity reserved from a file's (untrusted) message count.
const MAX_INITIAL_CAPACITY: usize = 4096;

/// Why a data set could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened, created, read or written.
    #[error("{}: {source}", path.as_ref().map_or_else(|| "test data".to_owned(), |p| p.display().to_string()))]
    Io {
        /// The file concerned, when there is one.
        path: Option<PathBuf>,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The input does not start with the magic bytes: not a test-data file.
    #[error("not a wspubsub test-data file (bad magic bytes)")]
    BadMagic,
    /// The file is of a format version this crate does not know.
    #[error("unsupported test-data format version {0} (this build reads version {VERSION})")]
    UnsupportedVersion(u32),
    /// The input ended inside the header.
    #[error("truncated test-data file: the header is incomplete")]
    TruncatedHeader,
    /// The input ended inside a message.
    #[error("truncated test-data file: message {index} of {count} is incomplete")]
    TruncatedMessage {
        /// Which message (0-based).
        index: u32,
        /// Messages the header announced.
        count: u32,
    },
    /// A message length is over [`MAX_MESSAGE_LEN`].
    #[error(
        "corrupt test-data file: message {index} claims {len} bytes (at most {MAX_MESSAGE_LEN})"
    )]
    MessageTooLarge {
        /// Which message (0-based).
        index: u32,
        /// The length it claims.
        len: u32,
    },
    /// Bytes follow the last message.
    #[error("corrupt test-data file: bytes after the last message")]
    TrailingBytes,
    /// The set has more messages, or a longer message, than the format can hold.
    #[error("data set does not fit the format: {0}")]
    TooLarge(&'static str),
}

impl DataError {
    fn io(source: io::Error) -> Self {
        DataError::Io { path: None, source }
    }

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
        u32::try_from(set.len()).map_err(|_| DataError::TooLarge("more than u32::MAX messages"))?;
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&set.seed().to_le_bytes());
    header.extend_from_slice(&count.to_le_bytes());
    writer.write_all(&header).map_err(DataError::io)?;
    for message in set.messages() {
        let len = u32::try_from(message.len())
            .ok()
            .filter(|len| *len <= MAX_MESSAGE_LEN)
            .ok_or(DataError::TooLarge(
                "a message is longer than MAX_MESSAGE_LEN",
            ))?;
        writer
            .write_all(&len.to_le_bytes())
            .map_err(DataError::io)?;
        writer.write_all(message).map_err(DataError::io)?;
    }
    writer.flush().map_err(DataError::io)
}

pub(crate) fn read(mut reader: impl Read) -> Result<DataSet, DataError> {
    let mut header = [0u8; 24];
    read_exact_or(&mut reader, &mut header, DataError::TruncatedHeader)?;
    if header[..8] != MAGIC {
        return Err(DataError::BadMagic);
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != VERSION {
        return Err(DataError::UnsupportedVersion(version));
    }
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&header[12..20]);
    let seed = u64::from_le_bytes(seed);
    let count = u32::from_le_bytes([header[20], header[21], header[22], header[23]]);

    let mut messages = Vec::with_capacity((count as usize).min(MAX_INITIAL_CAPACITY));
    for index in 0..count {
        let truncated = DataError::TruncatedMessage { index, count };
        let mut len = [0u8; 4];
        read_exact_or(&mut reader, &mut len, truncated)?;
        let len = u32::from_le_bytes(len);
        if len > MAX_MESSAGE_LEN {
            return Err(DataError::MessageTooLarge { index, len });
        }
        // Read through `take` so that a lying length costs only the bytes really there.
        let mut message = Vec::new();
        reader
            .by_ref()
            .take(u64::from(len))
            .read_to_end(&mut message)
            .map_err(DataError::io)?;
        if message.len() != len as usize {
            return Err(DataError::TruncatedMessage { index, count });
        }
        messages.push(Bytes::from(message));
    }
    let mut extra = [0u8; 1];
    match reader.read(&mut extra).map_err(DataError::io)? {
        0 => Ok(DataSet { messages, seed }),
        _ => Err(DataError::TrailingBytes),
    }
}

/// `read_exact`, with end of input reported as `truncated`.
fn read_exact_or(
    reader: &mut impl Read,
    buffer: &mut [u8],
    truncated: DataError,
) -> Result<(), DataError> {
    match reader.read_exact(buffer) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Err(truncated),
        Err(error) => Err(DataError::io(error)),
    }
}

pub(crate) fn save(set: &DataSet, path: &Path) -> Result<(), DataError> {
    let fail = |source| DataError::Io {
        path: Some(path.to_owned()),
        source,
    };
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let written = File::create(&temporary)
        .map_err(DataError::io)
        .and_then(|file| write(set, BufWriter::new(file)))
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

    #[test]
    fn round_trips() {
        let set = sample();
        let bytes = encoded(&set);
        assert_eq!(&bytes[..8], b"WSPSDATA");
        assert_eq!(DataSet::read_from(bytes.as_slice()).expect("read"), set);
    }

    #[test]
    fn every_kind_of_corruption_has_its_error() {
        let good = encoded(&sample());
        let read = |bytes: &[u8]| DataSet::read_from(bytes).expect_err("must fail");

        assert!(matches!(read(&[]), DataError::TruncatedHeader));
        assert!(matches!(read(&good[..10]), DataError::TruncatedHeader));
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(matches!(read(&magic), DataError::BadMagic));
        let mut version = good.clone();
        version[8] = 2;
        assert!(matches!(read(&version), DataError::UnsupportedVersion(2)));
        assert!(matches!(
            read(&good[..26]),
            DataError::TruncatedMessage { index: 0, count: 5 }
        ));
        assert!(matches!(
            read(&good[..good.len() - 1]),
            DataError::TruncatedMessage { index: 4, count: 5 }
        ));
        let mut huge = good.clone();
        huge[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read(&huge),
            DataError::MessageTooLarge {
                index: 0,
                len: u32::MAX
            }
        ));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(read(&trailing), DataError::TrailingBytes));
        let mut lying_count = good[..24].to_vec();
        lying_count[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read(&lying_count),
            DataError::TruncatedMessage { index: 0, .. }
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x1234_5678_u32;
        for len in 0..200 {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (state >> 16) as u8
                })
                .collect();
            let mut prefixed = MAGIC.to_vec();
            prefixed.extend_from_slice(&VERSION.to_le_bytes());
            prefixed.extend_from_slice(&garbage);
            let _ = DataSet::read_from(garbage.as_slice());
            let _ = DataSet::read_from(prefixed.as_slice());
        }
    }

    #[test]
    fn save_and_load_name_the_file_in_errors() {
        let dir = std::env::temp_dir().join(format!("wspubsub-testdata-{}", std::process::id()));
        let path = dir.join("nested/set.dat");
        let set = sample();
        set.save(&path).expect("save");
        assert_eq!(DataSet::load(&path).expect("load"), set);
        let missing = DataSet::load(&dir.join("missing.dat")).expect_err("no such file");
        assert!(missing.to_string().contains("missing.dat"), "{missing}");
        std::fs::write(&path, b"WSPSDATA").expect("truncate");
        assert!(matches!(
            DataSet::load(&path),
            Err(DataError::TruncatedHeader)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
