//! The publisher's connection task: the only owner of the socket.

use tokio::sync::mpsc;
use wspubsub_client_core::{ClientError, Command, Connection, Event};

/// Serves the connection until it is closed or ends; returns how it ended.
pub(crate) async fn run(
    mut connection: Connection,
    commands: &mut mpsc::Receiver<Command>,
) -> Result<(), ClientError> {
    loop {
        match connection.next(commands, true).await {
            Event::Message(message) => {
                tracing::debug!(
                    len = message.len(),
                    "ignored a message: servers send nothing to publishers"
                );
            }
            Event::Close => {
                // Refuse further publishes now, rather than accept what will not be sent.
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
