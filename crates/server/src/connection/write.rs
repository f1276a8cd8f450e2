//! Writes to a peer, each bounded by the write timeout: a whole write (a ping), or each step
//! of a long one (a subscriber's batch, cut only when the socket takes no bytes for that long).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// Why a write did not complete.
#[derive(Debug)]
pub(super) enum WriteFailure {
    /// The socket did not take the write within the write timeout.
    TimedOut,
    /// The socket failed.
    Failed(String),
}

/// Runs `write`, giving up after `timeout`.
pub(super) async fn timed<T, E: Display>(
    timeout: Duration,
    write: impl Future<Output = Result<T, E>>,
) -> Result<T, WriteFailure> {
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(error)) => Err(WriteFailure::Failed(error.to_string())),
        Err(_elapsed) => Err(WriteFailure::TimedOut),
    }
}
