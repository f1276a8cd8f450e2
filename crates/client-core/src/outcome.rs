//! How a client's connection ended, for as many awaiters as want to know: the "done / error"
//! pair of the Go clients, the Rust way. (The server's own "why a connection closed" is its
//! `Ending`; this is the client's side, hence another name.)

use tokio::sync::watch;

use crate::ClientError;

/// How a connection ended: `Ok(())` when it ended by our own close, the error otherwise.
pub(crate) type Ended = Result<(), ClientError>;

/// Creates the two ends of an outcome signal.
pub(crate) fn outcome() -> (OutcomeSender, Outcome) {
    let (sender, receiver) = watch::channel(None);
    (OutcomeSender { sender }, Outcome { receiver })
}

/// The connection task's end of the signal; dropping it unset means the task died.
#[derive(Debug)]
pub(crate) struct OutcomeSender {
    sender: watch::Sender<Option<Ended>>,
}

impl OutcomeSender {
    /// Records how the connection ended (the first record wins).
    pub(crate) fn set(&self, outcome: Ended) {
        self.sender.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(outcome);
            true
        });
    }
}

/// Awaitable, cloneable view of how a connection ended.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    receiver: watch::Receiver<Option<Ended>>,
}

impl Outcome {
    /// Waits until the connection has ended, then says how.
    pub(crate) async fn wait(&self) -> Ended {
        let mut receiver = self.receiver.clone();
        match receiver.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Err(ClientError::Closed)),
            // The connection task is gone without saying why.
            Err(_) => Err(ClientError::Closed),
        }
    }

    /// How the connection ended, if it has.
    pub(crate) fn get(&self) -> Option<Ended> {
        self.receiver.borrow().clone()
    }

    /// The error that ended the connection, if it ended with one.
    pub(crate) fn error(&self) -> Option<ClientError> {
        self.get().and_then(Result::err)
    }

    /// Why a connection no longer takes commands: the error it ended with, or
    /// [`ClientError::Closed`] after our own close. Only for after the end: the tasks record
    /// their outcome before they stop taking commands.
    pub(crate) fn reason_closed(&self) -> ClientError {
        self.error().unwrap_or(ClientError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_awaiter_sees_the_first_outcome() {
        let (sender, outcome) = outcome();
        assert!(outcome.get().is_none());
        let other = outcome.clone();
        let waiter = tokio::spawn(async move { other.wait().await });
        sender.set(Err(ClientError::PongTimeout(
            std::time::Duration::from_secs(1),
        )));
        sender.set(Ok(()));
        assert!(matches!(
            waiter.await.expect("waiter"),
            Err(ClientError::PongTimeout(_))
        ));
        assert!(matches!(outcome.error(), Some(ClientError::PongTimeout(_))));
    }

    #[tokio::test]
    async fn a_vanished_task_reads_as_closed() {
        let (sender, outcome) = outcome();
        drop(sender);
        assert!(matches!(outcome.wait().await, Err(ClientError::Closed)));
    }
}
