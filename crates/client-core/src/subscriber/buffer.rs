//! The subscriber's receive buffer bound: what the connection task has received and the
//! stream has not yet yielded, counted in messages and bytes.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::ClientError;

/// Counts what waits between the connection task and the stream, against two bounds.
///
/// Only the task adds and only the stream takes away, so a check followed by an add cannot
/// overshoot: the stream can only make room in between.
#[derive(Debug)]
pub(crate) struct ReceiveBuffer {
    messages: AtomicUsize,
    bytes: AtomicUsize,
    max_messages: usize,
    max_bytes: usize,
}

impl ReceiveBuffer {
    /// An empty buffer with these bounds.
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        ReceiveBuffer {
            messages: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max_messages,
            max_bytes,
        }
    }

    /// Counts one more message of `len` bytes, or says the consumer fell behind when it would
    /// cross a bound. An empty buffer takes any one message, however large.
    pub(crate) fn admit(&self, len: usize) -> Result<(), ClientError> {
        let messages = self.messages.load(Ordering::Acquire);
        let bytes = self.bytes.load(Ordering::Acquire);
        if messages > 0
            && (messages >= self.max_messages || bytes.saturating_add(len) > self.max_bytes)
        {
            return Err(ClientError::Lagged { messages, bytes });
        }
        self.messages.fetch_add(1, Ordering::AcqRel);
        self.bytes.fetch_add(len, Ordering::AcqRel);
        Ok(())
    }

    /// Uncounts a message of `len` bytes that the stream yielded.
    pub(crate) fn release(&self, len: usize) {
        self.messages.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(len, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_bound_the_buffer_and_reading_makes_room() {
        let buffer = ReceiveBuffer::new(100, 10);
        buffer.admit(6).expect("room");
        buffer.admit(4).expect("room, exactly");
        assert!(matches!(
            buffer.admit(1),
            Err(ClientError::Lagged {
                messages: 2,
                bytes: 10
            })
        ));
        buffer.release(6);
        buffer.admit(6).expect("room again");
    }

    #[test]
    fn messages_bound_the_buffer_even_when_empty_ones() {
        let buffer = ReceiveBuffer::new(2, 1 << 20);
        buffer.admit(0).expect("room");
        buffer.admit(0).expect("room");
        assert!(matches!(
            buffer.admit(0),
            Err(ClientError::Lagged { messages: 2, .. })
        ));
    }

    #[test]
    fn an_empty_buffer_takes_one_message_larger_than_its_bound() {
        let buffer = ReceiveBuffer::new(10, 10);
        buffer.admit(100).expect("alone, it fits");
        assert!(buffer.admit(1).is_err());
    }
}
