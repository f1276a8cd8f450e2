//! The server: binding its listeners, the accept loop, the handle, and graceful shutdown.
//! Serving each connection is `http`'s job, deciding on each request `admission`'s.
//!
//! Shutdown is a drain, then a stop. [`ServerHandle::shutdown`] cancels a
//! [`CancellationToken`]: from then on `/readyz` answers 503 and new WebSocket clients are
//! refused (503), publishers stop being read (and get 1001), each topic moves what it already
//! took into its backlog, and every subscriber writes what it holds before its 1001. The
//! listener keeps
//! answering health checks until every client and topic task (one [`TaskTracker`]) is done or
//! the close deadline has passed; then it closes, open HTTP connections are shut, and
//! [`Server::run`] returns.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{Semaphore, broadcast};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::Admin;
use crate::auth::{AuthKey, Authenticator, BadKey, ClaimRules};
use crate::cluster::{ClusterError, ClusterNode};
use crate::connection::lifecycle;
use crate::event::{Event, EventSink};
use crate::forwarded::TrustedProxies;
use crate::http::{self, AcceptBackoff, HTTP_CLOSE_GRACE};
use crate::hub::Hub;
use crate::limits::ConnectionLimits;
use crate::metrics::Metrics;
use crate::options::{InvalidOption, Options};
use crate::origin::OriginPolicy;
use crate::reloadable::Reloadable;
use crate::retention::HistoryPool;
use crate::tls::{self, BadTls, TlsIdentity};

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
    /// Cluster mode could not start: NATS unreachable, or its stream unusable.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
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
pub(crate) struct State {
    pub(crate) options: Arc<Options>,
    pub(crate) hub: Hub,
    pub(crate) events: EventSink,
    /// Cancelled when the drain begins.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when the drain is over: plain HTTP connections close.
    pub(crate) stopped: CancellationToken,
    /// Client connection tasks and topic actors: the drain waits for them.
    pub(crate) clients: TaskTracker,
    /// HTTP connection tasks (before their upgrade, or health checks).
    pub(crate) connections: TaskTracker,
    /// Connection limits and the live counts.
    pub(crate) limits: Arc<ConnectionLimits>,
    /// Prometheus metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// Which browser origins may connect.
    pub(crate) origins: OriginPolicy,
    /// Whose `X-Forwarded-For` names the client.
    pub(crate) proxies: TrustedProxies,
    /// Token auth, when configured.
    pub(crate) auth: Option<Reloadable<Authenticator>>,
    /// The `aud` and `iss` a token must carry; a reloaded key keeps them.
    pub(crate) claim_rules: ClaimRules,
    /// TLS on the main listener, when configured.
    pub(crate) tls: Option<Reloadable<rustls::ServerConfig>>,
    /// The WebSocket settings of client sockets.
    pub(crate) websocket: WebSocketConfig,
    /// Events EventSource subscribers share.
    pub(crate) sse_events: Arc<crate::sse::SharedEvents>,
    /// What the admin API keeps (rates, the main listener's address).
    pub(crate) admin: Admin,
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
        Server::serve_on(listener, options).await
    }

    /// Serves on `listener`, a listening socket the caller made itself, for socket options
    /// [`Server::bind`] does not set (a dual-stack IPv6 socket, say).
    pub async fn from_listener(
        listener: std::net::TcpListener,
        options: Options,
    ) -> Result<Server, ServerError> {
        options.validate()?;
        listener.set_nonblocking(true).map_err(ServerError::Bind)?;
        let listener = TcpListener::from_std(listener).map_err(ServerError::Bind)?;
        Server::serve_on(listener, options).await
    }

    /// Binds the admin listener, if any, beside the main `listener`.
    async fn serve_on(listener: TcpListener, options: Options) -> Result<Server, ServerError> {
        let admin = match options.admin_addr {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(ServerError::Bind)?),
            None => None,
        };
        let cluster = match &options.nats_url {
            Some(urls) => {
                let node = Arc::new(ClusterNode::connect(urls, &options).await?);
                node.watch_stream();
                Some(node)
            }
            None => None,
        };
        let mut server = Server::with_listener(listener, options, cluster)?;
        server.admin = admin;
        Ok(server)
    }

    fn with_listener(
        listener: TcpListener,
        options: Options,
        cluster: Option<Arc<ClusterNode>>,
    ) -> Result<Server, ServerError> {
        let websocket = lifecycle::websocket_config(&options);
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
        let metrics = Arc::new(if cluster.is_some() {
            Metrics::for_cluster()
        } else {
            Metrics::new()
        });
        let shutdown = CancellationToken::new();
        let pool = Arc::new(HistoryPool::new(&options, metrics.history.clone()));
        let state = State {
            hub: Hub::new(
                Arc::clone(&options),
                clients.clone(),
                Arc::clone(&metrics),
                pool,
                shutdown.clone(),
                cluster,
            ),
            options,
            events: EventSink::new(),
            shutdown,
            stopped: CancellationToken::new(),
            clients,
            connections: TaskTracker::new(),
            limits: ConnectionLimits::new(options_limits.0, options_limits.1),
            metrics,
            origins,
            proxies,
            auth,
            claim_rules,
            tls,
            websocket,
            sse_events: Arc::default(),
            admin: Admin::new(listener.local_addr().ok()),
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

    /// Serves until [`ServerHandle::shutdown`], then drains: stops reading publishers,
    /// delivers what the server already took to every subscriber, closes every client with
    /// 1001 (answering health checks meanwhile), and returns once all of them are done or the
    /// close deadline has passed.
    pub async fn run(self) {
        let Server {
            listener,
            admin,
            state,
        } = self;
        let mut backoff = AcceptBackoff::default();
        let handshakes = Arc::new(Semaphore::new(
            state.options.max_handshakes.min(Semaphore::MAX_PERMITS),
        ));
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
                accepted = http::accept(&listener, admin.as_ref(), &handshakes) => match accepted {
                    Ok(connection) => {
                        backoff.reset();
                        state.connections.spawn(http::serve_tcp(connection, Arc::clone(&state)));
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

    /// Number of pattern subscribers (subscribers of a path with a `*` or `**` segment).
    pub fn pattern_subscriber_count(&self) -> usize {
        self.state.hub.follower_count()
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
