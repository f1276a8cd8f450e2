//! Serving TCP, TLS and HTTP: accepting connections on the main and admin listeners, the TLS
//! handshake, and hyper's HTTP/1.1 connection, whose requests are answered by an endpoint, a
//! refusal or an upgrade ([`crate::admission`]).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::body::Incoming as IncomingBody;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::admission::{self, Admitted};
use crate::assets;
use crate::connection::lifecycle;
use crate::endpoints;
use crate::metrics::Metrics;
use crate::server::State;
use crate::sse;
use crate::upgrade::{self, Body};

/// How long plain HTTP connections get to finish once the drain is over.
pub(crate) const HTTP_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    /// Topics (and the endpoints, without an admin address).
    Main,
    /// The endpoints only.
    Admin,
}

/// A connection's place among those still in their handshake (TLS, then the HTTP request
/// that upgrades it): taken at accept, given back when the connection is upgraded or closed.
pub(crate) type HandshakePermit = Option<OwnedSemaphorePermit>;

/// An accepted connection, where it came in, and its place among the handshakes.
pub(crate) struct NewConnection {
    stream: TcpStream,
    peer: SocketAddr,
    listener: Listener,
    /// Held until it is upgraded or closed.
    permit: HandshakePermit,
}

/// The next connection on either listener. The main listener takes a connection only once
/// one of `handshakes`' permits is free: until then newcomers wait in the kernel's backlog,
/// and the handshake timeout bounds how long any permit is held. The admin listener (probes
/// and scrapers inside the deployment) is not bounded, so a flood of the main listener cannot
/// fail its health checks.
pub(crate) async fn accept(
    main: &TcpListener,
    admin: Option<&TcpListener>,
    handshakes: &Arc<Semaphore>,
) -> io::Result<NewConnection> {
    let main = async {
        // The semaphore is never closed; were it closed, accepting would go on unbounded
        // rather than stop.
        let permit = Arc::clone(handshakes).acquire_owned().await.ok();
        (main.accept().await, permit)
    };
    let admin = async {
        match admin {
            Some(admin) => admin.accept().await,
            None => std::future::pending().await,
        }
    };
    let ((stream, peer), listener, permit) = tokio::select! {
        (accepted, permit) = main => (accepted?, Listener::Main, permit),
        accepted = admin => (accepted?, Listener::Admin, None),
    };
    Ok(NewConnection {
        stream,
        peer,
        listener,
        permit,
    })
}

/// Serves one accepted TCP connection: through TLS first on a TLS main listener (the admin
/// listener stays plain, for probes and scrapers inside the deployment).
pub(crate) async fn serve_tcp(connection: NewConnection, state: Arc<State>) {
    let NewConnection {
        stream,
        peer,
        listener,
        permit,
    } = connection;
    // Frames are flushed in batches already; Nagle would only add latency.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
    }
    let tls = match (&state.tls, listener) {
        (Some(config), Listener::Main) => TlsAcceptor::from(config.current()),
        _ => return serve_http(stream, peer, listener, state, permit).await,
    };
    // The handshake timeout bounds the TLS handshake too (slowloris before the request).
    let handshake = tokio::time::timeout(state.options.handshake_timeout, tls.accept(stream));
    match handshake.await {
        Ok(Ok(stream)) => serve_http(stream, peer, listener, state, permit).await,
        Ok(Err(error)) => {
            state.metrics.tls_failed();
            tracing::debug!(%peer, %error, "TLS handshake failed");
        }
        Err(_elapsed) => {
            state.metrics.handshake_timed_out();
            tracing::debug!(%peer, "no TLS handshake within the handshake timeout");
        }
    }
}

/// Serves one connection's HTTP requests until it is upgraded, closed or shut down. The
/// connection holds `permit` until then: an upgraded client's task releases it once the
/// upgrade is done; a keep-alive connection (health checks, refused requests) keeps it, and
/// hyper closes it when no next request head arrives within the handshake timeout.
async fn serve_http<S>(
    stream: S,
    peer: SocketAddr,
    listener: Listener,
    state: Arc<State>,
    permit: HandshakePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let permit = Arc::new(Mutex::new(permit));
    // Cancelled to drop the connection at once (an EventSource subscriber cut as slow).
    let abort = CancellationToken::new();
    let aborted = abort.clone();
    let stopped = state.stopped.clone();
    let metrics = Arc::clone(&state.metrics);
    let handshake_timeout = state.options.handshake_timeout;
    let max_header_size = state.options.max_header_size;
    let service = service_fn(move |request| {
        let (state, permit, abort) = (Arc::clone(&state), Arc::clone(&permit), abort.clone());
        async move {
            let response = match admin::respond(&state, listener, &request) {
                Some(response) => response,
                None => match listener {
                    Listener::Main => respond(&state, peer, request, &permit, abort).await,
                    Listener::Admin => respond_admin(&state, &request),
                },
            };
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout)
        .max_buf_size(max_header_size)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => {
            if let Err(error) = served {
                count_http_error(&metrics, &error);
                tracing::debug!(%peer, %error, "HTTP connection ended with an error");
            }
        }
        () = aborted.cancelled() => {}
        () = stopped.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _unfinished = tokio::time::timeout(HTTP_CLOSE_GRACE, connection).await;
        }
    }
}

