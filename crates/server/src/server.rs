//! The listener, the HTTP service in front of the topics, and graceful shutdown.
//!
//! Shutdown is a drain, then a stop. [`ServerHandle::shutdown`] cancels a
//! [`CancellationToken`]: from then on `/readyz` answers 503 and new WebSocket clients are
//! refused (503), while every client task closes its peer with 1001. The listener keeps
//! answering health checks until every client and topic task (one [`TaskTracker`]) is done or
//! the close deadline has passed; then it closes, open HTTP connections are shut, and
//! [`Server::run`] returns.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming as IncomingBody;
use hyper::header::ORIGIN;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::broadcast;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role as WsRole, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wspubsub_protocol::{Role, client_id};

use crate::auth::{AuthKey, Authenticator, BadKey, ClaimRules};
use crate::connection::{self, Connection, SubscriberSocket, run_publisher, run_subscriber};
use crate::endpoints;
use crate::event::{Event, EventKind, EventSink};
use crate::forwarded::TrustedProxies;
use crate::hub::{Hub, Membership};
use crate::limits::{Admission, ConnectionLimits};
use crate::metrics::Metrics;
use crate::options::{InvalidOption, Options};
use crate::origin::OriginPolicy;
use crate::reloadable::Reloadable;
use crate::tls::{self, BadTls, TlsIdentity};
use crate::topic::{TopicFeed, TopicPublisher};
use crate::upgrade::{self, Body};

/// Bytes of a publisher's eagerly allocated read buffer; tungstenite grows its message buffer
/// when a larger frame arrives.
const READ_BUFFER_SIZE: usize = 4096;

/// A subscriber only sends control frames: a tiny read buffer keeps idle subscribers cheap.
const SUBSCRIBER_READ_BUFFER_SIZE: usize = 128;

/// Bytes tungstenite buffers before writing to the socket (pings and close frames only: data
/// frames bypass it).
const WRITE_BUFFER_SIZE: usize = 4096;

