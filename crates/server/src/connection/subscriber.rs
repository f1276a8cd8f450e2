//! A subscriber's connection task: write the topic's messages out in batches.

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;

use super::ending::SlowReason;
use super::incoming::Incoming;
use super::liveness::{Liveness, Tick};
use super::write::{self, WriteFailure};
use super::{Connection, Ending};
use crate::topic::TopicFeed;

/// About how many bytes one batch carries: enough that one flush moves many small messages,
/// small enough that the write buffer stays small and one batch meets the write timeout.
const BATCH_BYTES: usize = 256 << 10;

/// Serves one subscriber until it leaves or must be closed, and says why it ended.
///
/// The subscriber reads the topic's backlog at its own pace; falling out of the backlog, or
/// a batch not written within the write timeout, closes it as slow (4000).
pub(crate) async fn run_subscriber<S>(
    ws: &mut WebSocketStream<S>,
    connection: &Connection,
    feed: &mut TopicFeed,
) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let options = &connection.options;
    let mut liveness = Liveness::new(options.pong_deadline);
    let mut batch = Vec::new();
    loop {
        let more_pending = match feed.next_batch(&mut batch, BATCH_BYTES) {
            Ok(more_pending) => more_pending,
            Err(lagged) => {
                return Ending::SlowSubscriber(SlowReason::QueueOverflow {
                    missed: lagged.missed,
                });
            }
        };
        if !batch.is_empty() {
            if let Err(failure) =
                write::timed(options.write_timeout, write::batch(ws, &mut batch)).await
            {
                return slow_or_lost(failure);
            }
        }
        // Between batches, always look at the peer and the timers, so that a busy topic
        // cannot starve pongs, pings or shutdown.
        tokio::select! {
            biased;
            () = connection.shutdown.cancelled() => return Ending::Shutdown,
            incoming = ws.next() => match Incoming::from(incoming) {
                Incoming::End(ending) => return ending,
                // Frames from subscribers are read and discarded; they prove the peer alive.
                Incoming::Binary(_) | Incoming::Text | Incoming::Control => liveness.heard(),
            },
            tick = liveness.tick() => match tick {
                Tick::Ping => {
                    if let Err(failure) = write::timed(options.write_timeout, write::ping(ws)).await {
                        return slow_or_lost(failure);
                    }
                }
                Tick::Alive => {}
                Tick::Expired => return Ending::PongTimeout,
            },
            () = std::future::ready(()), if more_pending => {}
            changed = feed.changed(), if !more_pending => {
                if changed.is_err() {
                    return Ending::Internal("topic ended under a live subscriber");
                }
            }
        }
    }
}

fn slow_or_lost(failure: WriteFailure) -> Ending {
    match failure {
        WriteFailure::TimedOut => Ending::SlowSubscriber(SlowReason::WriteTimeout),
        WriteFailure::Failed(error) => Ending::ConnectionLost(error.to_string()),
    }
}
