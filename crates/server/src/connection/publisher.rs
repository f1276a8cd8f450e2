//! A publisher's connection task: read binary frames and hand them to the topic actor.
//!
//! On shutdown a publisher stops reading at once, but a message it has read is always queued
//! for the topic first: the drain delivers every message the server read.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use wspubsub_liveness::{Liveness, Tick};

use super::incoming::PeerFrame;
use super::write::{self, WriteFailure};
use super::{Connection, Ending, expired};
use crate::topic::TopicPublisher;

/// Serves one publisher until it leaves or must be closed, and says why it ended.
///
/// A full topic queue pauses reading, which pushes the publisher back through TCP.
pub(crate) async fn run_publisher<S>(
    ws: &mut WebSocketStream<S>,
    connection: &Connection,
    topic: &TopicPublisher,
) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let options = &connection.options;
    let mut liveness = Liveness::new(options.pong_deadline);
    let mut token_expiry = connection.token_expiry();
    loop {
        tokio::select! {
            biased;
            () = connection.shutdown.cancelled() => return Ending::Shutdown,
            () = expired(&mut token_expiry) => return Ending::TokenExpired,
            frame = ws.next() => match PeerFrame::from(frame) {
                PeerFrame::Binary(message) => {
                    let arrived = Instant::now();
                    liveness.heard();
                    connection.metrics.received(message.len());
                    // Not cancelled by shutdown: the topic keeps taking messages until its
                    // publishers are gone, so this completes and the drain delivers it.
                    if let Err(ending) =
                        publish(ws, connection, topic, &mut liveness, message, arrived).await
                    {
                        return ending;
                    }
                    // Time spent waiting on a full topic queue was ours, not the peer's silence.
                    liveness.heard();
                }
                PeerFrame::Text => return Ending::TextFromPublisher,
                PeerFrame::Control => liveness.heard(),
                PeerFrame::End(ending) => return ending,
            },
            tick = liveness.tick() => match tick {
                Tick::Ping => {
                    if let Err(ending) = ping(ws, options.write_timeout).await {
                        return ending;
                    }
                }
                Tick::Alive => {}
                Tick::Expired => return Ending::PongTimeout,
            },
        }
    }
}

/// Queues `message` for the topic. While the topic holds it back (a full queue, or a held
/// backlog), the publisher still hears from us at the ping interval, so that its client does
/// not take us for dead; and its own silence is not held against it, since its pongs wait
/// behind the data we are not reading.
async fn publish<S>(
    ws: &mut WebSocketStream<S>,
    connection: &Connection,
    topic: &TopicPublisher,
    liveness: &mut Liveness,
    message: Bytes,
    arrived: Instant,
) -> Result<(), Ending>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let queued = topic.publish(message, arrived);
    tokio::pin!(queued);
    loop {
        tokio::select! {
            biased;
            // It fails only if the topic's actor failed.
            result = &mut queued => {
                return result.map_err(|_gone| Ending::Internal("the topic takes no more messages"));
            }
            tick = liveness.tick() => match tick {
                Tick::Ping => ping(ws, connection.options.write_timeout).await?,
                Tick::Alive => {}
                Tick::Expired => liveness.heard(),
            },
        }
    }
}

/// Sends a ping, within the write timeout.
async fn ping<S>(ws: &mut WebSocketStream<S>, write_timeout: Duration) -> Result<(), Ending>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match write::timed(write_timeout, ws.send(Message::Ping(Bytes::new()))).await {
        Ok(()) => Ok(()),
        Err(WriteFailure::TimedOut) => Err(Ending::ConnectionLost("a ping write timed out".into())),
        Err(WriteFailure::Failed(error)) => Err(Ending::ConnectionLost(error)),
    }
}