/// How long plain HTTP connections get to finish once the drain is over.
const HTTP_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Cap on tungstenite's write buffer: it only ever holds control frames (at most 131 bytes
/// each), so reaching this means a peer that stopped reading is piling up pongs.
const MAX_WRITE_BUFFER_SIZE: usize = 64 << 10;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// An option value is unusable.
    #[error(transparent)]
    InvalidOption(#[from] InvalidOption),
    /// The token key cannot be used.
    #[error(transparent)]
    Auth(#[from] BadKey),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] BadTls),
    /// The listen address could not be bound.
    #[error("cannot listen: {0}")]
    Bind(#[source] io::Error),
}

/// A bound, not yet running, wspubsub server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    /// The listener of the endpoints, when they have their own address.
    admin: Option<TcpListener>,
    state: Arc<State>,
}

/// What every part of a running server shares.
#[derive(Debug)]
struct State {
    options: Arc<Options>,
    hub: Hub,
    events: EventSink,
    /// Cancelled when the drain begins.
    shutdown: CancellationToken,
    /// Cancelled when the drain is over: plain HTTP connections close.
    stopped: CancellationToken,
    /// Client connection tasks and topic actors: the drain waits for them.
    clients: TaskTracker,
    /// HTTP connection tasks (before their upgrade, or health checks).
    connections: TaskTracker,
    /// Connection limits and the live counts.
    limits: Arc<ConnectionLimits>,
    /// Prometheus metrics.
    metrics: Arc<Metrics>,
    /// Which browser origins may connect.
    origins: OriginPolicy,
    /// Whose `X-Forwarded-For` names the client.
    proxies: TrustedProxies,
    /// Token auth, when configured.
    auth: Option<Reloadable<Authenticator>>,
    /// The `aud` and `iss` a token must carry; a reloaded key keeps them.
    claim_rules: ClaimRules,
    /// TLS on the main listener, when configured.
    tls: Option<Reloadable<rustls::ServerConfig>>,
    websocket: WebSocketConfig,
}

/// A handle to a server, for stopping it and looking at it while it runs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    state: Arc<State>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) with `options`.
    pub async fn bind(addr: impl ToSocketAddrs, options: Options) -> Result<Server, ServerError> {
        options.validate()?;
        let listener = TcpListener::bind(addr).await.map_err(ServerError::Bind)?;
        let admin = match options.admin_addr {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(ServerError::Bind)?),
            None => None,
        };
        let mut server = Server::with_listener(listener, options)?;
        server.admin = admin;
        Ok(server)
    }

    fn with_listener(listener: TcpListener, options: Options) -> Result<Server, ServerError> {
        let websocket = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_SIZE)
            .write_buffer_size(WRITE_BUFFER_SIZE)
            .max_write_buffer_size(MAX_WRITE_BUFFER_SIZE)
            .max_message_size(Some(options.max_message_size))
            .max_frame_size(Some(options.max_message_size));
        let options_limits = (options.max_connections, options.max_connections_per_ip);
        let origins = OriginPolicy::new(&options.allowed_origins);
        let claim_rules = ClaimRules {
            audiences: options.jwt_audience.clone(),
            issuers: options.jwt_issuer.clone(),
        };
        let proxies = TrustedProxies::new(&options.trusted_proxies);
        let auth = options
            .auth
            .as_ref()
            .map(|key| Authenticator::new(key, &claim_rules))
            .transpose()?
            .map(Reloadable::new);
        let tls = options
            .tls
            .as_ref()
            .map(tls::server_config)
            .transpose()?
            .map(Reloadable::new);
        let options = Arc::new(options);
        let clients = TaskTracker::new();
        let state = State {
            hub: Hub::new(Arc::clone(&options), clients.clone()),
            options,
            events: EventSink::new(),
            shutdown: CancellationToken::new(),
            stopped: CancellationToken::new(),
            clients,
            connections: TaskTracker::new(),
            limits: ConnectionLimits::new(options_limits.0, options_limits.1),
            metrics: Arc::new(Metrics::new()),
            origins,
            proxies,
            auth,
            claim_rules,
            tls,
            websocket,
        };
        Ok(Server {
            listener,
            admin: None,
            state: Arc::new(state),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address of the endpoints' own listener, when `admin_addr` was set.
    pub fn admin_addr(&self) -> Option<io::Result<SocketAddr>> {
        self.admin.as_ref().map(TcpListener::local_addr)
    }

    /// A handle for shutting the server down and watching it.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            state: Arc::clone(&self.state),
        }
    }

    /// Serves until [`ServerHandle::shutdown`], then drains: closes every client with 1001
    /// (answering health checks meanwhile) and returns once all of them are done or the close
    /// deadline has passed.
    pub async fn run(self) {
        let Server {
            listener,
            admin,
            state,
        } = self;
        let mut backoff = AcceptBackoff::default();
        let clients_gone = async {
            state.shutdown.cancelled().await;
            state.clients.close();
            state.clients.wait().await;
        };
        let drain_deadline = async {
            state.shutdown.cancelled().await;
            tokio::time::sleep(state.options.close_deadline).await;
        };
        tokio::pin!(clients_gone, drain_deadline);
        loop {
            tokio::select! {
                biased;
                () = &mut clients_gone => break,
                () = &mut drain_deadline => {
                    tracing::warn!(
                        tasks = state.clients.len(),
                        "clients still connected at the close deadline; stopping anyway"
                    );
                    break;
                }
                Some((accepted, kind)) = accept(&listener, admin.as_ref()) => match accepted {
                    Ok((stream, peer)) => {
                        backoff.reset();
                        state.connections.spawn(serve_tcp(stream, peer, kind, Arc::clone(&state)));
                    }
                    Err(error) => {
                        // Running out of file descriptors must not end the server: wait and retry.
                        let pause = backoff.next();
                        tracing::warn!(%error, ?pause, "accept failed");
                        tokio::time::sleep(pause).await;
                    }
                },
            }
        }
        drop((listener, admin));
        state.stopped.cancel();
        state.connections.close();
        // Idle HTTP connections close at once; one still sending its request gets a moment.
        let _late = tokio::time::timeout(HTTP_CLOSE_GRACE, state.connections.wait()).await;
    }
}

