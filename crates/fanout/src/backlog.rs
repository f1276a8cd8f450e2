//! A topic's backlog: the bounded window of recent messages that its subscribers read from.
//!
//! The topic actor is the backlog's only writer, so every subscriber sees one order. Messages
//! are stored encoded, as [`Chunk`]s of frames, once however many subscribers the topic has.
//! Each subscriber ([`Backlog::join`]) keeps its own [`Cursor`]; its pending queue is exactly
//! the span between its cursor and the head.
//!
//! Two things free a chunk: every reader has read it (each chunk counts the reads it still
//! waits for, so a burst is released as soon as the slowest reader is past it), or the message
//! or byte bound forces it out. A reader that had not read a chunk forced out has fallen too far
//! behind: it learns so ([`Lagged`]) and is closed, never silently skipped.
//!
//! This window is also where history and replay can live later.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::frames::{Chunk, FrameQueue};

/// The bounded window of a topic's most recent messages.
#[derive(Debug)]
pub struct Backlog {
    /// The chunks, oldest first.
    entries: VecDeque<Entry>,
    /// Position of `entries[0]`.
    first: Cursor,
    /// Messages in `entries`.
    messages: usize,
    /// Bytes in `entries`.
    bytes: usize,
    /// Most messages kept.
    max_messages: usize,
    /// Most bytes kept (the newest chunk is always kept, whatever its size).
    max_bytes: usize,
    /// Readers registered; each new chunk waits for this many reads.
    readers: usize,
}

/// A chunk and the number of readers that have yet to read it.
#[derive(Debug)]
struct Entry {
    chunk: Chunk,
    /// Decremented by readers through a shared reference, hence atomic.
    unread: AtomicUsize,
}

/// A position in a backlog: which chunk comes next, and how many messages came before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    chunk: u64,
    message: u64,
}

/// What one read from a backlog took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// The reader's cursor after the chunks it took.
    pub next: Cursor,
    /// Messages in the chunks it took.
    pub messages: u64,
    /// When the oldest of them was encoded, if it took any.
    pub oldest: Option<Instant>,
}

/// A reader's cursor pointed at a chunk the backlog had to drop before the reader read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged {
    /// How many messages the reader would have missed.
    pub missed: u64,
}

