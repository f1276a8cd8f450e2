//! A stream-mode publisher's messages written and not yet acknowledged: kept until the
//! server's cumulative ack covers them, re-sent in order on a new connection.

use std::collections::VecDeque;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::ClientError;

/// Told how a message confirmed with `publish_confirmed` fared.
pub(crate) type Confirm = oneshot::Sender<Result<(), ClientError>>;

/// Messages written on the connections so far and not acknowledged, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Unacked {
    pending: VecDeque<(Bytes, Option<Confirm>)>,
    /// Bytes of the messages in `pending`.
    bytes: usize,
    /// How many of this connection's messages the server has acknowledged.
    acked: u64,
}

impl Unacked {
    /// Messages waiting for an ack.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Their bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether every message written has been acknowledged.
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// `message` was written on the current connection.
    pub(crate) fn written(&mut self, message: Bytes, confirm: Option<Confirm>) {
        self.bytes += message.len();
        self.pending.push_back((message, confirm));
    }

    /// The server acknowledged the first `count` messages of this connection: confirms
    /// those not confirmed before.
    pub(crate) fn ack(&mut self, count: u64) {
        let newly = count.saturating_sub(self.acked);
        self.acked = self.acked.max(count);
        for _ in 0..newly {
            let Some((message, confirm)) = self.pending.pop_front() else {
                tracing::warn!(
                    count,
                    "the server acknowledged more messages than were sent"
                );
                return;
            };
            self.bytes -= message.len();
            if let Some(confirm) = confirm {
                // The asker may have stopped waiting.
                let _told = confirm.send(Ok(()));
            }
        }
    }

    /// A new connection begins: the messages to write on it first, in order (every one not
    /// acknowledged), after which they count as its first messages.
    pub(crate) fn resend(&mut self) -> impl Iterator<Item = Bytes> + '_ {
        self.acked = 0;
        self.pending.iter().map(|(message, _)| message.clone())
    }

    /// The publisher ends with `error`: every message not acknowledged fails with it.
    pub(crate) fn fail(&mut self, error: &ClientError) {
        self.bytes = 0;
        for (_, confirm) in self.pending.drain(..) {
            if let Some(confirm) = confirm {
                let _told = confirm.send(Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confirmed(
        unacked: &mut Unacked,
        message: &'static [u8],
    ) -> oneshot::Receiver<Result<(), ClientError>> {
        let (confirm, confirmed) = oneshot::channel();
        unacked.written(Bytes::from_static(message), Some(confirm));
        confirmed
    }

    #[test]
    fn cumulative_acks_confirm_in_order_and_resends_restart_the_count() {
        let mut unacked = Unacked::default();
        let mut first = confirmed(&mut unacked, b"one");
        let mut second = confirmed(&mut unacked, b"two");
        unacked.written(Bytes::from_static(b"three"), None);
        assert_eq!((unacked.len(), unacked.bytes()), (3, 11));
        unacked.ack(1);
        assert!(matches!(first.try_recv(), Ok(Ok(()))));
        assert!(second.try_recv().is_err(), "not covered yet");
        unacked.ack(1);
        assert_eq!(unacked.len(), 2, "a repeated ack confirms nothing more");
        let resent: Vec<Bytes> = unacked.resend().collect();
        assert_eq!(resent, [&b"two"[..], &b"three"[..]]);
        unacked.ack(1);
        assert!(
            matches!(second.try_recv(), Ok(Ok(()))),
            "counted from the new connection"
        );
        unacked.ack(5);
        assert!(unacked.is_empty());
        assert_eq!(unacked.bytes(), 0);
    }

    #[test]
    fn failing_tells_every_waiter() {
        let mut unacked = Unacked::default();
        let mut waiting = confirmed(&mut unacked, b"x");
        unacked.fail(&ClientError::Closed);
        assert!(matches!(waiting.try_recv(), Ok(Err(ClientError::Closed))));
        assert!(unacked.is_empty());
    }
}