impl ServerHandle {
    /// Starts a graceful shutdown; [`Server::run`] returns when it is over.
    pub fn shutdown(&self) {
        self.state.shutdown.cancel();
    }

    /// Serves `identity` (a renewed certificate, say) to every TLS connection from now on;
    /// connections already open keep theirs. An unusable identity, or a server started
    /// without TLS, is an error and changes nothing.
    pub fn reload_tls(&self, identity: &TlsIdentity) -> Result<(), BadTls> {
        let tls = self.state.tls.as_ref().ok_or(BadTls::NotServingTls)?;
        tls.replace(tls::server_config(identity)?);
        Ok(())
    }

    /// Verifies tokens with `key` (a rotated key, say) from the next handshake on; clients
    /// already connected keep going until their own token expires. An unusable key, or a
    /// server started without auth, is an error and changes nothing.
    pub fn reload_auth(&self, key: &AuthKey) -> Result<(), BadKey> {
        let auth = self.state.auth.as_ref().ok_or(BadKey::AuthOff)?;
        auth.replace(Authenticator::new(key, &self.state.claim_rules)?);
        Ok(())
    }

    /// Number of live topics (topics with at least one client).
    pub fn topic_count(&self) -> usize {
        self.state.hub.topic_count()
    }

    /// Number of connected clients (publishers and subscribers).
    pub fn connection_count(&self) -> usize {
        self.state.limits.connections()
    }

    /// A stream of events from now on. A reader that falls more than a few thousand events
    /// behind gets `RecvError::Lagged` with the number it missed; the server never waits for it.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.state.events.subscribe()
    }
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    /// Topics (and the endpoints, without an admin address).
    Main,
    /// The endpoints only.
    Admin,
}

