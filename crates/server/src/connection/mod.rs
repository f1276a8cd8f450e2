//! Connection tasks: one per upgraded WebSocket, as a publisher or as a subscriber.
//!
//! Each task owns its socket (one writer per socket, so our frames never interleave with
//! tungstenite's pongs and close echoes), keeps the peer honest with pings and a pong deadline
//! (the protocol crate's `Liveness`), and ends with an [`Ending`] that says which close code
//! the peer gets.

mod ending;
mod incoming;
pub(crate) mod lifecycle;
mod publisher;
mod socket;
mod subscriber;
mod watch;
mod write;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WireCloseCode;
use tokio_util::sync::CancellationToken;

use crate::event::EventSink;
use crate::feed::Feed;
use crate::metrics::Metrics;
use crate::options::Options;
use crate::stats::ClientRecord;
use crate::topic::Batch;

pub(crate) use ending::{Ending, SlowReason};
pub(crate) use publisher::run_publisher;
use socket::Peer;
pub(crate) use socket::SubscriberSocket;
pub(crate) use subscriber::run_subscriber;
pub(crate) use watch::{EndWatch, Watched};

/// What every connection task needs besides its socket and its topic.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    /// The client's id, `<name>-<uuid>`.
    pub(crate) id: Arc<str>,
    /// The topic it joined.
    pub(crate) topic: Arc<str>,
    /// The server's options.
    pub(crate) options: Arc<Options>,
    /// Cancelled when the server shuts down; the task then closes its peer with 1001.
    pub(crate) shutdown: CancellationToken,
    /// Where joins and departures are reported.
    pub(crate) events: EventSink,
    /// Where traffic is counted.
    pub(crate) metrics: Arc<Metrics>,
    /// When the client's token expires (auth on), closing it with 1008.
    pub(crate) token_expires: Option<tokio::time::Instant>,
    /// What the admin API shows of it; a subscriber counts what it writes here.
    pub(crate) record: Arc<ClientRecord>,
}

impl Connection {
    /// A subscriber wrote `batch` out (`bytes` of it): counts it, and once nothing more is
    /// pending lets go of it at once (a held topic may be waiting for that room).
    pub(crate) fn wrote(&self, feed: &mut Feed, batch: &Batch, bytes: usize) {
        self.metrics.delivered(batch.messages, bytes, batch.oldest);
        self.record.written(batch.messages, bytes);
        if !batch.more_pending {
            feed.written();
        }
    }

    /// A timer for the client's token expiry; none (and no timer entry) without auth.
    pub(crate) fn token_expiry(&self) -> Option<Pin<Box<Sleep>>> {
        self.token_expires
            .map(|at| Box::pin(tokio::time::sleep_until(at)))
    }
}

/// Completes when `expiry` fires; never without one.
pub(crate) async fn expired(expiry: &mut Option<Pin<Box<Sleep>>>) {
    match expiry {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Completes when `signal` is cancelled; never without one.
async fn lost(signal: Option<&CancellationToken>) {
    match signal {
        Some(signal) => signal.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Ends a connection the way `ending` says: with a close frame and a bounded wait for the
/// peer's echo, by sending a pending echo of the peer's own close, or by simply dropping it.
pub(crate) async fn finish(peer: &mut impl Peer, ending: &Ending, close_deadline: Duration) {
    let handshake = async {
        match ending.close_code() {
            Some(code) => {
                let frame = CloseFrame {
                    code: WireCloseCode::from(code.code()),
                    reason: code.reason().into(),
                };
                // Errors here mean the peer is already gone: nothing more to do either way.
                if peer.send_close(frame).await.is_err() {
                    return;
                }
            }
            None if ending.peer_closed() => {
                peer.send_close_echo().await;
                return;
            }
            None => return,
        }
        // Wait for the peer's echo (or the end of the stream after ours).
        while let Some(Ok(_)) = peer.next_frame().await {}
    };
    if tokio::time::timeout(close_deadline, handshake)
        .await
        .is_err()
    {
        tracing::debug!("close handshake did not finish within the close deadline");
    }
}