/// Counts the refusals hyper makes itself: a request head over the size cap (431), bytes that
/// are not HTTP (400), and a client that sent no complete request in time (dropped). hyper
/// answers a request line over 64 KiB with 414, which its error does not tell apart from
/// 431; such a line only fits under a `max_header_size` above 64 KiB, and is counted as 431.
fn count_http_error(metrics: &Metrics, error: &hyper::Error) {
    if error.is_parse_too_large() {
        metrics.rejected(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE.as_u16(),
            "header_too_large",
        );
    } else if error.is_parse() {
        metrics.rejected(StatusCode::BAD_REQUEST.as_u16(), "malformed_http");
    } else if error.is_timeout() {
        metrics.handshake_timed_out();
    }
}

/// Answers one HTTP request on the main listener: an endpoint, a refusal, or a client
/// registered with its topic and upgraded (in cluster mode, a subscriber once its topic
/// reads the stream).
async fn respond(
    state: &Arc<State>,
    peer: SocketAddr,
    mut request: Request<IncomingBody>,
    permit: &Mutex<HandshakePermit>,
    abort: CancellationToken,
) -> Response<Body> {
    if !upgrade::is_websocket_request(&request) {
        if request.method() == Method::OPTIONS {
            return sse::preflight(&state.origins, request.headers());
        }
        if sse::is_event_stream_request(&request) {
            return sse::subscribe(state, peer, &request, abort, permit).await;
        }
        if request.method() == Method::POST {
            return sse::publish::publish(state, peer, request).await;
        }
        let endpoints_here = state.options.admin_addr.is_none();
        let answered = endpoints_here
            .then(|| endpoints::respond(&request, &endpoint_status(state)))
            .flatten()
            .or_else(|| assets::respond(&request));
        if let Some(response) = answered {
            return response;
        }
    }
    match admission::admit(state, peer, &request).await {
        Ok(Admitted { response, client }) => {
            let upgrade = hyper::upgrade::on(&mut request);
            // Nothing panics while holding this lock; a poisoned one still holds the permit.
            let permit = permit.lock().unwrap_or_else(PoisonError::into_inner).take();
            let serve = lifecycle::serve_client(upgrade, state.websocket, client, permit);
            state.clients.spawn(serve);
            response
        }
        Err(refusal) => refusal.answer(state, peer, request.uri().path()),
    }
}

/// Answers a request on the admin listener (after the admin API and dashboard): an
/// endpoint, the browser client module, or 404.
fn respond_admin<B>(state: &State, request: &Request<B>) -> Response<Body> {
    endpoints::respond(request, &endpoint_status(state))
        .or_else(|| assets::respond(request))
        .unwrap_or_else(admin::elsewhere)
}

/// What the endpoints report on, now.
fn endpoint_status(state: &State) -> endpoints::Status<'_> {
    endpoints::Status {
        draining: state.shutdown.is_cancelled(),
        metrics: &state.metrics,
        topics: state.hub.topic_count(),
        broker: state.hub.broker_health(),
    }
}

/// Exponential pause after failed accepts (for example when out of file descriptors).
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    /// The pause before the next try: doubling from 5 ms up to a second.
    pub(crate) fn next(&mut self) -> Duration {
        let pause = Self::FIRST
            .saturating_mul(1 << self.failures.min(16))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        pause
    }

    /// Back to the shortest pause, after a success.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_up_to_a_second() {
        let mut backoff = AcceptBackoff::default();
        assert_eq!(backoff.next(), Duration::from_millis(5));
        assert_eq!(backoff.next(), Duration::from_millis(10));
        for _ in 0..20 {
            backoff.next();
        }
        assert_eq!(backoff.next(), Duration::from_secs(1));
        backoff.reset();
        assert_eq!(backoff.next(), Duration::from_millis(5));
    }
}
