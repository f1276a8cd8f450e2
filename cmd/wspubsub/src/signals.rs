//! What signals do to a running server: SIGTERM and SIGINT start the graceful stop (drain),
//! SIGHUP re-reads the files that may be renewed while it runs (the TLS certificate and key,
//! the token public key).
//!
//! The handlers are installed by [`Signals::install`] before the server says it is
//! listening, so that a signal sent after that line never meets the default action (death).

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};
use wspubsub_server::ServerHandle;

use crate::args::ServeArgs;

/// The installed handlers, not yet acted on.
pub(crate) struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    /// Installs the handlers of SIGTERM, SIGINT and SIGHUP.
    pub(crate) fn install() -> anyhow::Result<Signals> {
        let watch = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("cannot watch {name}"))
        };
        Ok(Signals {
            terminate: watch(SignalKind::terminate(), "SIGTERM")?,
            interrupt: watch(SignalKind::interrupt(), "SIGINT")?,
            hangup: watch(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// Acts on the signals from now on: stops `handle`'s server on the first SIGTERM or
    /// SIGINT, and reloads `args`' files on every SIGHUP.
    pub(crate) fn spawn(self, handle: ServerHandle, args: ServeArgs) {
        let Signals {
            mut terminate,
            mut interrupt,
            hangup,
        } = self;
        tokio::spawn(reload_on_hangup(hangup, handle.clone(), args));
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
                _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            }
            handle.shutdown();
        });
    }
}

/// On every SIGHUP, re-reads the TLS certificate and key and the token public key, whichever
/// are configured, and uses them from the next connection on; unusable files leave the
/// current ones in place. With neither configured, says so and goes on.
async fn reload_on_hangup(mut hangups: Signal, handle: ServerHandle, args: ServeArgs) {
    while hangups.recv().await.is_some() {
        if args.tls_cert.is_none() && args.jwt_public_key.is_none() {
            tracing::info!(
                "SIGHUP: nothing to reload (no --tls-cert or --jwt-public-key configured)"
            );
        }
        if args.tls_cert.is_some() {
            let reloaded = args.tls_identity().and_then(|identity| {
                let identity = identity.context("no TLS certificate configured")?;
                Ok(handle.reload_tls(&identity)?)
            });
            report_reload("TLS certificate", reloaded);
        }
        if args.jwt_public_key.is_some() {
            let reloaded = args.auth_key().and_then(|key| {
                let key = key.context("no token key configured")?;
                Ok(handle.reload_auth(&key)?)
            });
            report_reload("token public key", reloaded);
        }
    }
}

/// Logs how reloading `what` went.
fn report_reload(what: &str, reloaded: anyhow::Result<()>) {
    match reloaded {
        Ok(()) => tracing::info!("SIGHUP: {what} reloaded"),
        Err(error) => tracing::warn!(
            error = format!("{error:#}"),
            "SIGHUP: {what} not reloaded; still using the previous one"
        ),
    }
}
