//! A topic's backlog: the bounded window of recent messages that its subscribers read from.
//!
//! The topic actor is the backlog's only writer, so every subscriber sees one order. Messages
//! are stored encoded, as [`Chunk`]s of frames, once however many subscribers the topic has.
//! Each subscriber keeps its own [`Cursor`]; its pending queue is exactly the span between its
//! cursor and the head. When the message or byte bound forces out a chunk a subscriber has not
//! read yet, that subscriber has fallen too far behind: it learns so ([`Lagged`]) and is
//! closed, never silently skipped.
//!
//! This window is also where history and replay can live later.

use std::collections::VecDeque;

use crate::frames::{Chunk, FrameQueue};

/// The bounded window of a topic's most recent messages.
#[derive(Debug)]
pub struct Backlog {
    /// The chunks, oldest first.
    chunks: VecDeque<Chunk>,
    /// Position of `chunks[0]`.
    first: Cursor,
    /// Messages in `chunks`.
    messages: usize,
    /// Bytes in `chunks`.
    bytes: usize,
    /// Most messages kept.
    max_messages: usize,
    /// Most bytes kept (the newest chunk is always kept, whatever its size).
    max_bytes: usize,
}

/// A position in a backlog: which chunk comes next, and how many messages came before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    chunk: u64,
    message: u64,
}

/// A subscriber's cursor pointed at a chunk the backlog has already dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged {
    /// How many messages the subscriber would have missed.
    pub missed: u64,
}

impl Backlog {
    /// An empty backlog that keeps at most `max_messages` messages and about `max_bytes`
    /// bytes of frames.
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        Backlog {
            chunks: VecDeque::new(),
            first: Cursor::default(),
            messages: 0,
            bytes: 0,
            max_messages: max_messages.max(1),
            max_bytes,
        }
    }

    /// The position after the newest chunk; a new subscriber starts here.
    pub fn head(&self) -> Cursor {
        Cursor {
            chunk: self.first.chunk + self.chunks.len() as u64,
            message: self.first.message + self.messages as u64,
        }
    }

    /// Appends a chunk, dropping the oldest ones past the bounds.
    pub fn push(&mut self, chunk: Chunk) {
        self.messages += chunk.messages as usize;
        self.bytes += chunk.frames.len();
        self.chunks.push_back(chunk);
        while self.chunks.len() > 1
            && (self.messages > self.max_messages || self.bytes > self.max_bytes)
        {
            if let Some(oldest) = self.chunks.pop_front() {
                self.messages -= oldest.messages as usize;
                self.bytes -= oldest.frames.len();
                self.first.chunk += 1;
                self.first.message += u64::from(oldest.messages);
            }
        }
    }

    /// Queues (by reference) the chunks from `cursor` on into `out`, stopping once about
    /// `batch_bytes` are queued, and returns the cursor after them.
    pub fn read_from(
        &self,
        cursor: Cursor,
        out: &mut FrameQueue,
        batch_bytes: usize,
    ) -> Result<Cursor, Lagged> {
        if cursor.chunk < self.first.chunk {
            return Err(Lagged {
                missed: self.first.message - cursor.message,
            });
        }
        let start = usize::try_from(cursor.chunk - self.first.chunk).unwrap_or(usize::MAX);
        let mut next = cursor;
        let mut taken = 0;
        for chunk in self.chunks.iter().skip(start) {
            if taken >= batch_bytes {
                break;
            }
            taken += chunk.frames.len();
            out.push(chunk.frames.clone());
            next.chunk += 1;
            next.message += u64::from(chunk.messages);
        }
        Ok(next)
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
        }
    }

    fn read_all(backlog: &Backlog, cursor: Cursor) -> Result<(Vec<u8>, Cursor), Lagged> {
        let mut out = FrameQueue::default();
        let next = backlog.read_from(cursor, &mut out, usize::MAX)?;
        Ok((out.copy_to_bytes(out.remaining()).to_vec(), next))
    }

    #[test]
    fn readers_see_every_chunk_in_order() {
        let mut backlog = Backlog::new(100, 1 << 20);
        let start = backlog.head();
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
        for _ in 0..10 {
            backlog.push(chunk(1, 100));
        }
        let mut out = FrameQueue::default();
        let next = backlog
            .read_from(Cursor::default(), &mut out, 250)
            .expect("not lagged");
        assert_eq!(
            out.remaining(),
            300,
            "stops once the budget is reached, not before"
        );
        let (rest, end) = read_all(&backlog, next).expect("not lagged");
        assert_eq!(rest.len(), 700);
        assert_eq!(end, backlog.head());
    }

    #[test]
    fn message_bound_drops_oldest_and_reports_lag_in_messages() {
        let mut backlog = Backlog::new(4, 1 << 20);
        let start = backlog.head();
        backlog.push(chunk(2, 1));
        let after_first = backlog.head();
        backlog.push(chunk(2, 1));
        backlog.push(chunk(1, 1));
        assert_eq!(read_all(&backlog, start), Err(Lagged { missed: 2 }));
        let (bytes, _) = read_all(&backlog, after_first).expect("still there");
        assert_eq!(bytes, vec![2, 1]);
    }

    #[test]
    fn byte_bound_keeps_at_least_the_newest_chunk() {
        let mut backlog = Backlog::new(100, 10);
        backlog.push(chunk(1, 6));
        let second = backlog.head();
        backlog.push(chunk(1, 6));
        assert_eq!(
            read_all(&backlog, Cursor::default()),
            Err(Lagged { missed: 1 })
        );
        backlog.push(chunk(1, 50));
        assert_eq!(read_all(&backlog, second), Err(Lagged { missed: 1 }));
        let (bytes, _) = read_all(
            &backlog,
            Cursor {
                chunk: 2,
                message: 2,
            },
        )
        .expect("newest kept");
        assert_eq!(bytes.len(), 50);
    }

    #[test]
    fn caught_up_reader_gets_nothing() {
        let mut backlog = Backlog::new(4, 100);
        backlog.push(chunk(1, 1));
        let (bytes, next) = read_all(&backlog, backlog.head()).expect("not lagged");
        assert!(bytes.is_empty());
        assert_eq!(next, backlog.head());
    }
}
