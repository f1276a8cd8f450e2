//! Client options, as a builder with sensible defaults.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use wspubsub_protocol::{DEFAULT_CLOSE_DEADLINE, DEFAULT_PONG_DEADLINE};

/// Default bound on connecting: TCP connect plus the WebSocket handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default largest message a client accepts from the server (64 MiB, tungstenite's default).
pub const DEFAULT_MAX_INCOMING_MESSAGE: usize = 64 << 20;

/// How a client connects and keeps its connection honest.
///
/// ```
/// use std::time::Duration;
/// use wspubsub_client_core::ClientOptions;
///
/// let options = ClientOptions::default()
///     .name("sensor-7")
///     .pong_deadline(Duration::from_secs(10));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Sent as the client-name header; the server prefixes the client's id with it.
    pub(crate) name: Option<String>,
    /// Extra request headers for the handshake (trace ids, ...).
    pub(crate) headers: HeaderMap,
    /// Sent as `Authorization: Bearer <token>`, for servers with token auth.
    pub(crate) token: Option<String>,
    /// Bound on TCP connect plus the handshake.
    pub(crate) connect_timeout: Duration,
    /// Longest silence from the server before the client gives up on it.
    pub(crate) pong_deadline: Duration,
    /// Bound on a closing handshake.
    pub(crate) close_deadline: Duration,
    /// Largest message (and frame) accepted from the server.
    pub(crate) max_message_size: usize,
}

impl Default for ClientOptions {
    /// No name, no extra headers, no token, a 10 s connect timeout, the protocol's default
    /// pong and close deadlines, and messages from the server up to 64 MiB.
    fn default() -> Self {
        ClientOptions {
            name: None,
            headers: HeaderMap::new(),
            token: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            pong_deadline: DEFAULT_PONG_DEADLINE,
            close_deadline: DEFAULT_CLOSE_DEADLINE,
            max_message_size: DEFAULT_MAX_INCOMING_MESSAGE,
        }
    }
}

impl ClientOptions {
    /// Names the client (the `pubsub-client-name` header); the server logs it as the prefix
    /// of the client's id.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a request header to the handshake (a trace id, ...). The role, name and
    /// authorization headers are the client's own and replace any given here.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sends `token` as `Authorization: Bearer <token>`, for servers with token auth.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Bounds connecting: TCP connect plus the WebSocket handshake.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Ends the connection when nothing at all is heard from the server within this time;
    /// the client pings the server at [`wspubsub_protocol::ping_interval`] of it.
    pub fn pong_deadline(mut self, deadline: Duration) -> Self {
        self.pong_deadline = deadline;
        self
    }

    /// Bounds a closing handshake: flushing what is still queued, our close frame, and the
    /// server's echo.
    pub fn close_deadline(mut self, deadline: Duration) -> Self {
        self.close_deadline = deadline;
        self
    }

    /// Largest message accepted from the server; a bigger one ends the connection.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }
}
