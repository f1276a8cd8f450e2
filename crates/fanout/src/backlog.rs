//! A topic's backlog: the bounded window of recent messages that its subscribers read from.
//!
//! The topic actor is the backlog's only writer, so every subscriber sees one order. Messages
//! are stored encoded, as [`Chunk`]s of frames, once however many subscribers the topic has.
//! Each subscriber ([`Backlog::join`]) keeps its own [`Cursor`]; its pending queue is exactly
//! the span between the first chunk it still holds and the head.
//!
//! A reader holds the chunks of its last read (its socket may still be writing them) until its
//! next read or until it leaves, so what a subscriber has in flight counts against the bounds
//! like what it has yet to read. Two things free a chunk: every reader has let go of it (each
//! chunk counts the readers that still hold it, so a burst is released at the next append or
//! departure after the slowest reader is past it), or the message or byte bound forces it out.
//! A reader still holding a chunk forced out has fallen too far behind: it learns so
//! ([`Lagged`]) and is closed, never silently skipped.
//!
//! A writer that must not cut readers appends with [`Backlog::try_push`] instead: it appends
//! only what forces nothing out, and the writer waits (pushing back its own producers) until
//! the readers holding the backlog take more. A reader lets go of what it wrote at its next
//! read, or at once with [`Backlog::let_go`] (so that a reader that is idle holds nothing).
//!
//! Cursors come only from [`Backlog::join`] and are neither `Copy` nor `Clone`, and a cursor
//! that left is spent, so a chunk's count of readers cannot be decremented twice for one
//! reader, or for a reader it never counted: the counts cannot wrap.
//!
//! When the writer is done ([`Backlog::finish`]), a reader that has read everything learns
//! that nothing will follow ([`Read::finished`]): the end of a graceful drain.
//!
//! This window is also where history and replay can live later.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::frames::{Chunk, Form, FrameQueue};

#[cfg(test)]
mod model;

/// The bounded window of a topic's most recent messages.
#[derive(Debug)]
pub struct Backlog {
    /// The chunks, oldest first.
    entries: VecDeque<Entry>,
    /// Position of `entries[0]`.
    first: Position,
    /// Messages in `entries`.
    messages: usize,
    /// Bytes in `entries`.
    bytes: usize,
    /// Most messages kept.
    max_messages: usize,
    /// Most bytes kept (the newest chunk is always kept, whatever its size).
    max_bytes: usize,
    /// Readers registered; each new chunk waits for this many of them to let go.
    readers: usize,
    /// Whether the writer is done: no chunk will follow.
    finished: bool,
}

/// A chunk and the number of readers that still hold it or have yet to read it.
#[derive(Debug)]
struct Entry {
    chunk: Chunk,
    /// Decremented by readers through a shared reference, hence atomic.
    unread: AtomicUsize,
}

/// A place in a backlog: a chunk, and how many messages came before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Position {
    chunk: u64,
    message: u64,
}

/// One reader's place in a backlog. Only [`Backlog::join`] makes one, and it cannot be copied:
/// each chunk is let go of once per reader.
#[derive(Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The first chunk this reader still holds (read last time, or not yet read).
    held: Position,
    /// The next chunk it will read.
    next: Position,
    /// Whether it is still registered; false once it left.
    joined: bool,
    /// Which encoding of the chunks it takes.
    form: Form,
}

/// What one read from a backlog took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// Messages in the chunks it took.
    pub messages: u64,
    /// When the oldest of them arrived, if it took any.
    pub oldest: Option<Instant>,
    /// Whether the reader has taken everything there is for now.
    pub caught_up: bool,
    /// Whether the reader has taken everything there will ever be (the writer finished).
    pub finished: bool,
}

/// A reader fell out of the window: the backlog had to drop a chunk the reader still held or
/// had yet to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged {
    /// How many messages it would have missed: 0 when what overflowed the bound was the last
    /// read it still held (its socket was still writing it).
    pub missed: u64,
}

