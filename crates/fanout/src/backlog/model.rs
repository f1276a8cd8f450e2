//! The backlog against a model a reader can check by eye: every chunk ever pushed in a `Vec`,
//! the index of the first one kept, and each reader's two indexes. Random sequences of joins,
//! departures, pushes, reads and evictions (small bounds) must give the same messages in the
//! same order, the same lag reports, reader counts that never wrap, and chunks released
//! exactly when the model says no reader needs them any more. Appends through `try_push`
//! alone never make a reader lag.

use std::time::Instant;

use bytes::{Buf, Bytes};
use proptest::prelude::*;

use super::{Backlog, Cursor, Lagged};
use crate::frames::{Chunk, FrameQueue};

#[derive(Debug, Clone)]
enum Op {
    Join,
    /// Leave the reader at this index (modulo the readers there are), even one that left.
    Leave(usize),
    Push {
        messages: u32,
        len: usize,
    },
    /// Push only if that forces nothing out (`Backlog::try_push`).
    TryPush {
        messages: u32,
        len: usize,
    },
    Read {
        reader: usize,
        budget: usize,
    },
    /// Let go of the last read without reading (`Backlog::let_go`).
    LetGo(usize),
    Finish,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Join),
        1 => any::<usize>().prop_map(Op::Leave),
        5 => (1..=3u32, 1..=40usize).prop_map(|(messages, len)| Op::Push { messages, len }),
        5 => (1..=3u32, 1..=40usize).prop_map(|(messages, len)| Op::TryPush { messages, len }),
        5 => (any::<usize>(), 0..=100usize).prop_map(|(reader, budget)| Op::Read { reader, budget }),
        2 => any::<usize>().prop_map(Op::LetGo),
        1 => Just(Op::Finish),
    ]
}

#[derive(Debug, Clone, Copy)]
struct ModelReader {
    held: usize,
    next: usize,
    joined: bool,
}

#[derive(Debug, Default)]
struct Model {
    /// Every chunk ever pushed: (messages, bytes); chunk `i` is `len` bytes of `i as u8`.
    chunks: Vec<(u32, usize)>,
    first: usize,
    readers: Vec<ModelReader>,
    max_messages: usize,
    max_bytes: usize,
    finished: bool,
}

impl Model {
    fn head(&self) -> usize {
        self.chunks.len()
    }

    fn messages_before(&self, chunk: usize) -> u64 {
        self.chunks[..chunk]
            .iter()
            .map(|&(m, _)| u64::from(m))
            .sum()
    }

    /// Frees the chunks before the first one a registered reader still holds.
    fn release(&mut self) {
        let needed = self
            .readers
            .iter()
            .filter(|reader| reader.joined)
            .map(|reader| reader.held)
            .min()
            .unwrap_or(self.head());
        self.first = self.first.max(needed);
    }

    fn push(&mut self, messages: u32, len: usize) {
        self.release();
        self.chunks.push((messages, len));
        let kept = |model: &Model| {
            let kept = &model.chunks[model.first..];
            let messages: usize = kept.iter().map(|&(m, _)| m as usize).sum();
            let bytes: usize = kept.iter().map(|&(_, b)| b).sum();
            (kept.len(), messages, bytes)
        };
        while let (2.., messages, bytes) = kept(self) {
            if messages <= self.max_messages && bytes <= self.max_bytes {
                break;
            }
            self.first += 1;
        }
    }

    /// Whether `try_push` takes a chunk: after the release, nothing is kept, or the kept
    /// chunks plus this one are within both bounds.
    fn try_push(&mut self, messages: u32, len: usize) -> bool {
        self.release();
        let kept = &self.chunks[self.first..];
        let fits = kept.is_empty()
            || (kept.iter().map(|&(m, _)| m as usize).sum::<usize>() + messages as usize
                <= self.max_messages
                && kept.iter().map(|&(_, b)| b).sum::<usize>() + len <= self.max_bytes);
        if fits {
            self.push(messages, len);
        }
        fits
    }

    /// Lets go of what `reader` read last; whether it held anything.
    fn let_go(&mut self, reader: usize) -> bool {
        let first = self.first;
        let state = &mut self.readers[reader];
        if !state.joined || state.held < first || state.held == state.next {
            return false;
        }
        state.held = state.next;
        true
    }

