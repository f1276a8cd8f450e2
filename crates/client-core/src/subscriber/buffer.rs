//! The subscriber's receive buffer bound: what the connection task has received and the
//! stream has not yet yielded, counted in messages and bytes.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

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
    /// Told when the stream takes the last message out.
    empty: Notify,
}

impl ReceiveBuffer {
    /// An empty buffer with these bounds.
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        ReceiveBuffer {
            messages: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max_messages,
            max_bytes,
            empty: Notify::new(),
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
        self.bytes.fetch_sub(len, Ordering::AcqRel);
        if self.messages.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.empty.notify_waiters();
        }
    }

    /// Waits until the stream has taken every message out.
    pub(crate) async fn emptied(&self) {
        loop {
            // Registered before the check, so a release in between is not missed.
            let released = self.empty.notified();
            if self.messages.load(Ordering::Acquire) == 0 {
                return;
            }
            released.await;
        }
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

    #[tokio::test]
    async fn emptied_waits_for_the_last_release() {
        let buffer = std::sync::Arc::new(ReceiveBuffer::new(10, 100));
        buffer.emptied().await;
        buffer.admit(1).expect("room");
        buffer.admit(1).expect("room");
        let waiter = tokio::spawn({
            let buffer = std::sync::Arc::clone(&buffer);
            async move { buffer.emptied().await }
        });
        buffer.release(1);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one message is still buffered");
        buffer.release(1);
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("emptied")
            .expect("waiter");
    }

    #[test]
    fn an_empty_buffer_takes_one_message_larger_than_its_bound() {
        let buffer = ReceiveBuffer::new(10, 10);
        buffer.admit(100).expect("alone, it fits");
        assert!(buffer.admit(1).is_err());
    }
}
