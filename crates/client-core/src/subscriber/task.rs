//! A subscriber's connection task, in either mode: the only owner of the socket while the
//! connection lasts.
//!
//! It reads the socket all the time, so that the server's pings are answered even while the
//! stream is not being read; what it reads waits in the receive buffer. When one more item
//! would overflow that buffer, the consumer has fallen behind: the task closes the
//! connection with `4000` (slow subscriber, as the server would) and ends with
//! [`ClientError::Lagged`]. The server thus never sees a live subscriber go silent (4001),
//! and memory stays bounded.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use wspubsub_liveness::Liveness;
use wspubsub_protocol::CloseCode;

use super::inbox::{Delivery, Outbox, Weigh};
use crate::socket::{Incoming, close_handshake, end_with, on_tick, read};
use crate::{ClientError, ClientOptions};

/// The close reason sent when the consumer fell behind.
const LAGGED_REASON: &str = "receive buffer full: the consumer fell behind";

/// What a subscriber makes of the frames of its mode.
pub(crate) trait Frames {
    /// What the stream yields.
    type Item: Weigh;

    /// What a binary frame gives the stream, if anything; an error is a frame the mode does
    /// not allow.
    fn binary(&mut self, frame: Bytes) -> Result<Option<Self::Item>, ClientError>;

    /// What a text frame gives the stream, if anything.
    fn text(&mut self, text: &str) -> Option<Self::Item>;

    /// `item` is about to be queued for the stream (there is room for it): from now on it
    /// counts as delivered.
    fn delivered(&mut self, _item: &Self::Item) {}
}

/// Serves one connection until it is closed or breaks: `Ok` when closed by us (or when the
/// stream is gone), else how it ended.
pub(crate) async fn serve<S, F>(
    socket: &mut WebSocketStream<S>,
    frames: &mut F,
    outbox: &Outbox<F::Item>,
    close: &CancellationToken,
    options: &ClientOptions,
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Frames,
{
    let deadline = options.close_deadline;
    let mut liveness = Liveness::new(options.pong_deadline);
    loop {
        let item = tokio::select! {
            biased;
            () = close.cancelled() => {
                close_handshake(socket, CloseCode::Normal, "", deadline).await;
                return Ok(());
            }
            incoming = read(socket) => match incoming {
                Incoming::Message(frame) => {
                    liveness.heard();
                    match frames.binary(frame) {
                        Ok(item) => item,
                        Err(violation) => {
                            close_handshake(socket, CloseCode::ProtocolError, "", deadline).await;
                            return Err(violation);
                        }
                    }
                }
                Incoming::Text(text) => {
                    liveness.heard();
                    frames.text(&text)
                }
                Incoming::Alive => {
                    liveness.heard();
                    None
                }
                Incoming::End(error) => return end_with(socket, error, deadline).await,
            },
            tick = liveness.tick() => {
                on_tick(tick, &mut liveness, socket, options).await?;
                None
            }
        };
        let Some(item) = item else { continue };
        if let Err(lagged) = outbox.reserve(&item) {
            close_handshake(socket, CloseCode::SlowSubscriber, LAGGED_REASON, deadline).await;
            return Err(lagged);
        }
        frames.delivered(&item);
        if outbox.send(item) == Delivery::Unwanted {
            // The stream is gone (its drop also cancels `close`).
            close_handshake(socket, CloseCode::Normal, "", deadline).await;
            return Ok(());
        }
    }
}