impl Backlog {
    /// An empty backlog that keeps at most `max_messages` messages and about `max_bytes`
    /// bytes of frames.
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        Backlog {
            entries: VecDeque::new(),
            first: Cursor::default(),
            messages: 0,
            bytes: 0,
            max_messages: max_messages.max(1),
            max_bytes,
            readers: 0,
        }
    }

    /// The position after the newest chunk.
    pub fn head(&self) -> Cursor {
        Cursor {
            chunk: self.first.chunk + self.entries.len() as u64,
            message: self.first.message + self.messages as u64,
        }
    }

    /// Registers a reader; it will read every chunk pushed from now on, starting at the
    /// returned cursor.
    pub fn join(&mut self) -> Cursor {
        self.readers += 1;
        self.head()
    }

    /// Unregisters a reader whose next chunk was `cursor`: the chunks it will not read stop
    /// waiting for it.
    pub fn leave(&mut self, cursor: Cursor) {
        self.readers = self.readers.saturating_sub(1);
        for entry in self.entries.iter().skip(self.index_of(cursor)) {
            entry.unread.fetch_sub(1, Ordering::AcqRel);
        }
        self.release_read();
    }

    /// Number of chunks held (for tests and diagnostics).
    pub fn chunks(&self) -> usize {
        self.entries.len()
    }

    /// Appends a chunk, releasing the chunks every reader has read and dropping the oldest
    /// ones past the bounds.
    pub fn push(&mut self, chunk: Chunk) {
        self.release_read();
        self.messages += chunk.messages as usize;
        self.bytes += chunk.frames.len();
        self.entries.push_back(Entry {
            chunk,
            unread: AtomicUsize::new(self.readers),
        });
        while self.entries.len() > 1
            && (self.messages > self.max_messages || self.bytes > self.max_bytes)
        {
            self.pop_front();
        }
    }

    /// Queues (by reference) the chunks from `cursor` on into `out`, stopping once about
    /// `batch_bytes` are queued, and says what it took. Each chunk must be read once per
    /// reader: pass the returned cursor next time.
    pub fn read_from(
        &self,
        cursor: Cursor,
        out: &mut FrameQueue,
        batch_bytes: usize,
    ) -> Result<Read, Lagged> {
        if cursor.chunk < self.first.chunk {
            return Err(Lagged {
                missed: self.first.message - cursor.message,
            });
        }
        let mut next = cursor;
        let mut oldest = None;
        let mut taken = 0;
        for entry in self.entries.iter().skip(self.index_of(cursor)) {
            if taken >= batch_bytes {
                break;
            }
            taken += entry.chunk.frames.len();
            oldest.get_or_insert(entry.chunk.encoded_at);
            out.push(entry.chunk.frames.clone());
            entry.unread.fetch_sub(1, Ordering::AcqRel);
            next.chunk += 1;
            next.message += u64::from(entry.chunk.messages);
        }
        Ok(Read {
            next,
            messages: next.message - cursor.message,
            oldest,
        })
    }

    /// Index in `entries` of the chunk at `cursor` (0 for a cursor before the first).
    fn index_of(&self, cursor: Cursor) -> usize {
        usize::try_from(cursor.chunk.saturating_sub(self.first.chunk)).unwrap_or(usize::MAX)
    }

    /// Drops the leading chunks that no reader still needs.
    fn release_read(&mut self) {
        while self
            .entries
            .front()
            .is_some_and(|entry| entry.unread.load(Ordering::Acquire) == 0)
        {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(oldest) = self.entries.pop_front() {
            self.messages -= oldest.chunk.messages as usize;
            self.bytes -= oldest.chunk.frames.len();
            self.first.chunk += 1;
            self.first.message += u64::from(oldest.chunk.messages);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Buf, Bytes};

    use super::*;

    fn chunk(messages: u32, len: usize) -> Chunk {
        Chunk {
            frames: Bytes::from(vec![messages as u8; len]),
            messages,
            encoded_at: Instant::now(),
        }
    }

    fn read_all(backlog: &Backlog, cursor: Cursor) -> Result<(Vec<u8>, Cursor), Lagged> {
        let mut out = FrameQueue::default();
        let read = backlog.read_from(cursor, &mut out, usize::MAX)?;
        Ok((out.copy_to_bytes(out.remaining()).to_vec(), read.next))
    }

    #[test]
    fn readers_see_every_chunk_in_order() {
        let mut backlog = Backlog::new(100, 1 << 20);
        let start = backlog.join();
        for n in 1..=3 {
            backlog.push(chunk(n, 2));
        }
        let (bytes, next) = read_all(&backlog, start).expect("not lagged");
        assert_eq!(bytes, vec![1, 1, 2, 2, 3, 3]);
        assert_eq!(next, backlog.head());
        assert_eq!(next.message, 6);
    }

    #[test]
    fn batches_stop_after_the_byte_budget() {
        let mut backlog = Backlog::new(100, 1 << 20);
        let start = backlog.join();
        for _ in 0..10 {
            backlog.push(chunk(1, 100));
        }
        let mut out = FrameQueue::default();
        let read = backlog.read_from(start, &mut out, 250).expect("not lagged");
        assert_eq!(
            out.remaining(),
            300,
            "stops once the budget is reached, not before"
        );
        assert_eq!(read.messages, 3);
        assert!(read.oldest.is_some());
        let (rest, end) = read_all(&backlog, read.next).expect("not lagged");
        assert_eq!(rest.len(), 700);
        assert_eq!(end, backlog.head());
    }

    #[test]
    fn message_bound_drops_unread_chunks_and_reports_lag_in_messages() {
        let mut backlog = Backlog::new(4, 1 << 20);
        let slow = backlog.join();
        backlog.push(chunk(2, 1));
        let late = backlog.join();
        backlog.push(chunk(2, 1));
        backlog.push(chunk(1, 1));
        assert_eq!(read_all(&backlog, slow), Err(Lagged { missed: 2 }));
        let (bytes, _) = read_all(&backlog, late).expect("still there");
        assert_eq!(bytes, vec![2, 1]);
    }

    #[test]
    fn byte_bound_keeps_at_least_the_newest_chunk() {
        let mut backlog = Backlog::new(100, 10);
        let reader = backlog.join();
        backlog.push(chunk(1, 6));
        backlog.push(chunk(1, 6));
        assert_eq!(read_all(&backlog, reader), Err(Lagged { missed: 1 }));
        backlog.push(chunk(1, 50));
        assert_eq!(backlog.chunks(), 1);
        let newest = Cursor {
            chunk: 2,
            message: 2,
        };
        let (bytes, _) = read_all(&backlog, newest).expect("newest kept");
        assert_eq!(bytes.len(), 50);
    }

    #[test]
    fn chunks_every_reader_has_read_are_released() {
        let mut backlog = Backlog::new(100, 1 << 20);
        let fast = backlog.join();
        let slow = backlog.join();
        backlog.push(chunk(1, 10));
        backlog.push(chunk(1, 10));
        let (_, fast) = read_all(&backlog, fast).expect("not lagged");
        backlog.push(chunk(1, 10));
        assert_eq!(backlog.chunks(), 3, "the slow reader still needs all three");
        let (bytes, slow) = read_all(&backlog, slow).expect("not lagged");
        assert_eq!(bytes.len(), 30);
        backlog.push(chunk(1, 10));
        assert_eq!(
            backlog.chunks(),
            2,
            "both read the first two; the third waits for the fast one"
        );
        let (bytes, fast) = read_all(&backlog, fast).expect("not lagged");
        assert_eq!(bytes.len(), 20);
        let (bytes, _) = read_all(&backlog, slow).expect("not lagged");
        assert_eq!(bytes.len(), 10);
        backlog.push(chunk(1, 10));
        assert_eq!(backlog.chunks(), 1, "only the new chunk is left");
        assert_eq!(fast.message, 4);
    }

    #[test]
    fn a_reader_that_leaves_releases_what_it_did_not_read() {
        let mut backlog = Backlog::new(100, 1 << 20);
        let stays = backlog.join();
        let leaves = backlog.join();
        backlog.push(chunk(1, 10));
        backlog.push(chunk(1, 10));
        let _ = read_all(&backlog, stays).expect("not lagged");
        assert_eq!(backlog.chunks(), 2);
        backlog.leave(leaves);
        assert_eq!(backlog.chunks(), 0, "nobody needs them any more");
    }

    #[test]
    fn without_readers_nothing_is_kept_past_the_next_push() {
        let mut backlog = Backlog::new(100, 1 << 20);
        backlog.push(chunk(1, 10));
        backlog.push(chunk(1, 10));
        assert_eq!(backlog.chunks(), 1);
        let reader = backlog.join();
        assert_eq!(
            reader,
            backlog.head(),
            "a new reader starts after what is there"
        );
    }

    #[test]
    fn caught_up_reader_gets_nothing() {
        let mut backlog = Backlog::new(4, 100);
        let reader = backlog.join();
        backlog.push(chunk(1, 1));
        let (_, reader) = read_all(&backlog, reader).expect("not lagged");
        let (bytes, next) = read_all(&backlog, reader).expect("not lagged");
        assert!(bytes.is_empty());
        assert_eq!(next, backlog.head());
    }
}
