//! A publisher's connection task: read binary frames and hand them to the topic actor.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use wspubsub_liveness::{Liveness, Tick};

use super::incoming::Incoming;
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
            incoming = ws.next() => match Incoming::from(incoming) {
                Incoming::Binary(message) => {
                    liveness.heard();
                    connection.metrics.received(message.len());
                    tokio::select! {
                        biased;
                        () = connection.shutdown.cancelled() => return Ending::Shutdown,
                        published = topic.publish(message) => {
                            if published.is_err() {
                                return Ending::Internal("topic ended under a live publisher");
                            }
                        }
                    }
                    // Time spent waiting on a full topic queue was ours, not the peer's silence.
                    liveness.heard();
                }
                Incoming::Text => return Ending::TextFromPublisher,
                Incoming::Control => liveness.heard(),
                Incoming::End(ending) => return ending,
            },
            tick = liveness.tick() => match tick {
                Tick::Ping => match write::timed(options.write_timeout, ws.send(Message::Ping(Bytes::new()))).await {
                    Ok(()) => {}
                    Err(WriteFailure::TimedOut) => {
                        return Ending::ConnectionLost("a ping write timed out".into());
                    }
                    Err(WriteFailure::Failed(error)) => return Ending::ConnectionLost(error),
                },
                Tick::Alive => {}
                Tick::Expired => return Ending::PongTimeout,
            },
        }
    }
}
