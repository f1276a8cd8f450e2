//! Pins the generator's output and the file bytes: a change here changes every load test's
//! data, so it must be deliberate (and come with a new format version or default seed, and an
//! update of `testdata/README.md`).

use sha2::{Digest as _, Sha256};
use wspubsub_testdata::{DEFAULT_SEED, DataSet, GenerateSpec};

#[test]
fn default_spec_is_the_documented_one() {
    assert_eq!(
        GenerateSpec::default(),
        GenerateSpec {
            count: 100,
            max_message_size: 100_000,
            seed: 0x5753_5055_4253_5542,
        }
    );
    assert_eq!(DEFAULT_SEED, 6_292_461_431_481_914_690);
}

#[test]
fn first_messages_of_the_default_spec_are_pinned() {
    let set = DataSet::generate(GenerateSpec {
        count: 3,
        ..GenerateSpec::default()
    });
    let lengths: Vec<usize> = set.messages().iter().map(|m| m.len()).collect();
    assert_eq!(lengths, [62010, 98908, 7292]);
    assert_eq!(set.messages()[0][..4], [230, 193, 51, 0]);
    assert_eq!(
        set.expected_digest(1).to_string(),
        "c8d465480a8a20dcb0d87368ab1a509afb2663e52a632fe70e8ce5269d132f4d"
    );
}

#[test]
fn default_file_is_pinned() {
    let set = DataSet::generate(GenerateSpec::default());
    assert_eq!(set.len(), 100);
    assert_eq!(set.total_bytes(), 4_700_051);
    assert_eq!(
        set.expected_digest(1).to_string(),
        "35222a2dd95de18c2b2e7534944c2e62112bc47c0a8b54d37aaedef59da287df"
    );
    let mut file = Vec::new();
    set.write_to(&mut file).expect("write");
    assert_eq!(
        hex(&Sha256::digest(&file)),
        "6e7b42a962d92f77f53ae59417efc869d1a277e0551e4804f9e12a58c9852e77",
        "sha256sum of the default testdata/test.dat"
    );
}

#[test]
fn small_file_bytes_are_pinned() {
    let set = DataSet::generate(GenerateSpec {
        count: 3,
        max_message_size: 6,
        seed: 1,
    });
    let mut bytes = Vec::new();
    set.write_to(&mut bytes).expect("write");
    #[rustfmt::skip]
    let expected: &[u8] = &[
        b'W', b'S', b'P', b'S', b'D', b'A', b'T', b'A', // magic
        1, 0, 0, 0,                                     // version 1
        1, 0, 0, 0, 0, 0, 0, 0,                         // seed 1
        3, 0, 0, 0,                                     // 3 messages
        4, 0, 0, 0, 0xea, 0x4c, 0x09, 0x67,             // 4 bytes
        6, 0, 0, 0, 0xd8, 0x06, 0x94, 0x14, 0x65, 0x06, // 6 bytes
        4, 0, 0, 0, 0x42, 0x0d, 0x08, 0x63,             // 4 bytes
    ];
    assert_eq!(bytes, expected);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