impl Backlog {
    /// An empty backlog that keeps at most `max_messages` messages and about `max_bytes`
    /// bytes of frames.
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        Backlog {
            entries: VecDeque::new(),
            first: Position::default(),
            messages: 0,
            bytes: 0,
            max_messages: max_messages.max(1),
            max_bytes,
            readers: 0,
            finished: false,
        }
    }

    /// The position after the newest chunk.
    fn head(&self) -> Position {
        Position {
            chunk: self.first.chunk + self.entries.len() as u64,
            message: self.first.message + self.messages as u64,
        }
    }

    /// Registers a reader; it will read every chunk pushed from now on, starting at the
    /// returned cursor (the only way to get one).
    pub fn join(&mut self) -> Cursor {
        self.join_as(Form::Raw)
    }

    /// As [`Self::join`], for a reader that takes the chunks in `form` (a stream-mode reader
    /// needs every chunk pushed from now on to carry [`Chunk::enveloped`]).
    pub fn join_as(&mut self, form: Form) -> Cursor {
        self.readers += 1;
        let head = self.head();
        Cursor {
            held: head,
            next: head,
            joined: true,
            form,
        }
    }

    /// Unregisters the reader of `cursor`: the chunks it held or had yet to read stop waiting
    /// for it. The cursor is spent: reading it takes nothing, leaving again does nothing.
    pub fn leave(&mut self, cursor: &mut Cursor) {
        if !std::mem::replace(&mut cursor.joined, false) {
            return;
        }
        self.readers -= 1;
        for entry in self.entries.iter().skip(self.index_of(cursor.held)) {
            entry.unread.fetch_sub(1, Ordering::AcqRel);
        }
        self.release_read();
    }

    /// Number of chunks held (for tests and diagnostics).
    pub fn chunks(&self) -> usize {
        self.entries.len()
    }

    /// Appends a chunk, releasing the chunks every reader has let go of and dropping the
    /// oldest ones past the bounds.
    pub fn push(&mut self, chunk: Chunk) {
        debug_assert!(!self.finished, "push after finish");
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

    /// Appends `chunk` if that forces nothing out: what the slowest reader still holds plus
    /// `chunk` stays within the bounds, or nothing is held at all (so even a chunk larger
    /// than the bounds goes in eventually). Otherwise gives `chunk` back, and nothing changes
    /// but the release of chunks every reader has let go of. Appending only this way, a
    /// writer never makes a reader lag.
    pub fn try_push(&mut self, chunk: Chunk) -> Result<(), Chunk> {
        self.release_read();
        let messages = self.messages + chunk.messages as usize;
        let bytes = self.bytes + chunk.frames.len();
        if !self.entries.is_empty() && (messages > self.max_messages || bytes > self.max_bytes) {
            return Err(chunk);
        }
        self.push(chunk);
        Ok(())
    }

    /// Marks the writer done: readers that read everything learn that nothing will follow.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Lets go of what `cursor` took last time (written by now), then queues (by reference)
    /// the chunks after it into `out`, stopping once about `batch_bytes` are queued, and says
    /// what it took. The reader holds those chunks until its next read or until it leaves.
    pub fn read_from(
        &self,
        cursor: &mut Cursor,
        out: &mut FrameQueue,
        batch_bytes: usize,
    ) -> Result<Read, Lagged> {
        let head = self.head();
        if !cursor.joined {
            return Ok(Read {
                messages: 0,
                oldest: None,
                caught_up: true,
                finished: self.finished,
            });
        }
        if cursor.held.chunk < self.first.chunk {
            return Err(Lagged {
                missed: self.first.message.saturating_sub(cursor.next.message),
            });
        }
        self.let_go(cursor);
        let next = self.index_of(cursor.next);
        let mut oldest = None;
        let mut taken = 0;
        for entry in self.entries.range(next..) {
            if taken >= batch_bytes {
                break;
            }
            let frames = entry.chunk.frames_in(cursor.form);
            taken += frames.len();
            oldest.get_or_insert(entry.chunk.since);
            out.push(frames.clone());
            cursor.next.chunk += 1;
            cursor.next.message += u64::from(entry.chunk.messages);
        }
        let caught_up = cursor.next == head;
        Ok(Read {
            messages: cursor.next.message - cursor.held.message,
            oldest,
            caught_up,
            finished: caught_up && self.finished,
        })
    }

    /// Lets go of what `cursor` took last time (written by now) without taking more; says
    /// whether it held anything. [`Self::read_from`] does this first; a reader that has
    /// written everything calls it so as not to hold the backlog while idle.
    pub fn let_go(&self, cursor: &mut Cursor) -> bool {
        if !cursor.joined || cursor.held.chunk < self.first.chunk || cursor.held == cursor.next {
            return false;
        }
        let held = self.index_of(cursor.held);
        let next = self.index_of(cursor.next);
        // SeqCst, as the loads in `release_read`: a writer that announced it waits for room
        // and then finds none is sure that every later let-go sees its announcement.
        for entry in self.entries.range(held..next) {
            entry.unread.fetch_sub(1, Ordering::SeqCst);
        }
        cursor.held = cursor.next;
        true
    }

    /// Index in `entries` of the chunk at `position` (0 for a position before the first).
    fn index_of(&self, position: Position) -> usize {
        usize::try_from(position.chunk.saturating_sub(self.first.chunk)).unwrap_or(usize::MAX)
    }

    /// Drops the leading chunks that no reader still needs.
    fn release_read(&mut self) {
        while self
            .entries
            .front()
            .is_some_and(|entry| entry.unread.load(Ordering::SeqCst) == 0)
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
            since: Instant::now(),
            enveloped: None,
            named: None,
        }
    }

    fn read_all(backlog: &Backlog, cursor: &mut Cursor) -> Result<Vec<u8>, Lagged> {
        let mut out = FrameQueue::default();
        backlog.read_from(cursor, &mut out, usize::MAX)?;
        Ok(out.copy_to_bytes(out.remaining()).to_vec())
    }

    #[test]
    fn readers_see_every_chunk_in_order() {
        let mut backlog = Backlog::new(100, 1 << 20);
        let mut reader = backlog.join();
        for n in 1..=3 {
            backlog.push(chunk(n, 2));
        }
        let mut out = FrameQueue::default();
        let read = backlog
            .read_from(&mut reader, &mut out, usize::MAX)
            .expect("not lagged");
        assert_eq!(out.copy_to_bytes(6).as_ref(), [1, 1, 2, 2, 3, 3]);
        assert_eq!(read.messages, 6);
        assert!(read.caught_up && !read.finished);
    }

    #[test]
    fn batches_stop_after_the_byte_budget() {
        let mut backlog = Backlog::new(100, 1 << 20);
        let mut reader = backlog.join();
        for _ in 0..10 {
            backlog.push(chunk(1, 100));
        }
        let mut out = FrameQueue::default();
        let read = backlog
            .read_from(&mut reader, &mut out, 250)
            .expect("not lagged");
        assert_eq!(
            out.remaining(),
            300,
            "stops once the budget is reached, not before"
        );
        assert_eq!(read.messages, 3);
        assert!(read.oldest.is_some() && !read.caught_up);
        assert_eq!(
            read_all(&backlog, &mut reader).expect("not lagged").len(),
            700
        );
    }

    #[test]
    fn message_bound_drops_unread_chunks_and_reports_lag_in_messages() {
        let mut backlog = Backlog::new(4, 1 << 20);
        let mut slow = backlog.join();
        backlog.push(chunk(2, 1));
        let mut late = backlog.join();
        backlog.push(chunk(2, 1));
        backlog.push(chunk(1, 1));
        assert_eq!(read_all(&backlog, &mut slow), Err(Lagged { missed: 2 }));
        assert_eq!(read_all(&backlog, &mut late), Ok(vec![2, 1]));
    }

    #[test]
    fn byte_bound_keeps_at_least_the_newest_chunk() {
        let mut backlog = Backlog::new(100, 10);
        let mut reader = backlog.join();
        backlog.push(chunk(1, 6));
        backlog.push(chunk(1, 6));
        assert_eq!(read_all(&backlog, &mut reader), Err(Lagged { missed: 1 }));
        let mut newest = backlog.join();
        backlog.push(chunk(1, 50));
        assert_eq!(backlog.chunks(), 1);
        assert_eq!(read_all(&backlog, &mut newest).map(|b| b.len()), Ok(50));
    }

    #[test]
    fn chunks_every_reader_has_let_go_of_are_released() {
        let mut backlog = Backlog::new(100, 1 << 20);
        let mut fast = backlog.join();
        let mut slow = backlog.join();
        backlog.push(chunk(1, 10));
        backlog.push(chunk(1, 10));
        let _ = read_all(&backlog, &mut fast).expect("not lagged");
        backlog.push(chunk(1, 10));
        assert_eq!(backlog.chunks(), 3, "the slow reader still needs all three");
        assert_eq!(read_all(&backlog, &mut slow).map(|b| b.len()), Ok(30));
        assert_eq!(read_all(&backlog, &mut fast).map(|b| b.len()), Ok(10));
        backlog.push(chunk(1, 10));
        assert_eq!(
            backlog.chunks(),
            4,
            "the slow reader still holds all three: its socket may be writing them"
        );
        assert_eq!(read_all(&backlog, &mut slow).map(|b| b.len()), Ok(10));
        backlog.push(chunk(1, 10));
        assert_eq!(
            backlog.chunks(),
            3,
            "the first two are let go of by both; the fast one holds the third"
        );
    }

    #[test]
    fn what_a_reader_still_writes_counts_against_the_bound() {
        let mut backlog = Backlog::new(100, 25);
        let mut reader = backlog.join();
        backlog.push(chunk(1, 10));
        backlog.push(chunk(1, 10));
        assert_eq!(read_all(&backlog, &mut reader).map(|b| b.len()), Ok(20));
        // 20 bytes in flight and 10 more pushed: over the 25-byte bound.
        backlog.push(chunk(1, 10));
        assert_eq!(read_all(&backlog, &mut reader), Err(Lagged { missed: 0 }));
    }

    #[test]
    fn a_reader_that_leaves_releases_what_it_did_not_read() {
        let mut backlog = Backlog::new(100, 1 << 20);
        let mut stays = backlog.join();
        let mut leaves = backlog.join();
        backlog.push(chunk(1, 10));
        backlog.push(chunk(1, 10));
        let _ = read_all(&backlog, &mut stays).expect("not lagged");
        let _ = read_all(&backlog, &mut stays).expect("let go of the first read");
        assert_eq!(backlog.chunks(), 2);
        backlog.leave(&mut leaves);
        assert_eq!(backlog.chunks(), 0, "nobody needs them any more");
    }

    #[test]
    fn leaving_twice_changes_nothing_and_a_spent_cursor_reads_nothing() {
        let mut backlog = Backlog::new(100, 1 << 20);
        let mut leaves = backlog.join();
        let mut stays = backlog.join();
        backlog.push(chunk(1, 10));
        backlog.leave(&mut leaves);
        backlog.leave(&mut leaves);
        backlog.push(chunk(2, 10));
        assert_eq!(
            read_all(&backlog, &mut stays).map(|b| b.len()),
            Ok(20),
            "the other reader's chunks were not released under it"
        );
        assert_eq!(read_all(&backlog, &mut leaves), Ok(Vec::new()));
    }

    #[test]
    fn without_readers_nothing_is_kept_past_the_next_push() {
        let mut backlog = Backlog::new(100, 1 << 20);
        backlog.push(chunk(1, 10));
        backlog.push(chunk(1, 10));
        assert_eq!(backlog.chunks(), 1);
        let mut reader = backlog.join();
        assert_eq!(
            read_all(&backlog, &mut reader),
            Ok(Vec::new()),
            "a new reader starts after what is there"
        );
    }

    #[test]
    fn a_finished_backlog_says_so_once_a_reader_has_everything() {
        let mut backlog = Backlog::new(100, 1 << 20);
        let mut reader = backlog.join();
        backlog.push(chunk(1, 10));
        backlog.push(chunk(1, 10));
        backlog.finish();
        let mut out = FrameQueue::default();
        let first = backlog
            .read_from(&mut reader, &mut out, 5)
            .expect("not lagged");
        assert!(!first.caught_up && !first.finished);
        let last = backlog
            .read_from(&mut reader, &mut out, 5)
            .expect("not lagged");
        assert!(last.caught_up && last.finished);
        assert_eq!(out.remaining(), 20);
    }

    #[test]
    fn try_push_refuses_what_would_force_out_a_held_chunk_until_the_reader_takes_more() {
        let mut backlog = Backlog::new(100, 25);
        let mut reader = backlog.join();
        assert_eq!(backlog.try_push(chunk(1, 10)), Ok(()));
        assert_eq!(backlog.try_push(chunk(1, 10)), Ok(()));
        let refused = backlog
            .try_push(chunk(1, 10))
            .expect_err("30 bytes over a 25-byte bound");
        assert_eq!(backlog.chunks(), 2, "nothing forced out");
        assert_eq!(read_all(&backlog, &mut reader).map(|b| b.len()), Ok(20));
        assert_eq!(
            backlog.try_push(refused.clone()),
            Err(refused.clone()),
            "the reader still holds what it is writing"
        );
        assert!(backlog.let_go(&mut reader), "it held two chunks");
        assert!(!backlog.let_go(&mut reader), "and now nothing");
        assert_eq!(backlog.try_push(refused), Ok(()));
        assert_eq!(read_all(&backlog, &mut reader).map(|b| b.len()), Ok(10));
    }

    #[test]
    fn try_push_counts_messages_and_always_takes_a_chunk_into_an_empty_backlog() {
        let mut backlog = Backlog::new(3, 1 << 20);
        let mut reader = backlog.join();
        assert_eq!(backlog.try_push(chunk(2, 1)), Ok(()));
        assert!(backlog.try_push(chunk(2, 1)).is_err(), "4 messages over 3");
        assert_eq!(read_all(&backlog, &mut reader).map(|b| b.len()), Ok(1));
        backlog.let_go(&mut reader);
        assert_eq!(
            backlog.try_push(chunk(5, 1)),
            Ok(()),
            "larger than the bound, but nothing is held"
        );
        assert_eq!(read_all(&backlog, &mut reader), Ok(vec![5]));
    }

    #[test]
    fn a_reader_that_left_holds_nothing_back() {
        let mut backlog = Backlog::new(100, 10);
        let mut stalled = backlog.join();
        assert_eq!(backlog.try_push(chunk(1, 10)), Ok(()));
        assert!(backlog.try_push(chunk(1, 10)).is_err());
        backlog.leave(&mut stalled);
        assert_eq!(backlog.try_push(chunk(1, 10)), Ok(()));
        assert!(
            !backlog.let_go(&mut stalled),
            "a spent cursor holds nothing"
        );
    }
}