    /// What reading `reader` with `budget` gives: the bytes, or the lag.
    fn read(&mut self, reader: usize, budget: usize) -> Result<Vec<u8>, Lagged> {
        let first = self.first;
        let head = self.head();
        let missed_from = self.messages_before(first);
        let state = &mut self.readers[reader];
        if !state.joined {
            return Ok(Vec::new());
        }
        if state.held < first {
            let next = state.next;
            return Err(Lagged {
                missed: missed_from.saturating_sub(self.messages_before(next)),
            });
        }
        state.held = state.next;
        let mut bytes = Vec::new();
        while state.next < head && bytes.len() < budget {
            let (_, len) = self.chunks[state.next];
            bytes.extend(std::iter::repeat_n(state.next as u8, len));
            state.next += 1;
        }
        Ok(bytes)
    }
}

fn check(backlog: &Backlog, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(backlog.chunks(), model.head() - model.first, "chunks kept");
    prop_assert_eq!(backlog.first.chunk, model.first as u64);
    for (offset, entry) in backlog.entries.iter().enumerate() {
        let chunk = model.first + offset;
        let holders = model
            .readers
            .iter()
            .filter(|reader| reader.joined && reader.held <= chunk)
            .count();
        prop_assert_eq!(
            entry.unread.load(std::sync::atomic::Ordering::Acquire),
            holders,
            "reader count of chunk {}",
            chunk
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn backlog_behaves_like_its_model(
        max_messages in 1..=12usize,
        max_bytes in 1..=120usize,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let mut backlog = Backlog::new(max_messages, max_bytes);
        let mut cursors: Vec<Cursor> = Vec::new();
        let mut model = Model { max_messages, max_bytes, ..Model::default() };
        // Until the first plain push, every append went through try_push: nobody may lag.
        let mut only_try_push = true;
        for op in ops {
            match op {
                Op::Join => {
                    cursors.push(backlog.join());
                    let head = model.head();
                    model.readers.push(ModelReader { held: head, next: head, joined: true });
                }
                Op::Leave(reader) if !cursors.is_empty() => {
                    let reader = reader % cursors.len();
                    backlog.leave(&mut cursors[reader]);
                    // Leaving again is a no-op: nothing is released by it.
                    if std::mem::replace(&mut model.readers[reader].joined, false) {
                        model.release();
                    }
                }
                Op::Push { messages, len } if !model.finished => {
                    let id = model.head() as u8;
                    backlog.push(Chunk {
                        frames: Bytes::from(vec![id; len]),
                        messages,
                        since: Instant::now(),
                        enveloped: None,
                        named: None,
                    });
                    model.push(messages, len);
                    only_try_push = false;
                }
                Op::Read { reader, budget } if !cursors.is_empty() => {
                    let reader = reader % cursors.len();
                    let mut out = FrameQueue::default();
                    let read = backlog.read_from(&mut cursors[reader], &mut out, budget);
                    let expected = model.read(reader, budget);
                    let got = read.map(|read| {
                        let caught_up = model.readers[reader].next == model.head()
                            || !model.readers[reader].joined;
                        assert_eq!(read.caught_up, caught_up, "caught up");
                        assert_eq!(read.finished, caught_up && model.finished, "finished");
                        out.copy_to_bytes(out.remaining()).to_vec()
                    });
                    prop_assert!(!only_try_push || got.is_ok(), "lagged without a plain push");
                    prop_assert_eq!(got, expected);
                }
                Op::TryPush { messages, len } if !model.finished => {
                    let id = model.head() as u8;
                    let chunk = Chunk {
                        frames: Bytes::from(vec![id; len]),
                        messages,
                        since: Instant::now(),
                        enveloped: None,
                        named: None,
                    };
                    let kept_before = model.first;
                    let taken = model.try_push(messages, len);
                    prop_assert_eq!(backlog.try_push(chunk).is_ok(), taken);
                    if taken && only_try_push {
                        // Whatever it released was let go of by every reader: no lag.
                        prop_assert!(model.readers.iter().all(|r| !r.joined || r.held >= model.first),
                            "try_push forced out a held chunk (first was {})", kept_before);
                    }
                }
                Op::LetGo(reader) if !cursors.is_empty() => {
                    let reader = reader % cursors.len();
                    prop_assert_eq!(backlog.let_go(&mut cursors[reader]), model.let_go(reader));
                }
                Op::Finish => {
                    backlog.finish();
                    model.finished = true;
                }
                Op::Leave(_)
                | Op::Push { .. }
                | Op::TryPush { .. }
                | Op::Read { .. }
                | Op::LetGo(_) => {}
            }
            check(&backlog, &model)?;
        }
    }
}
