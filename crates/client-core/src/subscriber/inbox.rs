//! The way from a subscriber's connection task to its stream: an unbounded channel whose
//! content the [`ReceiveBuffer`] bounds, and the end of the stream that yields it.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::buffer::ReceiveBuffer;
use crate::{ClientError, ClientOptions};

/// What an item costs in the receive buffer, in bytes.
pub(crate) trait Weigh {
    /// The bytes this item holds.
    fn weight(&self) -> usize;
}

impl Weigh for Bytes {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// A channel from a connection task to a stream, bounded by the options' receive buffer.
pub(crate) fn inbox<T>(options: &ClientOptions) -> (Outbox<T>, Inbox<T>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let buffer = Arc::new(ReceiveBuffer::new(
        options.receive_buffer_messages,
        options.receive_buffer_bytes,
    ));
    let outbox = Outbox {
        sender,
        buffer: Arc::clone(&buffer),
    };
    let inbox = Inbox {
        receiver,
        buffer,
        terminated: false,
    };
    (outbox, inbox)
}

/// The connection task's end.
#[derive(Debug)]
pub(crate) struct Outbox<T> {
    sender: mpsc::UnboundedSender<Result<T, ClientError>>,
    buffer: Arc<ReceiveBuffer>,
}

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        Outbox {
            sender: self.sender.clone(),
            buffer: Arc::clone(&self.buffer),
        }
    }
}

/// What became of an item handed to [`Outbox::send`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// It waits for the stream.
    Queued,
    /// The stream is gone: nobody wants it.
    Unwanted,
}

impl<T: Weigh> Outbox<T> {
    /// Makes room for `item` in the receive buffer, or says the consumer fell behind
    /// ([`ClientError::Lagged`]) when it would cross the buffer's bounds. [`Outbox::send`]
    /// must follow.
    pub(crate) fn reserve(&self, item: &T) -> Result<(), ClientError> {
        self.buffer.admit(item.weight())
    }

    /// Queues `item`, for which [`Outbox::reserve`] made room, for the stream.
    pub(crate) fn send(&self, item: T) -> Delivery {
        let weight = item.weight();
        if self.sender.send(Ok(item)).is_err() {
            self.buffer.release(weight);
            return Delivery::Unwanted;
        }
        Delivery::Queued
    }

    /// Ends the stream with `error`, after everything queued before.
    pub(crate) fn end(&self, error: ClientError) {
        // The stream's last item; if the stream is gone, nobody needs it.
        let _sent = self.sender.send(Err(error));
    }

    /// Waits until the stream has taken everything queued.
    pub(crate) async fn drained(&self) {
        self.buffer.emptied().await;
    }
}

/// The stream's end: yields the items, then the error the task ended with, then `None`.
#[derive(Debug)]
pub(crate) struct Inbox<T> {
    receiver: mpsc::UnboundedReceiver<Result<T, ClientError>>,
    buffer: Arc<ReceiveBuffer>,
    terminated: bool,
}

impl<T: Weigh> Inbox<T> {
    /// The next item, making room in the receive buffer for another.
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<T, ClientError>>> {
        if self.terminated {
            return Poll::Ready(None);
        }
        let next = std::task::ready!(self.receiver.poll_recv(cx));
        match &next {
            Some(Ok(item)) => self.buffer.release(item.weight()),
            Some(Err(_)) => {}
            None => self.terminated = true,
        }
        Poll::Ready(next)
    }

    /// Whether the stream has yielded `None`.
    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated
    }
}
