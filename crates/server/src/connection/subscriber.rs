//! A subscriber's connection task: write the topic's frames out, batch by batch.
//!
//! On shutdown a subscriber does not stop at once: it tells its topic to drain
//! ([`Feed::drain`]) and keeps writing until it has everything the topic took (the
//! backlog is finished), then closes with 1001. Half the close deadline bounds that drain, so
//! that the close handshake keeps the other half.

use tokio::io::{AsyncRead, AsyncWrite};
use wspubsub_liveness::{Liveness, Tick};

use super::ending::SlowReason;
use super::incoming::PeerFrame;
use super::watch::{EndWatch, Watched};
use super::write::WriteFailure;
use super::{Connection, Ending, SubscriberSocket};
use crate::feed::Feed;

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
    feed: &mut Feed,
) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let options = &connection.options;
    let mut liveness = Liveness::new(options.pong_deadline);
    let mut watch = EndWatch::new(connection, feed);
    loop {
        let batch = match feed.next_batch(socket.pending(), BATCH_BYTES) {
            Ok(batch) => batch,
            Err(lagged) => return lagged.into(),
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
            connection.wrote(feed, &batch, bytes);
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
            watched = watch.next() => match watched {
                Watched::Drain => feed.drain(),
                Watched::End(ending) => return ending,
            },
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

fn slow_or_lost(failure: WriteFailure) -> Ending {
    match failure {
        WriteFailure::TimedOut => Ending::SlowSubscriber(SlowReason::WriteTimeout),
        WriteFailure::Failed(error) => Ending::ConnectionLost(error),
    }
}
