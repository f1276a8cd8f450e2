//! The publisher's connection task: the only owner of the socket.

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use wspubsub_client_core::{
    ClientError, ClientOptions, ClientSocket, Incoming, close_handshake, end_with, ping, read,
};
use wspubsub_protocol::{Liveness, Tick};

/// Most messages written before one flush: a burst travels in few syscalls.
const BURST: usize = 256;

/// What the handles ask of the task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send this message.
    Publish(Bytes),
    /// Close after everything queued before.
    Close,
}

/// Serves the connection until it is closed or breaks; returns how it ended.
pub(crate) async fn run(
    mut socket: ClientSocket,
    mut commands: mpsc::Receiver<Command>,
    options: &ClientOptions,
) -> Result<(), ClientError> {
    let deadline = options.get_close_deadline();
    let mut liveness = Liveness::new(options.get_pong_deadline());
    loop {
        tokio::select! {
            biased;
            command = commands.recv() => {
                let close = match command {
                    Some(Command::Publish(message)) => {
                        // A server that takes none of our bytes for a whole pong deadline is as
                        // good as gone; without this bound a blocked write would hang the task.
                        let burst = write_burst(&mut socket, message, &mut commands);
                        match tokio::time::timeout(options.get_pong_deadline(), burst).await {
                            Ok(close) => close?,
                            Err(_) => return Err(ClientError::WriteTimeout(options.get_pong_deadline())),
                        }
                    }
                    // `Close`, or every handle dropped.
                    Some(Command::Close) | None => true,
                };
                if close {
                    close_handshake(&mut socket, deadline).await;
                    return Ok(());
                }
            }
            incoming = read(&mut socket) => match incoming {
                Incoming::End(error) => return end_with(&mut socket, error, deadline).await,
                Incoming::Message(_) | Incoming::Alive => liveness.heard(),
            },
            tick = liveness.tick() => match tick {
                Tick::Ping => ping(&mut socket).await?,
                Tick::Alive => {}
                Tick::Expired => return Err(ClientError::PongTimeout(options.get_pong_deadline())),
            },
        }
    }
}

/// Writes `first` and whatever else is already queued (up to a burst), then flushes once.
/// Returns whether a close was asked for behind them.
async fn write_burst(
    socket: &mut ClientSocket,
    first: Bytes,
    commands: &mut mpsc::Receiver<Command>,
) -> Result<bool, ClientError> {
    let lost = |error: tokio_tungstenite::tungstenite::Error| {
        ClientError::ConnectionLost(error.to_string())
    };
    socket.feed(Message::Binary(first)).await.map_err(lost)?;
    let mut close = false;
    for _ in 1..BURST {
        match commands.try_recv() {
            Ok(Command::Publish(message)) => {
                socket.feed(Message::Binary(message)).await.map_err(lost)?;
            }
            Ok(Command::Close) => {
                close = true;
                break;
            }
            Err(_) => break,
        }
    }
    socket.flush().await.map_err(lost)?;
    Ok(close)
}
