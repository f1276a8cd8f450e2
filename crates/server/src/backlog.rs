//! A topic's backlog: the bounded window of recent messages that its subscribers read from.
//!
//! The topic actor is the backlog's only writer, so every subscriber sees one order. Each
//! subscriber keeps its own cursor (a sequence number) into it; the backlog is shared, so a
//! message is stored once however many subscribers the topic has, and a subscriber's pending
//! queue is exactly the span between its cursor and the head. When the backlog's message or
//! byte bound forces out a message a subscriber has not read yet, that subscriber has fallen
//! too far behind: it learns so ([`Lagged`]) and is closed, never silently skipped.
//!
//! This window is also where history and replay can live later.

use std::collections::VecDeque;

use bytes::Bytes;

/// The bounded window of a topic's most recent messages.
#[derive(Debug)]
pub(crate) struct Backlog {
    /// The messages, oldest first.
    messages: VecDeque<Bytes>,
    /// Sequence number of `messages[0]`.
    first_seq: u64,
    /// Sum of the lengths of `messages`.
    bytes: usize,
    /// Most messages kept.
    max_messages: usize,
    /// Most bytes kept (the newest message is always kept, whatever its size).
    max_bytes: usize,
}

/// A subscriber's cursor pointed at a message the backlog has already dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lagged {
    /// How many messages the subscriber would have missed.
    pub(crate) missed: u64,
}

impl Backlog {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Backlog {
            messages: VecDeque::new(),
            first_seq: 0,
            bytes: 0,
            max_messages: max_messages.max(1),
            max_bytes,
        }
    }

    /// The sequence number the next message will get; a new subscriber starts here.
    pub(crate) fn head(&self) -> u64 {
        self.first_seq + self.messages.len() as u64
    }

    /// Appends a message, dropping the oldest ones past the bounds.
    pub(crate) fn push(&mut self, message: Bytes) {
        self.bytes += message.len();
        self.messages.push_back(message);
        while self.messages.len() > self.max_messages
            || (self.bytes > self.max_bytes && self.messages.len() > 1)
        {
            if let Some(oldest) = self.messages.pop_front() {
                self.bytes -= oldest.len();
                self.first_seq += 1;
            }
        }
    }

    /// Copies (by reference) the messages from `cursor` on into `out`, stopping once `out`
    /// holds at least `batch_bytes` bytes, and returns the cursor after them.
    pub(crate) fn read_from(
        &self,
        cursor: u64,
        out: &mut Vec<Bytes>,
        batch_bytes: usize,
    ) -> Result<u64, Lagged> {
        if cursor < self.first_seq {
            return Err(Lagged {
                missed: self.first_seq - cursor,
            });
        }
        let start = usize::try_from(cursor - self.first_seq).unwrap_or(usize::MAX);
        let mut taken_bytes = 0;
        let mut next = cursor;
        for message in self.messages.iter().skip(start) {
            if taken_bytes >= batch_bytes {
                break;
            }
            taken_bytes += message.len();
            out.push(message.clone());
            next += 1;
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u8, len: usize) -> Bytes {
        Bytes::from(vec![n; len])
    }

    #[test]
    fn readers_see_every_message_in_order() {
        let mut backlog = Backlog::new(100, 1 << 20);
        let start = backlog.head();
        for n in 0..10 {
            backlog.push(message(n, 3));
        }
        let mut out = Vec::new();
        let next = backlog
            .read_from(start, &mut out, usize::MAX)
            .expect("not lagged");
        assert_eq!(next, backlog.head());
        let firsts: Vec<u8> = out.iter().map(|m| m[0]).collect();
        assert_eq!(firsts, (0..10).collect::<Vec<u8>>());
    }

    #[test]
    fn batches_stop_after_the_byte_budget() {
        let mut backlog = Backlog::new(100, 1 << 20);
        for n in 0..10 {
            backlog.push(message(n, 100));
        }
        let mut out = Vec::new();
        let next = backlog.read_from(0, &mut out, 250).expect("not lagged");
        assert_eq!(out.len(), 3, "stops once the budget is reached, not before");
        let mut rest = Vec::new();
        assert_eq!(backlog.read_from(next, &mut rest, usize::MAX), Ok(10));
        assert_eq!(rest.len(), 7);
    }

    #[test]
    fn message_bound_drops_oldest_and_reports_lag() {
        let mut backlog = Backlog::new(4, 1 << 20);
        for n in 0..6 {
            backlog.push(message(n, 1));
        }
        let mut out = Vec::new();
        assert_eq!(
            backlog.read_from(0, &mut out, usize::MAX),
            Err(Lagged { missed: 2 })
        );
        assert!(out.is_empty());
        assert_eq!(backlog.read_from(2, &mut out, usize::MAX), Ok(6));
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn byte_bound_keeps_at_least_the_newest_message() {
        let mut backlog = Backlog::new(100, 10);
        backlog.push(message(1, 6));
        backlog.push(message(2, 6));
        let mut out = Vec::new();
        assert_eq!(
            backlog.read_from(0, &mut out, usize::MAX),
            Err(Lagged { missed: 1 })
        );
        backlog.push(message(3, 50));
        assert_eq!(backlog.read_from(2, &mut out, usize::MAX), Ok(3));
        assert_eq!(out, vec![message(3, 50)]);
    }

    #[test]
    fn caught_up_reader_gets_nothing() {
        let mut backlog = Backlog::new(4, 100);
        backlog.push(message(1, 1));
        let mut out = Vec::new();
        assert_eq!(backlog.read_from(1, &mut out, usize::MAX), Ok(1));
        assert!(out.is_empty());
    }
}
