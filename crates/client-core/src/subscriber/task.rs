//! The subscriber's connection task: the only owner of the socket.
//!
//! It reads the socket all the time, so that the server's pings are answered even while the
//! stream is not being read; what it reads waits in the receive buffer. When one more message
//! would overflow that buffer, the consumer has fallen behind: the task closes the
//! connection with `4000` (slow subscriber, as the server would) and ends with
//! [`ClientError::Lagged`]. The server thus never sees a live subscriber go silent (4001),
//! and memory stays bounded.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use wspubsub_liveness::Liveness;
use wspubsub_protocol::CloseCode;

use super::buffer::ReceiveBuffer;
use crate::socket::{Incoming, close_handshake, end_with, on_tick, read};
use crate::{ClientError, ClientOptions};

/// The close reason sent when the consumer fell behind.
const LAGGED_REASON: &str = "receive buffer full: the consumer fell behind";

/// Serves the connection until it is closed or breaks; returns how it ended.
pub(crate) async fn run<S>(
    mut socket: WebSocketStream<S>,
    messages: &mpsc::UnboundedSender<Result<Bytes, ClientError>>,
    buffer: &ReceiveBuffer,
    close: CancellationToken,
    options: &ClientOptions,
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = options.close_deadline;
    let mut liveness = Liveness::new(options.pong_deadline);
    loop {
        tokio::select! {
            biased;
            () = close.cancelled() => {
                close_handshake(&mut socket, CloseCode::Normal, "", deadline).await;
                return Ok(());
            }
            incoming = read(&mut socket) => match incoming {
                Incoming::Message(message) => {
                    liveness.heard();
                    if let Err(lagged) = buffer.admit(message.len()) {
                        close_handshake(&mut socket, CloseCode::SlowSubscriber, LAGGED_REASON, deadline).await;
                        return Err(lagged);
                    }
                    if messages.send(Ok(message)).is_err() {
                        // The stream is gone (its drop also cancels `close`).
                        close_handshake(&mut socket, CloseCode::Normal, "", deadline).await;
                        return Ok(());
                    }
                }
                Incoming::Alive => liveness.heard(),
                Incoming::End(error) => return end_with(&mut socket, error, deadline).await,
            },
            tick = liveness.tick() => on_tick(tick, &mut liveness, &mut socket, options).await?,
        }
    }
}
