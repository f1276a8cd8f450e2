//! History against a model a reader can check by eye: every message ever pushed in a `Vec`
//! and the index of the first one kept, evicted by the same rules one message at a time.
//! Random pushes (records of 1 to 4 messages of random sizes), expiries and evictions under
//! small bounds must keep the same messages, count the same bytes, and replay the same
//! messages from any position.

use std::time::Instant;

use bytes::{Buf, Bytes};
use proptest::prelude::*;

use super::{GapReason, History, HistoryLimits, RecordBuilder, Wanted};
use crate::FrameQueue;

#[derive(Debug, Clone)]
enum Op {
    /// A record of messages with these payload lengths, taken `after` µs after the last.
    Push {
        lens: Vec<usize>,
        after: u64,
    },
    /// Expire at `ahead` µs after the newest message.
    Expire {
        ahead: u64,
    },
    EvictOldest,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec(4..=40usize, 1..=4), 0..=30u64)
            .prop_map(|(lens, after)| Op::Push { lens, after }),
        1 => (0..=150u64).prop_map(|ahead| Op::Expire { ahead }),
        1 => Just(Op::EvictOldest),
    ]
}

/// One message as the model keeps it.
#[derive(Debug, Clone, Copy)]
struct Message {
    seq: u64,
    time: u64,
    /// Frame length: a 2-byte header and the payload.
    frame: usize,
}

struct Model {
    limits: HistoryLimits,
    messages: Vec<Message>,
    first_kept: usize,
    start: u64,
}

impl Model {
    fn kept(&self) -> &[Message] {
        &self.messages[self.first_kept..]
    }

    fn bytes(&self) -> usize {
        self.kept().iter().map(|m| m.frame).sum()
    }

    fn head(&self) -> u64 {
        self.start + self.messages.len() as u64
    }

    fn evict_while(&mut self, over: impl Fn(&Model) -> bool) {
        while self.first_kept < self.messages.len() && over(self) {
            self.first_kept += 1;
        }
    }
}

/// The seqs (first four payload bytes) of the frames replayed from `from`.
fn replayed(history: &History, from: u64) -> Vec<u64> {
    let mut parts = Vec::new();
    let count = history.replay(from, crate::Form::Raw, "/t", &mut parts);
    let mut queue = FrameQueue::default();
    parts.into_iter().for_each(|(part, _)| queue.push(part));
    let mut bytes: Bytes = queue.copy_to_bytes(queue.remaining());
    let mut seqs = Vec::new();
    while bytes.has_remaining() {
        let _opcode = bytes.get_u8();
        let len = usize::from(bytes.get_u8());
        let mut payload = bytes.split_to(len);
        seqs.push(u64::from(payload.get_u32()));
    }
    assert_eq!(seqs.len() as u64, count);
    seqs
}

fn run(limits: HistoryLimits, ops: Vec<Op>) {
    let start = 1_000;
    let mut history = History::new(limits, start);
    let mut model = Model {
        limits,
        messages: Vec::new(),
        first_kept: 0,
        start,
    };
    let mut time = 0;
    for op in ops {
        match op {
            Op::Push { lens, after } => {
                time += after;
                let mut builder = RecordBuilder::new(usize::MAX);
                for len in lens {
                    let seq = model.head();
                    let mut payload = (seq as u32).to_be_bytes().to_vec();
                    payload.resize(len, 0);
                    let _ = builder.push(&payload, Instant::now(), seq, time);
                    model.messages.push(Message {
                        seq,
                        time,
                        frame: len + 2,
                    });
                }
                history.push(builder.finish().expect("a record"));
                if limits.messages == 0 {
                    model.first_kept = model.messages.len();
                }
                model.evict_while(|m| m.kept().len() > m.limits.messages);
                model.evict_while(|m| m.bytes() > m.limits.bytes);
            }
            Op::Expire { ahead } => {
                let now = time + ahead;
                let cutoff = now.saturating_sub(limits.age_micros);
                let before = model.first_kept;
                model.evict_while(|m| m.kept()[0].time < cutoff);
                assert_eq!(history.expire(now), (model.first_kept - before) as u64);
            }
            Op::EvictOldest => {
                let expected = model.kept().first().map_or(0, |m| m.frame);
                if expected > 0 {
                    model.first_kept += 1;
                }
                assert_eq!(history.evict_oldest(), expected);
            }
        }
        let earliest = model.kept().first().map_or(model.head(), |m| m.seq);
        assert_eq!(history.messages(), model.kept().len());
        assert_eq!(history.bytes(), model.bytes());
        assert_eq!(
            (history.earliest(), history.head()),
            (earliest, model.head())
        );
        for from in [
            start,
            earliest,
            earliest + 1,
            model.head().saturating_sub(2),
        ] {
            let expected: Vec<u64> = model
                .kept()
                .iter()
                .map(|m| m.seq)
                .filter(|seq| *seq >= from)
                .collect();
            assert_eq!(replayed(&history, from), expected, "from {from}");
            match history.locate(Wanted::Seq(from)) {
                Ok(seq) => assert!(from >= earliest && seq == from),
                Err(gap) if from > model.head() => {
                    assert_eq!((gap.reason, gap.resume), (GapReason::Ahead, model.head()));
                }
                Err(gap) => assert!(
                    from < earliest
                        && gap.resume == earliest
                        && (gap.reason == GapReason::TopicRestarted) == (from < start),
                    "{gap:?} for {from}"
                ),
            }
        }
    }
}

proptest! {
    #[test]
    fn history_behaves_like_its_model(
        messages in 0..=8usize,
        bytes in 40..=200usize,
        age_micros in 1..=100u64,
        ops in prop::collection::vec(op(), 1..60),
    ) {
        run(HistoryLimits { messages, bytes, age_micros }, ops);
    }
}
