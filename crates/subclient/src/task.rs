//! The subscriber's connection task: the only owner of the socket.

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wspubsub_client_core::{
    ClientError, ClientOptions, ClientSocket, Incoming, close_handshake, end_with, ping, read,
};
use wspubsub_protocol::{Liveness, Tick};

/// Serves the connection until it is closed or breaks; returns how it ended.
pub(crate) async fn run(
    mut socket: ClientSocket,
    messages: mpsc::Sender<Bytes>,
    close: CancellationToken,
    options: &ClientOptions,
) -> Result<(), ClientError> {
    let deadline = options.get_close_deadline();
    let mut liveness = Liveness::new(options.get_pong_deadline());
    loop {
        // Room for one more message first: while the stream is not read, the socket is not
        // read either. That pause is ours, not the server's silence.
        let permit = match messages.try_reserve() {
            Ok(permit) => permit,
            Err(_) => {
                let permit = tokio::select! {
                    biased;
                    () = close.cancelled() => None,
                    permit = messages.reserve() => permit.ok(),
                };
                let Some(permit) = permit else {
                    close_handshake(&mut socket, deadline).await;
                    return Ok(());
                };
                liveness.heard();
                permit
            }
        };
        tokio::select! {
            biased;
            () = close.cancelled() => {
                close_handshake(&mut socket, deadline).await;
                return Ok(());
            }
            incoming = read(&mut socket) => match incoming {
                Incoming::Message(message) => {
                    liveness.heard();
                    permit.send(message);
                }
                Incoming::Alive => liveness.heard(),
                Incoming::End(error) => return end_with(&mut socket, error, deadline).await,
            },
            tick = liveness.tick() => match tick {
                Tick::Ping => ping(&mut socket).await?,
                Tick::Alive => {}
                Tick::Expired => return Err(ClientError::PongTimeout(options.get_pong_deadline())),
            },
        }
    }
}
