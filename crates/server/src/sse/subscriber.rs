//! An EventSource subscriber's task: read the topic's stream-mode frames batch by batch, turn
//! them into events and feed them to the response body, with heartbeats between.
//!
//! It ends like a WebSocket subscriber and for the same reasons (counted under the same
//! metrics, with `role="sse"`): at a shutdown once it has everything the topic took (the
//! stream then ends, and EventSource reconnects, to another instance), when its token
//! expires, when the cluster's stream lost messages, when the client goes away, and as a
//! slow subscriber when it falls out of the backlog (`--slow-subscriber close`) or its body
//! takes nothing for the write timeout. A slow subscriber's connection is cut at once rather
//! than ended: its socket is full, so nothing more would reach it anyway.

use std::time::Duration;

use std::sync::Arc;

use bytes::{Buf, Bytes};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use wspubsub_fanout::FrameQueue;
use wspubsub_protocol::{Role, ping_interval};

use super::event::{self, Format};
use super::shared::SharedEvents;
use crate::connection::{Connection, EndWatch, Ending, SlowReason, Watched};
use crate::event::EventKind;
use crate::feed::Feed;
use crate::hub::Membership;
use crate::limits::Admission;

/// About how many bytes of frames one batch turns into events: small enough that what waits
/// in hyper's queue for a stalled reader stays modest.
const BATCH_BYTES: usize = 64 << 10;

/// Buffers of events the body holds that hyper has not taken yet.
pub(crate) const BODY_BUFFERS: usize = 2;

/// An admitted EventSource subscriber and where its events go.
pub(crate) struct SseClient {
    /// What its task needs besides the topic.
    pub(crate) connection: Connection,
    /// Its place under the connection limits, freed when it ends.
    pub(crate) admission: Admission,
    /// Its place in the topic, left when it ends.
    pub(crate) membership: Membership,
    /// Its stream-mode reading of the topic.
    pub(crate) feed: Feed,
    /// How its events are written.
    pub(crate) format: Format,
    /// The response body's sender.
    pub(crate) body: mpsc::Sender<FrameQueue>,
    /// Events made once for every subscriber.
    pub(crate) shared: Arc<SharedEvents>,
    /// Cancelled to drop the HTTP connection at once (a slow subscriber).
    pub(crate) abort: CancellationToken,
}

/// Serves one EventSource subscriber to its end: joined, events, departure.
pub(crate) async fn serve(client: SseClient) {
    let SseClient {
        connection,
        admission: _admission,
        membership,
        mut feed,
        format,
        body,
        shared,
        abort,
    } = client;
    let (id, topic) = (&connection.id, &connection.topic);
    connection.metrics.sse_joined();
    let joined = EventKind::joined(Role::Subscriber);
    connection.events.emit(joined, topic, Some(id), None);
    tracing::debug!(client = %id, %topic, "sse {joined}");
    let ending = run(&connection, &mut feed, (format, &shared), &body).await;
    drop(feed);
    drop(membership);
    if matches!(ending, Ending::SlowSubscriber(_)) {
        abort.cancel();
    }
    connection.metrics.sse_left(&ending);
    let left = EventKind::left(Role::Subscriber);
    tracing::debug!(client = %id, %topic, %ending, "sse {left}");
    connection
        .events
        .emit(left, topic, Some(id), Some(ending.to_string()));
}

/// Why a send into the body failed.
enum Unsent {
    /// It took nothing for the write timeout.
    Stalled,
    /// The client went away (hyper dropped the body).
    Gone,
}

impl From<Unsent> for Ending {
    fn from(unsent: Unsent) -> Self {
        match unsent {
            Unsent::Stalled => Ending::SlowSubscriber(SlowReason::WriteTimeout),
            Unsent::Gone => Ending::PeerClosed(None),
        }
    }
}

/// Sends `bytes` into the body, waiting at most `stall` for room.
async fn send(
    body: &mpsc::Sender<FrameQueue>,
    bytes: FrameQueue,
    stall: Duration,
) -> Result<(), Unsent> {
    match tokio::time::timeout(stall, body.send(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_closed)) => Err(Unsent::Gone),
        Err(_elapsed) => Err(Unsent::Stalled),
    }
}

/// The subscriber's loop, as [`crate::connection::run_subscriber`]'s, with events instead of
/// frames and heartbeats instead of pings.
async fn run(
    connection: &Connection,
    feed: &mut Feed,
    (format, shared): (Format, &SharedEvents),
    body: &mpsc::Sender<FrameQueue>,
) -> Ending {
    let options = &connection.options;
    let stall = options.write_timeout;
    if let Err(unsent) = send(body, event::preamble().into(), stall).await {
        return unsent.into();
    }
    let every = ping_interval(options.pong_deadline);
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut watch = EndWatch::new(connection, feed);
    let mut frames = FrameQueue::default();
    loop {
        let batch = match feed.next_batch(&mut frames, BATCH_BYTES) {
            Ok(batch) => batch,
            Err(lagged) => return lagged.into(),
        };
        if !frames.is_empty() {
            let events = event::transcode(&mut frames, &connection.topic, format, shared);
            let bytes = events.remaining();
            connection.record.writing(bytes);
            if !events.is_empty()
                && let Err(unsent) = send(body, events, stall).await
            {
                return unsent.into();
            }
            connection.wrote(feed, &batch, bytes);
        }
        if batch.finished {
            return Ending::Shutdown;
        }
        let more_pending = batch.more_pending;
        tokio::select! {
            biased;
            watched = watch.next() => match watched {
                Watched::Drain => feed.drain(),
                Watched::End(ending) => return ending,
            },
            () = body.closed() => return Ending::PeerClosed(None),
            _ = heartbeat.tick() => {
                if let Err(unsent) = send(body, Bytes::from_static(event::PING).into(), stall).await {
                    return unsent.into();
                }
            }
            () = std::future::ready(()), if more_pending => {}
            () = feed.changed(), if !more_pending => {}
        }
    }
}
