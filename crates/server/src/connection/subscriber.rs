//! A subscriber's connection task: write the topic's frames out, batch by batch.
//!
//! On shutdown a subscriber does not stop at once: it tells its topic to drain
//! ([`TopicFeed::drain`]) and keeps writing until it has everything the topic took (the
//! backlog is finished), then closes with 1001. Half the close deadline bounds that drain, so
//! that the close handshake keeps the other half.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use wspubsub_liveness::{Liveness, Tick};

use super::ending::SlowReason;
use super::incoming::PeerFrame;
use super::write::WriteFailure;
use super::{Connection, Ending, SubscriberSocket, expired};
use crate::topic::TopicFeed;

/// About how many bytes of frames one batch carries: enough that one `writev` moves many
/// small messages, small enough that the backlog is let go of in modest steps.
const BATCH_BYTES: usize = 256 << 10;

/// Serves one subscriber until it leaves or must be closed, and says why it ended.
///
/// The subscriber reads the topic's backlog at its own pace; falling out of the backlog (with
/// `--slow-subscriber close`), or a socket that takes no bytes for the write timeout, closes
/// it as slow (4000).
pub(crate) async fn run_subscriber<S>(
    socket: &mut SubscriberSocket<S>,
    connection: &Connection,
    feed: &mut TopicFeed,
) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let options = &connection.options;
    let mut liveness = Liveness::new(options.pong_deadline);
    let mut token_expiry = connection.token_expiry();
    // Set when the server starts shutting down: the end of this subscriber's drain.
    let mut drain_deadline = None;
    let stream_lost = feed.lost();
    loop {
        let batch = match feed.next_batch(socket.pending(), BATCH_BYTES) {
            Ok(batch) => batch,
            Err(lagged) => {
                return Ending::SlowSubscriber(SlowReason::QueueOverflow {
                    missed: lagged.missed,
                });
            }
        };
        if socket.has_pending() {
            let bytes = socket.pending_bytes();
            connection.record.writing(bytes);
            match socket.flush_progressing(options.write_timeout).await {
                // The socket was full and took bytes again: the peer reads, and our pings
                // wait behind the data, so its pongs cannot come sooner.
                Ok(true) => liveness.heard(),
                Ok(false) => {}
                Err(failure) => return slow_or_lost(failure),
            }
            connection
                .metrics
                .delivered(batch.messages, bytes, batch.oldest);
            connection.record.written(batch.messages, bytes);
            if !batch.more_pending {
                feed.written();
            }
        }
        if batch.finished {
            // A topic finishes only once it closes, and with this subscriber still in it that
            // means a shutdown: everything the topic took is written.
            return Ending::Shutdown;
        }
        let more_pending = batch.more_pending;
        // Between batches, always look at the peer and the timers, so that a busy topic
        // cannot starve pongs, pings or shutdown.
        tokio::select! {
            biased;
            () = connection.shutdown.cancelled(), if drain_deadline.is_none() => {
                feed.drain();
                drain_deadline = Some(Box::pin(tokio::time::sleep(options.close_deadline / 2)));
            }
            () = expired(&mut drain_deadline) => return Ending::Shutdown,
            () = lost(stream_lost.as_ref()) => return Ending::StreamLost,
            () = expired(&mut token_expiry) => return Ending::TokenExpired,
            frame = socket.next() => match PeerFrame::from(frame) {
                PeerFrame::End(ending) => return ending,
                PeerFrame::Control => {
                    liveness.heard();
                    if let Err(error) = socket.queue_pongs().await {
                        return Ending::ConnectionLost(error.to_string());
                    }
                }
                // Data frames from subscribers are read and discarded; they prove the peer alive.
                PeerFrame::Binary(_) | PeerFrame::Text => liveness.heard(),
            },
            tick = liveness.tick() => match tick {
                Tick::Ping => {
                    if let Err(error) = socket.queue_ping().await {
                        return Ending::ConnectionLost(error.to_string());
                    }
                }
                Tick::Alive => {}
                Tick::Expired => return Ending::PongTimeout,
            },
            () = std::future::ready(()), if more_pending => {}
            () = feed.changed(), if !more_pending => {}
        }
    }
}

/// Completes when `signal` is cancelled; never without one.
async fn lost(signal: Option<&CancellationToken>) {
    match signal {
        Some(signal) => signal.cancelled().await,
        None => std::future::pending().await,
    }
}

fn slow_or_lost(failure: WriteFailure) -> Ending {
    match failure {
        WriteFailure::TimedOut => Ending::SlowSubscriber(SlowReason::WriteTimeout),
        WriteFailure::Failed(error) => Ending::ConnectionLost(error),
    }
}
