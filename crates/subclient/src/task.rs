//! The subscriber's connection task: the only owner of the socket.

use bytes::Bytes;
use tokio::sync::mpsc::{self, error::TrySendError};
use wspubsub_client_core::{ClientError, Command, Connection, Event};

/// Serves the connection until it is closed or ends, forwarding every binary message to
/// `messages`; returns how it ended.
pub(crate) async fn run(
    mut connection: Connection,
    commands: &mut mpsc::Receiver<Command>,
    messages: &mpsc::Sender<Bytes>,
) -> Result<(), ClientError> {
    loop {
        // Room for the next message first: while the stream is not read, the socket is not
        // read either (and the server cuts us if that lasts; that is its right).
        let event = match messages.try_reserve() {
            Ok(room) => match connection.next(commands, true).await {
                Event::Message(message) => {
                    room.send(message);
                    continue;
                }
                other => other,
            },
            Err(TrySendError::Full(())) => tokio::select! {
                room = messages.reserve() => match room {
                    Ok(_room) => continue,
                    // The stream (so the Subscriber) is gone.
                    Err(_) => Event::Close,
                },
                // Keeps writing (our close, pings due) but neither reads nor runs the
                // silence clock: the pause is ours, not the server's silence.
                event = connection.next(commands, false) => event,
            },
            Err(TrySendError::Closed(())) => Event::Close,
        };
        match event {
            // Not reading while paused, so no message can come from there.
            Event::Message(_) => {}
            Event::Close => {
                commands.close();
                return connection.close().await;
            }
            Event::End(error) => {
                commands.close();
                return connection.end(error).await;
            }
        }
    }
}
