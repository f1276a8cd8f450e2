//! Pins the generator's output: a change here changes every load test's data, so it must be
//! deliberate (and come with a new format version or seed).

use wspubsub_testdata::{DataSet, GenerateSpec};

#[test]
fn default_spec_is_pinned() {
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
fn file_bytes_are_pinned() {
    let set = DataSet::generate(GenerateSpec {
        count: 2,
        max_message_size: 4,
        seed: 1,
    });
    let mut bytes = Vec::new();
    set.write_to(&mut bytes).expect("write");
    let lengths: Vec<usize> = set.messages().iter().map(|m| m.len()).collect();
    let mut expected = b"WSPSDATA".to_vec();
    expected.extend_from_slice(&1u32.to_le_bytes());
    expected.extend_from_slice(&1u64.to_le_bytes());
    expected.extend_from_slice(&2u32.to_le_bytes());
    for message in set.messages() {
        expected.extend_from_slice(&(message.len() as u32).to_le_bytes());
        expected.extend_from_slice(message);
    }
    assert_eq!(bytes, expected, "lengths {lengths:?}");
}
