//! The task behind a stream-mode subscriber: one connection after another, each resuming
//! where the last left off, as the reconnect policy allows.

use tokio_util::sync::CancellationToken;
use wspubsub_protocol::Role;

use super::event::Event;
use super::resume::Resume;
use super::url::start_url;
use crate::reconnect::{Backoff, Reconnect, connect_again};
use crate::socket::{ClientSocket, Mode};
use crate::subscriber::inbox::Outbox;
use crate::subscriber::task::serve;
use crate::{ClientError, ClientOptions};

/// Serves `socket`, the first connection, then, if `reconnect` allows, every connection that
/// follows, until our close, the stream's drop, or an end the policy does not retry.
pub(crate) async fn supervise(
    mut socket: ClientSocket,
    url: String,
    mut resume: Resume,
    reconnect: Option<Reconnect>,
    outbox: Outbox<Event>,
    close: CancellationToken,
    options: ClientOptions,
) -> Result<(), ClientError> {
    let mut backoff = reconnect.map(Backoff::new);
    loop {
        let ended = serve(&mut socket, &mut resume, &outbox, &close, &options).await;
        let error = match ended {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let Some(backoff) = backoff.as_mut().filter(|_| error.is_retryable()) else {
            return Err(error);
        };
        if resume.was_joined() {
            backoff.reset();
        }
        tracing::info!(%error, position = ?resume.position(), "subscriber connection ended; reconnecting");
        if matches!(error, ClientError::Lagged { .. }) {
            // Resuming before the consumer caught up would only lag again.
            tokio::select! {
                () = close.cancelled() => return Ok(()),
                () = outbox.drained() => {}
            }
        }
        let url = start_url(&url, resume.position())?;
        let attempts = connect_again(&url, Role::Subscriber, Mode::Stream, backoff, &options);
        socket = tokio::select! {
            () = close.cancelled() => return Ok(()),
            connected = attempts => connected?,
        };
        resume.reconnecting(error);
    }
}