/// The next connection on either listener.
async fn accept(
    main: &TcpListener,
    admin: Option<&TcpListener>,
) -> Option<(io::Result<(TcpStream, SocketAddr)>, Listener)> {
    let admin = async {
        match admin {
            Some(admin) => admin.accept().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        accepted = main.accept() => Some((accepted, Listener::Main)),
        accepted = admin => Some((accepted, Listener::Admin)),
    }
}

/// Serves one accepted TCP connection: through TLS first on a TLS main listener (the admin
/// listener stays plain, for probes and scrapers inside the deployment).
async fn serve_tcp(stream: TcpStream, peer: SocketAddr, listener: Listener, state: Arc<State>) {
    // Frames are flushed in batches already; Nagle would only add latency.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
    }
    let tls = match (&state.tls, listener) {
        (Some(config), Listener::Main) => TlsAcceptor::from(config.current()),
        _ => return serve_http(stream, peer, listener, state).await,
    };
    // The handshake timeout bounds the TLS handshake too (slowloris before the request).
    let handshake = tokio::time::timeout(state.options.handshake_timeout, tls.accept(stream));
    match handshake.await {
        Ok(Ok(stream)) => serve_http(stream, peer, listener, state).await,
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

/// Serves one connection's HTTP requests until it is upgraded, closed or shut down.
async fn serve_http<S>(stream: S, peer: SocketAddr, listener: Listener, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stopped = state.stopped.clone();
    let metrics = Arc::clone(&state.metrics);
    let handshake_timeout = state.options.handshake_timeout;
    let max_header_size = state.options.max_header_size;
    let service = service_fn(move |request| {
        let response = match listener {
            Listener::Main => respond(&state, peer, request),
            Listener::Admin => respond_admin(&state, &request),
        };
        async move { Ok::<_, Infallible>(response) }
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

/// Answers one HTTP request: an endpoint, a refusal, or a client registered with its topic
/// and upgraded.
fn respond(
    state: &Arc<State>,
    peer: SocketAddr,
    mut request: Request<IncomingBody>,
) -> Response<Body> {
    let topic = request.uri().path().to_owned();
    let draining = state.shutdown.is_cancelled();
    let client = state.proxies.client_address(peer.ip(), request.headers());
    // `rule` names the check that refused, as the metrics label it.
    let refuse = |kind: EventKind, rule: &'static str, response: Response<Body>, why: String| {
        tracing::debug!(%peer, %client, %topic, status = %response.status(), rule, %why, "request refused");
        state.metrics.rejected(response.status().as_u16(), rule);
        state.events.emit(kind, &topic, None, Some(why));
        response
    };
    let endpoints_here = state.options.admin_addr.is_none();
    if !upgrade::is_websocket_request(&request) && endpoints_here {
        if let Some(response) = endpoints::respond(&request, endpoint_status(state)) {
            return response;
        }
    }
    if !upgrade::is_websocket_request(&request) {
        let response = upgrade::plain_text(StatusCode::BAD_REQUEST, upgrade::NOT_A_WEBSOCKET);
        return refuse(
            EventKind::UpgradeFailed,
            "not_websocket",
            response,
            upgrade::NOT_A_WEBSOCKET.into(),
        );
    }
    if draining {
        let why = "server is shutting down; connect again to another instance";
        let response = upgrade::plain_text(StatusCode::SERVICE_UNAVAILABLE, why);
        return refuse(EventKind::UpgradeFailed, "draining", response, why.into());
    }
    if let Some(origin) = request.headers().get(ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|origin| state.origins.allows(origin));
        if !allowed {
            let why = "origin not allowed";
            return refuse(
                EventKind::UpgradeFailed,
                "origin",
                upgrade::plain_text(StatusCode::FORBIDDEN, why),
                why.into(),
            );
        }
    }
    let identity = match upgrade::identify(&request) {
        Ok(identity) => identity,
        Err(bad) => {
            let why = bad.to_string();
            return refuse(
                EventKind::BadHeaders,
                "bad_headers",
                upgrade::plain_text(StatusCode::BAD_REQUEST, &why),
                why,
            );
        }
    };
    let token_expires = match &state.auth {
        None => None,
        Some(auth) => match auth.current().authorize(&request, identity.role, &topic) {
            // An `exp` beyond what the clock can represent never fires: no timer.
            Ok(valid_for) => tokio::time::Instant::now().checked_add(valid_for),
            Err(denied) => {
                let why = denied.to_string();
                return refuse(
                    EventKind::UpgradeFailed,
                    denied.rule(),
                    upgrade::plain_text(denied.status(), &why),
                    why,
                );
            }
        },
    };
    let (response, websocket) = match upgrade::accept(&mut request) {
        Ok(accepted) => accepted,
        Err(bad) => {
            return refuse(
                EventKind::UpgradeFailed,
                "bad_handshake",
                upgrade::handshake_refusal(&bad),
                bad.to_string(),
            );
        }
    };
    // Register before answering 101: whatever is published after the client sees the answer
    // reaches it.
    let joined = state.limits.admit(client).and_then(|admission| {
        let (membership, attachment) = match identity.role {
            Role::Publisher => {
                let (membership, publisher) = state.hub.join_publisher(&topic)?;
                (membership, Attachment::Publisher(publisher))
            }
            Role::Subscriber => {
                let (membership, feed) = state.hub.join_subscriber(&topic)?;
                (membership, Attachment::Subscriber(feed))
            }
        };
        Ok((admission, membership, attachment))
    });
    let (admission, membership, attachment) = match joined {
        Ok(joined) => joined,
        Err(limit) => {
            let why = limit.to_string();
            return refuse(
                EventKind::UpgradeFailed,
                limit.rule(),
                upgrade::plain_text(limit.status(), &why),
                why,
            );
        }
    };
    let connection = Connection {
        id: client_id(&identity.name).into(),
        topic: Arc::clone(membership.topic()),
        options: Arc::clone(&state.options),
        shutdown: state.shutdown.clone(),
        events: state.events.clone(),
        metrics: Arc::clone(&state.metrics),
        token_expires,
    };
    let config = match identity.role {
        Role::Publisher => state.websocket,
        Role::Subscriber => state
            .websocket
            .read_buffer_size(SUBSCRIBER_READ_BUFFER_SIZE),
    };
    let client = serve_client(
        websocket,
        config,
        connection,
        (admission, membership),
        attachment,
    );
    state.clients.spawn(client);
    response
}

/// Answers a request on the admin listener: an endpoint, or 404.
fn respond_admin<B>(state: &State, request: &Request<B>) -> Response<Body> {
    endpoints::respond(request, endpoint_status(state)).unwrap_or_else(|| {
        upgrade::plain_text(
            StatusCode::NOT_FOUND,
            "this listener serves /healthz, /readyz and /metrics",
        )
    })
}

/// What the endpoints report on, now.
fn endpoint_status(state: &State) -> endpoints::Status<'_> {
    endpoints::Status {
        draining: state.shutdown.is_cancelled(),
        metrics: &state.metrics,
        topics: state.hub.topic_count(),
    }
}

/// A client's link to its topic, by role.
enum Attachment {
    Publisher(TopicPublisher),
    Subscriber(TopicFeed),
}

/// Completes the upgrade and runs the client's connection task to its end.
async fn serve_client(
    websocket: OnUpgrade,
    config: WebSocketConfig,
    connection: Connection,
    (_admission, membership): (Admission, Membership),
    attachment: Attachment,
) {
    let Connection {
        id,
        topic,
        events,
        options,
        ..
    } = &connection;
    let io = match websocket.await {
        Ok(upgraded) => TokioIo::new(upgraded),
        Err(error) => {
            events.emit(
                EventKind::UpgradeFailed,
                topic,
                Some(id),
                Some(error.to_string()),
            );
            return;
        }
    };
    match attachment {
        Attachment::Publisher(publisher) => {
            let mut ws = WebSocketStream::from_raw_socket(io, WsRole::Server, Some(config)).await;
            joined(&connection, Role::Publisher);
            let ending = run_publisher(&mut ws, &connection, &publisher).await;
            drop(publisher);
            depart(&connection, membership, Role::Publisher, &ending);
            connection::finish(&mut ws, &ending, options.close_deadline).await;
        }
        Attachment::Subscriber(mut feed) => {
            let mut socket = SubscriberSocket::new(io, config).await;
            joined(&connection, Role::Subscriber);
            let ending = run_subscriber(&mut socket, &connection, &mut feed).await;
            drop(feed);
            depart(&connection, membership, Role::Subscriber, &ending);
            connection::finish(&mut socket, &ending, options.close_deadline).await;
        }
    }
}

/// Counts and reports a join.
fn joined(connection: &Connection, role: Role) {
    let Connection {
        id,
        topic,
        events,
        metrics,
        ..
    } = connection;
    let kind = EventKind::joined(role);
    metrics.joined(role);
    events.emit(kind, topic, Some(id), None);
    tracing::debug!(client = %id, %topic, "{kind}");
}

/// Leaves the topic, then counts and reports it, so that whoever sees the event sees the hub
/// without this client.
fn depart(
    connection: &Connection,
    membership: Membership,
    role: Role,
    ending: &connection::Ending,
) {
    drop(membership);
    let Connection {
        id,
        topic,
        events,
        metrics,
        ..
    } = connection;
    let kind = EventKind::left(role);
    metrics.left(role, ending);
    tracing::debug!(client = %id, %topic, %ending, "{kind}");
    events.emit(kind, topic, Some(id), Some(ending.to_string()));
}

/// Exponential pause after failed accepts (for example when out of file descriptors).
#[derive(Debug, Default)]
struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    fn next(&mut self) -> Duration {
        let pause = Self::FIRST
            .saturating_mul(1 << self.failures.min(16))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        pause
    }

    fn reset(&mut self) {
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
