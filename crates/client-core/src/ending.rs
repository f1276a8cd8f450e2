//! How a client's connection ended, for as many awaiters as want to know.

use tokio::sync::watch;

use crate::ClientError;

/// The outcome of a connection: `Ok(())` when it ended by our own close, the error otherwise.
type Outcome = Result<(), ClientError>;

/// Creates the two ends of an ending signal.
pub fn ending() -> (EndingSender, Ending) {
    let (sender, receiver) = watch::channel(None);
    (EndingSender { sender }, Ending { receiver })
}

/// The connection task's end of the signal; dropping it unset means the task died.
#[derive(Debug)]
pub struct EndingSender {
    sender: watch::Sender<Option<Outcome>>,
}

impl EndingSender {
    /// Records how the connection ended (the first record wins).
    pub fn set(&self, outcome: Outcome) {
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
pub struct Ending {
    receiver: watch::Receiver<Option<Outcome>>,
}

impl Ending {
    /// Waits until the connection has ended, then says how.
    pub async fn wait(&self) -> Outcome {
        let mut receiver = self.receiver.clone();
        match receiver.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Err(ClientError::Closed)),
            // The connection task is gone without saying why.
            Err(_) => Err(ClientError::Closed),
        }
    }

    /// How the connection ended, if it has.
    pub fn get(&self) -> Option<Outcome> {
        self.receiver.borrow().clone()
    }

    /// The error that ended the connection, if it ended with one.
    pub fn error(&self) -> Option<ClientError> {
        self.get().and_then(Result::err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_awaiter_sees_the_first_outcome() {
        let (sender, ending) = ending();
        assert!(ending.get().is_none());
        let other = ending.clone();
        let waiter = tokio::spawn(async move { other.wait().await });
        sender.set(Err(ClientError::PongTimeout(
            std::time::Duration::from_secs(1),
        )));
        sender.set(Ok(()));
        assert!(matches!(
            waiter.await.expect("waiter"),
            Err(ClientError::PongTimeout(_))
        ));
        assert!(matches!(ending.error(), Some(ClientError::PongTimeout(_))));
    }

    #[tokio::test]
    async fn a_vanished_task_reads_as_closed() {
        let (sender, ending) = ending();
        drop(sender);
        assert!(matches!(ending.wait().await, Err(ClientError::Closed)));
    }
}
