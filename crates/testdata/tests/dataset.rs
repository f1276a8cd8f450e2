//! The public API as the load test uses it: generation, round trips, and the digest.

use bytes::Bytes;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use wspubsub_testdata::{DataSet, Digest, GenerateSpec};

fn spec(seed: u64) -> GenerateSpec {
    GenerateSpec {
        count: 40,
        max_message_size: 2000,
        seed,
    }
}

#[test]
fn same_seed_same_set_other_seed_other_set() {
    let set = DataSet::generate(spec(1));
    assert_eq!(set, DataSet::generate(spec(1)));
    assert_eq!(set.messages(), DataSet::generate(spec(1)).messages());
    let other = DataSet::generate(spec(2));
    assert_ne!(set.messages(), other.messages());
    assert_ne!(set.expected_digest(1), other.expected_digest(1));
}

#[test]
fn lengths_are_within_one_to_max() {
    for max in [1, 2, 7, 300] {
        let set = DataSet::generate(GenerateSpec {
            count: 400,
            max_message_size: max,
            seed: 5,
        });
        assert_eq!(set.len(), 400);
        assert!(!set.is_empty());
        let lengths: Vec<usize> = set.messages().iter().map(Bytes::len).collect();
        assert!(
            lengths.iter().all(|len| (1..=max).contains(len)),
            "max {max}"
        );
        if max <= 7 {
            assert!(
                lengths.contains(&1) && lengths.contains(&max),
                "both ends drawn, max {max}"
            );
        } else {
            let (low, high) = (lengths.iter().min(), lengths.iter().max());
            assert!(
                low < Some(&(max / 10)) && high > Some(&(max * 9 / 10)),
                "spread, max {max}"
            );
        }
        assert_eq!(set.total_bytes(), lengths.iter().sum::<usize>() as u64);
    }
}

#[test]
fn messages_are_not_constant() {
    let set = DataSet::generate(spec(3));
    let long = set
        .messages()
        .iter()
        .find(|m| m.len() >= 64)
        .expect("a long message");
    assert!(long.iter().any(|b| *b != long[0]), "random bytes");
}

#[test]
fn write_then_read_round_trips() {
    for set in [
        DataSet::generate(spec(4)),
        DataSet::from_messages(vec![Bytes::from_static(b"x"), Bytes::new()]),
        DataSet::from_messages(Vec::new()),
    ] {
        let mut file = Vec::new();
        set.write_to(&mut file).expect("write");
        assert_eq!(DataSet::read_from(file.as_slice()).expect("read"), set);
    }
}

#[test]
fn save_then_load_round_trips_and_overwrites() {
    let dir = std::env::temp_dir().join(format!(
        "wspubsub-testdata-it-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let path = dir.join("a/b/test.dat");
    DataSet::generate(spec(5)).save(&path).expect("save");
    let set = DataSet::generate(spec(6));
    set.save(&path).expect("overwrite");
    assert_eq!(DataSet::load(&path).expect("load"), set);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What P publishers deliver to one subscriber: P copies, interleaved in any order.
fn delivered(set: &DataSet, publishers: usize, shuffle_seed: u64) -> Vec<Bytes> {
    let mut all: Vec<Bytes> = (0..publishers)
        .flat_map(|_| set.messages().iter().cloned())
        .collect();
    all.shuffle(&mut ChaCha8Rng::seed_from_u64(shuffle_seed));
    all
}

#[test]
fn expected_digest_is_reached_in_any_order() {
    let set = DataSet::generate(spec(7));
    for publishers in [1, 2, 5] {
        let expected = set.expected_digest(publishers);
        for shuffle_seed in 0..5 {
            let received = delivered(&set, publishers, shuffle_seed);
            assert_eq!(Digest::of_messages(received), expected, "P={publishers}");
        }
    }
    assert_ne!(set.expected_digest(1), set.expected_digest(2));
    assert_eq!(
        DataSet::from_messages(Vec::new()).expected_digest(3),
        set.expected_digest(0),
        "nothing published, nothing expected"
    );
}

#[test]
fn expected_digest_catches_a_changed_byte() {
    let set = DataSet::generate(spec(8));
    let expected = set.expected_digest(3);
    let mut received = delivered(&set, 3, 1);
    let mut altered = received[17].to_vec();
    let middle = altered.len() / 2;
    altered[middle] ^= 0x01;
    received[17] = Bytes::from(altered);
    assert_ne!(Digest::of_messages(received), expected);
}

#[test]
fn expected_digest_catches_a_lost_message() {
    let set = DataSet::generate(spec(9));
    let mut received = delivered(&set, 3, 2);
    received.remove(5);
    assert_ne!(Digest::of_messages(received), set.expected_digest(3));
}

#[test]
fn expected_digest_catches_a_duplicate() {
    let set = DataSet::generate(spec(10));
    let mut received = delivered(&set, 3, 3);
    received.push(received[0].clone());
    assert_ne!(Digest::of_messages(received), set.expected_digest(3));
}

#[test]
fn expected_digest_catches_a_lost_and_a_duplicate_together() {
    // Same count, different multiset: one publisher's message 0 arrives twice, message 1 never.
    let set = DataSet::generate(spec(11));
    let mut received = delivered(&set, 2, 0);
    let lost = received
        .iter()
        .position(|m| *m == set.messages()[1])
        .expect("present");
    received[lost] = set.messages()[0].clone();
    assert_ne!(Digest::of_messages(received), set.expected_digest(2));
}

#[test]
fn digest_displays_as_lowercase_hex() {
    let shown = DataSet::generate(spec(12)).expected_digest(1).to_string();
    assert_eq!(shown.len(), 64);
    assert!(
        shown
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    );
}
