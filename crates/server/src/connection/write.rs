//! Writes to a peer, each bounded by the write timeout.

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
pub(super) async fn timed<E: Display>(
    timeout: Duration,
    write: impl Future<Output = Result<(), E>>,
) -> Result<(), WriteFailure> {
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(WriteFailure::Failed(error.to_string())),
        Err(_elapsed) => Err(WriteFailure::TimedOut),
    }
}
