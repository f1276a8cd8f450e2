//! Writes to a peer, each bounded by the write timeout.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};

/// Why a write did not complete.
#[derive(Debug)]
pub(super) enum WriteFailure {
    /// The socket did not take the write within the write timeout.
    TimedOut,
    /// The socket failed.
    Failed(tungstenite::Error),
}

/// Runs `write`, giving up after `timeout`.
pub(super) async fn timed(
    timeout: Duration,
    write: impl Future<Output = Result<(), tungstenite::Error>>,
) -> Result<(), WriteFailure> {
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(WriteFailure::Failed(error)),
        Err(_elapsed) => Err(WriteFailure::TimedOut),
    }
}

/// Sends an empty ping.
pub(super) async fn ping<S>(ws: &mut WebSocketStream<S>) -> Result<(), tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::Ping(Bytes::new())).await
}

/// Writes every message of `batch` as a binary frame, then flushes once: one syscall can
/// carry the whole batch.
pub(super) async fn batch<S>(
    ws: &mut WebSocketStream<S>,
    batch: &mut Vec<Bytes>,
) -> Result<(), tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for message in batch.drain(..) {
        ws.feed(Message::Binary(message)).await?;
    }
    ws.flush().await
}
