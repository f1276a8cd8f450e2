//! Client options, as a builder with sensible defaults.

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use wspubsub_protocol::{DEFAULT_CLOSE_DEADLINE, DEFAULT_PONG_DEADLINE};

use crate::ClientError;

/// Default bound on connecting: TCP connect plus the WebSocket handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default largest message a client accepts from the server (64 MiB, tungstenite's default).
pub const DEFAULT_MAX_INCOMING_MESSAGE: usize = 64 << 20;

/// Default bound, in messages, on what a subscriber holds received and not yet read.
pub const DEFAULT_RECEIVE_BUFFER_MESSAGES: usize = 64 << 10;

/// Default bound on every write (30 s): longer than the server's own write timeout (10 s by
/// default) plus the moment a subscriber bound takes to fill, so that a publisher the server
/// holds back for a stalled subscriber (`--slow-subscriber hold`) is not taken for a dead
/// server while the server cuts that subscriber.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default bound, in bytes, on what a subscriber holds received and not yet read (64 MiB).
pub const DEFAULT_RECEIVE_BUFFER_BYTES: usize = 64 << 20;

/// How a client connects and keeps its connection honest.
#[derive(Clone)]
pub struct ClientOptions {
    pub(crate) name: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) token: Option<String>,
    pub(crate) ca_certificates: Option<Vec<u8>>,
    pub(crate) connect_timeout: Duration,
    pub(crate) pong_deadline: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) close_deadline: Duration,
    pub(crate) max_message_size: usize,
    pub(crate) receive_buffer_messages: usize,
    pub(crate) receive_buffer_bytes: usize,
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token (nor an Authorization header added by hand).
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let value = if name == http::header::AUTHORIZATION {
                    "<redacted>"
                } else {
                    value.to_str().unwrap_or("<binary>")
                };
                (name.as_str(), value)
            })
            .collect();
        f.debug_struct("ClientOptions")
            .field("name", &self.name)
            .field("headers", &headers)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field(
                "ca_certificates",
                &self
                    .ca_certificates
                    .as_ref()
                    .map(|pem| format!("<{} bytes of PEM>", pem.len())),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("pong_deadline", &self.pong_deadline)
            .field("write_timeout", &self.write_timeout)
            .field("close_deadline", &self.close_deadline)
            .field("max_message_size", &self.max_message_size)
            .field("receive_buffer_messages", &self.receive_buffer_messages)
            .field("receive_buffer_bytes", &self.receive_buffer_bytes)
            .finish()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            name: None,
            headers: HeaderMap::new(),
            token: None,
            ca_certificates: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            pong_deadline: DEFAULT_PONG_DEADLINE,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            close_deadline: DEFAULT_CLOSE_DEADLINE,
            max_message_size: DEFAULT_MAX_INCOMING_MESSAGE,
            receive_buffer_messages: DEFAULT_RECEIVE_BUFFER_MESSAGES,
            receive_buffer_bytes: DEFAULT_RECEIVE_BUFFER_BYTES,
        }
    }
}

impl ClientOptions {
    /// Names the client; the server logs it as the prefix of the client's id.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a request header to the handshake (a token, a trace id, ...).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sends `token` as `Authorization: Bearer <token>`, for servers with token auth.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// For `wss://`: trusts only the CA certificates in this PEM text (a private CA, or the
    /// server's own self-signed certificate) instead of the platform's root certificates.
    pub fn ca_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificates = Some(pem.into());
        self
    }

    /// Bounds connecting: TCP connect, the TLS handshake and the WebSocket handshake.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Ends the connection when nothing is heard from the server within this time; the
    /// client pings the server at 0.7x it.
    pub fn pong_deadline(mut self, deadline: Duration) -> Self {
        self.pong_deadline = deadline;
        self
    }

    /// Bounds every write (a burst of messages, a flush, a ping): a server that takes no data
    /// for this long ends the client with [`ClientError::WriteTimeout`]. Keep it above the
    /// server's write timeout ([`DEFAULT_WRITE_TIMEOUT`] is), since a server that holds its
    /// publishers back for a stalled subscriber takes no data for up to that long.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Bounds the closing handshake.
    pub fn close_deadline(mut self, deadline: Duration) -> Self {
        self.close_deadline = deadline;
        self
    }

    /// Largest message accepted from the server.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Subscribers: the most received messages, and their bytes, held for a stream that is
    /// not being read. The connection keeps being read (so pings are answered) until one
    /// more message would cross either bound; then the subscriber ends with
    /// [`ClientError::Lagged`] and closes with `4000`. A single message larger than `bytes`
    /// is still taken when nothing else waits.
    pub fn receive_buffer(mut self, messages: usize, bytes: usize) -> Self {
        self.receive_buffer_messages = messages;
        self.receive_buffer_bytes = bytes;
        self
    }

    /// Refuses options a connection cannot run with (zero deadlines or bounds).
    pub(crate) fn validate(&self) -> Result<(), ClientError> {
        let zero = |what: &str| {
            Err(ClientError::InvalidOption(format!(
                "{what} must not be zero"
            )))
        };
        if self.connect_timeout.is_zero() {
            return zero("the connect timeout");
        }
        if self.pong_deadline.is_zero() {
            return zero("the pong deadline");
        }
        if self.write_timeout.is_zero() {
            return zero("the write timeout");
        }
        if self.close_deadline.is_zero() {
            return zero("the close deadline");
        }
        if self.receive_buffer_messages == 0 || self.receive_buffer_bytes == 0 {
            return zero("the receive buffer");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_token() {
        let options = ClientOptions::default()
            .token("s3cret-token")
            .header(
                http::header::AUTHORIZATION,
                HeaderValue::from_static("Bearer other-s3cret"),
            )
            .name("visible");
        let printed = format!("{options:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("visible"), "{printed}");
    }

    #[test]
    fn zero_deadlines_and_bounds_are_refused() {
        assert!(ClientOptions::default().validate().is_ok());
        for options in [
            ClientOptions::default().pong_deadline(Duration::ZERO),
            ClientOptions::default().close_deadline(Duration::ZERO),
            ClientOptions::default().connect_timeout(Duration::ZERO),
            ClientOptions::default().receive_buffer(0, 1),
            ClientOptions::default().receive_buffer(1, 0),
        ] {
            assert!(
                matches!(options.validate(), Err(ClientError::InvalidOption(_))),
                "{options:?}"
            );
        }
    }
}
