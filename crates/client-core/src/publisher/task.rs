//! The publisher's connection task: the only owner of the socket.

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};
use wspubsub_liveness::Liveness;
use wspubsub_protocol::CloseCode;

use crate::socket::{Incoming, close_handshake, end_with, on_tick, read, timed_write};
use crate::{ClientError, ClientOptions};

/// Most messages written before one flush: a burst travels in few syscalls.
const BURST: usize = 256;

/// What the handles ask of the task, in the order they ask it.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send this message.
    Publish(Bytes),
    /// Something to do once everything queued before is written.
    Then(Control),
}

/// The commands that end a burst of messages.
#[derive(Debug)]
pub(crate) enum Control {
    /// Answer once everything queued before is written to the socket.
    Flush(oneshot::Sender<()>),
    /// Close (1000) after everything queued before.
    Close,
}

/// Serves the connection until it is closed or breaks; returns how it ended.
///
/// `commands` is borrowed so that the caller can record the outcome before the queue closes:
/// a handle that finds the queue closed then always finds the reason recorded.
pub(crate) async fn run<S>(
    mut socket: WebSocketStream<S>,
    commands: &mut mpsc::Receiver<Command>,
    options: &ClientOptions,
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Every write is bounded by the write timeout: a server that takes none of our bytes for
    // that long is as good as gone.
    let limit = options.write_timeout;
    let mut liveness = Liveness::new(options.pong_deadline);
    loop {
        tokio::select! {
            biased;
            command = commands.recv() => {
                let control = match command {
                    Some(Command::Publish(message)) => {
                        timed_write(limit, &mut liveness, write_burst(&mut socket, message, commands)).await?
                    }
                    Some(Command::Then(control)) => Some(control),
                    // Every handle dropped.
                    None => Some(Control::Close),
                };
                match control {
                    None => {}
                    Some(Control::Flush(flushed)) => {
                        timed_write(limit, &mut liveness, socket.flush()).await?;
                        // The asker may have stopped waiting; the flush happened regardless.
                        let _answered = flushed.send(());
                    }
                    Some(Control::Close) => {
                        close_handshake(&mut socket, CloseCode::Normal, "", options.close_deadline).await;
                        return Ok(());
                    }
                }
            }
            incoming = read(&mut socket) => match incoming {
                Incoming::End(error) => return end_with(&mut socket, error, options.close_deadline).await,
                Incoming::Message(_) | Incoming::Text(_) | Incoming::Alive => liveness.heard(),
            },
            tick = liveness.tick() => on_tick(tick, &mut liveness, &mut socket, options).await?,
        }
    }
}

/// Writes `first` and whatever else is already queued (up to a burst), then flushes once.
/// Returns the control command that ended the burst, if one did.
async fn write_burst<S>(
    socket: &mut WebSocketStream<S>,
    first: Bytes,
    commands: &mut mpsc::Receiver<Command>,
) -> Result<Option<Control>, tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    socket.feed(Message::Binary(first)).await?;
    let mut control = None;
    for _ in 1..BURST {
        match commands.try_recv() {
            Ok(Command::Publish(message)) => socket.feed(Message::Binary(message)).await?,
            Ok(Command::Then(then)) => {
                control = Some(then);
                break;
            }
            Err(_) => break,
        }
    }
    socket.flush().await?;
    Ok(control)
}
