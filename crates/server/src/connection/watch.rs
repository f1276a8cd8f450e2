//! What ends a subscriber besides its peer and its writes, whatever carries its messages
//! (a WebSocket or an event stream): the server shutting down (after the subscriber's drain),
//! its token expiring, and in cluster mode the topic's stream losing messages.

use std::pin::Pin;

use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::{Connection, Ending, expired, lost};
use crate::feed::Feed;

/// A subscriber's signals to end, watched between its batches.
pub(crate) struct EndWatch {
    /// Cancelled when the server starts shutting down.
    shutdown: CancellationToken,
    /// How long the drain may take once the shutdown started: half the close deadline, so
    /// that the close keeps the other half.
    drain_time: std::time::Duration,
    /// Set when the server starts shutting down: the end of this subscriber's drain.
    drain_deadline: Option<Pin<Box<Sleep>>>,
    token_expiry: Option<Pin<Box<Sleep>>>,
    /// Cluster mode: cancelled when the topic's reading found messages lost.
    stream_lost: Option<CancellationToken>,
}

impl EndWatch {
    /// The signals of `connection`, reading `feed`.
    pub(crate) fn new(connection: &Connection, feed: &Feed) -> Self {
        EndWatch {
            shutdown: connection.shutdown.clone(),
            drain_time: connection.options.close_deadline / 2,
            drain_deadline: None,
            token_expiry: connection.token_expiry(),
            stream_lost: feed.lost(),
        }
    }

    /// Completes with the ending once one comes, or with [`Watched::Drain`] when the shutdown
    /// starts (the drain's deadline is then set).
    pub(crate) async fn next(&mut self) -> Watched {
        tokio::select! {
            biased;
            () = self.shutdown.cancelled(), if self.drain_deadline.is_none() => {
                self.drain_deadline = Some(Box::pin(tokio::time::sleep(self.drain_time)));
                Watched::Drain
            }
            () = expired(&mut self.drain_deadline) => Watched::End(Ending::Shutdown),
            () = lost(self.stream_lost.as_ref()) => Watched::End(Ending::StreamLost),
            () = expired(&mut self.token_expiry) => Watched::End(Ending::TokenExpired),
        }
    }
}

/// What [`EndWatch::next`] saw.
pub(crate) enum Watched {
    /// The server started shutting down: the subscriber tells its topic to drain
    /// ([`Feed::drain`]) and ends once it has everything, or at the drain's deadline.
    Drain,
    /// The subscriber ends.
    End(Ending),
}
