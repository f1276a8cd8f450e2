//! The task behind a stream-mode subscriber: one connection after another, each resuming
//! where the last left off, as the reconnect policy allows.

use tokio_util::sync::CancellationToken;
use wspubsub_protocol::Role;

use super::event::Event;
use super::resume::Resume;
use super::url::start_url;
use crate::reconnect::{Backoff, Reconnect};
use crate::socket::{self, ClientSocket, Mode};
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
        let Some(next) = reconnected(&url, &resume, backoff, &close, &options).await? else {
            return Ok(());
        };
        socket = next;
        resume.reconnecting(error);
    }
}

/// Connects again, waiting the policy's delay before each attempt: the new socket, `None`
/// when closed meanwhile, or the error that ends the subscriber (one a retry cannot fix, or
/// the last when the attempts ran out).
async fn reconnected(
    url: &str,
    resume: &Resume,
    backoff: &mut Backoff,
    close: &CancellationToken,
    options: &ClientOptions,
) -> Result<Option<ClientSocket>, ClientError> {
    let url = start_url(url, resume.position())?;
    let mut last = None;
    while let Some(delay) = backoff.next_delay() {
        let attempt = async {
            tokio::time::sleep(delay).await;
            socket::connect(&url, Role::Subscriber, Mode::Stream, options).await
        };
        let connected = tokio::select! {
            () = close.cancelled() => return Ok(None),
            connected = attempt => connected,
        };
        match connected {
            Ok(socket) => return Ok(Some(socket)),
            Err(error) if error.is_retryable() => {
                tracing::debug!(%error, "reconnect attempt failed");
                last = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(last.unwrap_or(ClientError::Closed))
}
