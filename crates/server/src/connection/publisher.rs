//! A publisher's connection task: read binary frames and hand them to the topic actor.
//!
//! A stream-mode publisher also gets acks: text frames saying how many of its messages are
//! stored, sent as the topic appends them (coalesced while the socket is busy).
//!
//! On shutdown a publisher stops reading at once, but a message it has read is always queued
//! for the topic first: the drain delivers every message the server read. A stream-mode
//! publisher is then acked every message the server read before it is closed
//! ([`acked_to_the_end`]), so that its client re-sends nothing the server stored and reports
//! nothing stored as lost.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use wspubsub_liveness::{Liveness, Tick};
use wspubsub_protocol::Control;

use super::incoming::PeerFrame;
use super::write::{self, WriteFailure};
use super::{Connection, Ending, expired};
use crate::topic::{Acked, TopicPublisher};

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
    let mut acks = topic.acks();
    // Messages read and handed to the topic.
    let mut handed: u64 = 0;
    loop {
        tokio::select! {
            biased;
            () = connection.shutdown.cancelled() => {
                return acked_to_the_end(ws, connection, &mut acks, handed).await;
            }
            () = expired(&mut token_expiry) => return Ending::TokenExpired,
            acked = stored(&mut acks) => {
                if let Err(ending) = send_ack(ws, connection, acked).await {
                    return ending;
                }
            }
            frame = ws.next() => match PeerFrame::from(frame) {
                PeerFrame::Binary(message) => {
                    let arrived = Instant::now();
                    liveness.heard();
                    connection.metrics.received(message.len());
                    // Not cancelled by shutdown: the topic keeps taking messages until its
                    // publishers are gone, so this completes and the drain delivers it.
                    let queued = Queued { message, arrived };
                    if let Err(ending) =
                        publish(ws, connection, topic, &mut liveness, &mut acks, queued).await
                    {
                        return ending;
                    }
                    handed += 1;
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

/// A message read from the publisher, and when.
struct Queued {
    message: Bytes,
    arrived: Instant,
}

/// Queues a message for the topic. While the topic holds it back (a full queue, or a held
/// backlog), the publisher still hears from us at the ping interval, so that its client does
/// not take us for dead, and gets the acks of what was stored meanwhile; and its own silence
/// is not held against it, since its pongs wait behind the data we are not reading.
async fn publish<S>(
    ws: &mut WebSocketStream<S>,
    connection: &Connection,
    topic: &TopicPublisher,
    liveness: &mut Liveness,
    acks: &mut Option<watch::Receiver<Acked>>,
    Queued { message, arrived }: Queued,
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
            acked = stored(acks) => send_ack(ws, connection, acked).await?,
            tick = liveness.tick() => match tick {
                Tick::Ping => ping(ws, connection.options.write_timeout).await?,
                Tick::Alive => {}
                Tick::Expired => liveness.heard(),
            },
        }
    }
}

/// The server is shutting down and this publisher is read no more: waits until the topic has
/// stored the `handed` messages it was handed (the topic takes them until its publishers are
/// gone), acking them as it goes, so that a stream-mode publisher's last ack before its 1001
/// covers every message the server read. Half the close deadline bounds this, as it bounds a
/// draining subscriber, so that the close handshake keeps the other half.
async fn acked_to_the_end<S>(
    ws: &mut WebSocketStream<S>,
    connection: &Connection,
    acks: &mut Option<watch::Receiver<Acked>>,
    handed: u64,
) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let unsent = |acks: &Option<watch::Receiver<Acked>>| {
        acks.as_ref().is_some_and(|acks| {
            // An ack seen is an ack sent: only a change not seen yet is unsent.
            acks.has_changed().unwrap_or(false) || acks.borrow().count < handed
        })
    };
    let all_acked = async {
        while unsent(acks) {
            let acked = stored(acks).await;
            send_ack(ws, connection, acked).await?;
        }
        Ok(())
    };
    match tokio::time::timeout(connection.options.close_deadline / 2, all_acked).await {
        Ok(Ok(())) => Ending::Shutdown,
        Ok(Err(ending)) => ending,
        Err(_elapsed) => {
            tracing::debug!("messages read at shutdown not all stored within the drain");
            Ending::Shutdown
        }
    }
}

/// Waits until the topic has stored more of a stream-mode publisher's messages, and says how
/// many in all; never completes for a raw publisher.
async fn stored(acks: &mut Option<watch::Receiver<Acked>>) -> Acked {
    if let Some(acks) = acks {
        // The publisher's own handle holds the sender: waiting cannot fail.
        if acks.changed().await.is_ok() {
            return *acks.borrow_and_update();
        }
    }
    std::future::pending().await
}

/// Tells a stream-mode publisher that its first `acked.count` messages are stored.
async fn send_ack<S>(
    ws: &mut WebSocketStream<S>,
    connection: &Connection,
    acked: Acked,
) -> Result<(), Ending>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ack = Control::Ack {
        count: acked.count,
        seq: acked.seq,
    };
    let text = Message::Text(ack.to_json().into());
    send(ws, connection.options.write_timeout, text, "an ack").await?;
    connection.metrics.ack_sent();
    Ok(())
}

/// Sends a ping, within the write timeout.
async fn ping<S>(ws: &mut WebSocketStream<S>, write_timeout: Duration) -> Result<(), Ending>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    send(ws, write_timeout, Message::Ping(Bytes::new()), "a ping").await
}

/// Sends `message` (`what`, for the error), within the write timeout.
async fn send<S>(
    ws: &mut WebSocketStream<S>,
    write_timeout: Duration,
    message: Message,
    what: &str,
) -> Result<(), Ending>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match write::timed(write_timeout, ws.send(message)).await {
        Ok(()) => Ok(()),
        Err(WriteFailure::TimedOut) => {
            Err(Ending::ConnectionLost(format!("{what} write timed out")))
        }
        Err(WriteFailure::Failed(error)) => Err(Ending::ConnectionLost(error)),
    }
}

#[cfg(test)]
mod tests;
