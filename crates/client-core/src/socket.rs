//! The client socket: connecting (with the role header and a timeout), reading what the
//! server sends, answering and starting the closing handshake.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WireCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use wspubsub_liveness::{Liveness, Tick};
use wspubsub_protocol::{CLIENT_NAME_HEADER, CloseCode, ROLE_HEADER, Role, STREAM_SUBPROTOCOL};

use crate::{ClientError, ClientOptions, tls};

/// A connected client socket.
pub(crate) type ClientSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest part of a refusal body kept in [`ClientError::HandshakeRejected`].
const MAX_REFUSAL_BODY: usize = 1024;

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Protocol v1: bare binary frames, as the Go clients speak it.
    Raw,
    /// Stream mode (`wspubsub.v2`): positions, control messages, acks.
    Stream,
}

/// Connects to `url` (`ws://host:port/topic`, or `wss://` for TLS) in `role`, speaking `mode`.
pub(crate) async fn connect(
    url: &str,
    role: Role,
    mode: Mode,
    options: &ClientOptions,
) -> Result<ClientSocket, ClientError> {
    options.validate()?;
    let mut request = url
        .into_client_request()
        .map_err(|error| ClientError::InvalidUrl(error.to_string()))?;
    let connector = match request.uri().scheme_str() {
        Some("ws") => Connector::Plain,
        Some("wss") => tls::connector(options.ca_certificates.as_deref())?,
        other => {
            return Err(ClientError::InvalidUrl(format!(
                "unsupported scheme {other:?}; use ws:// or wss://"
            )));
        }
    };
    let headers = request.headers_mut();
    for (name, value) in &options.headers {
        headers.append(name, value.clone());
    }
    headers.insert(ROLE_HEADER, HeaderValue::from_static(role.as_str()));
    if mode == Mode::Stream {
        headers.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(STREAM_SUBPROTOCOL),
        );
    }
    if let Some(token) = &options.token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ClientError::InvalidOption("the token is not a valid header value".into())
        })?;
        headers.insert(http::header::AUTHORIZATION, value);
    }
    if let Some(name) = &options.name {
        let value = HeaderValue::from_str(name).map_err(|_| {
            ClientError::InvalidOption(format!("client name {name:?} is not a valid header value"))
        })?;
        headers.insert(CLIENT_NAME_HEADER, value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(options.max_message_size))
        .max_frame_size(Some(options.max_message_size));
    let handshake = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(connector),
    );
    match tokio::time::timeout(options.connect_timeout, handshake).await {
        Err(_elapsed) => Err(ClientError::ConnectTimeout(options.connect_timeout)),
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let body = response.body().as_deref().unwrap_or_default();
            let body = String::from_utf8_lossy(&body[..body.len().min(MAX_REFUSAL_BODY)])
                .trim()
                .to_owned();
            Err(ClientError::HandshakeRejected {
                status: response.status().as_u16(),
                body,
            })
        }
        Ok(Err(tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(_),
        ))) => Err(ClientError::NoStreamMode),
        Ok(Err(error)) => Err(ClientError::Connect(io_error(error))),
    }
}

/// The I/O error behind a WebSocket error: its own for an I/O failure, else one of a fitting
/// kind that carries it as its source (so no tungstenite type leaks into [`ClientError`]).
pub(crate) fn io_error(error: tungstenite::Error) -> Arc<io::Error> {
    use tungstenite::error::ProtocolError;
    let error = match error {
        tungstenite::Error::Io(error) => error,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::Error::new(io::ErrorKind::NotConnected, error)
        }
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            io::Error::new(io::ErrorKind::ConnectionReset, error)
        }
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    };
    Arc::new(error)
}

/// A lost connection, from the WebSocket error that says so.
pub(crate) fn lost(error: tungstenite::Error) -> ClientError {
    ClientError::ConnectionLost(io_error(error))
}

/// Runs one write (a message burst, a flush, a ping) bounded by `limit`: a server that takes
/// no data for that long is as good as gone, and without the bound a blocked write would hang
/// the connection task. A write that had to wait for the socket and then went through means
/// the server took our bytes: as good a sign of life as a pong, which `liveness` is told (a
/// server that holds its publishers back sends nothing they read meanwhile).
pub(crate) async fn timed_write<T>(
    limit: Duration,
    liveness: &mut Liveness,
    write: impl Future<Output = Result<T, tungstenite::Error>>,
) -> Result<T, ClientError> {
    let mut write = std::pin::pin!(write);
    let mut waited = false;
    let write = std::future::poll_fn(|cx| {
        let poll = write.as_mut().poll(cx);
        waited |= poll.is_pending();
        poll
    });
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(written)) => {
            if waited {
                liveness.heard();
            }
            Ok(written)
        }
        Ok(Err(error)) => Err(lost(error)),
        Err(_elapsed) => Err(ClientError::WriteTimeout(limit)),
    }
}

/// Sends a close frame with `code` and waits, at most `deadline` in all, for the server's
/// echo.
pub(crate) async fn close_handshake<S>(
    socket: &mut WebSocketStream<S>,
    code: CloseCode,
    reason: &str,
    deadline: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: WireCloseCode::from(code.code()),
        reason: reason.into(),
    };
    let handshake = async {
        if socket.close(Some(frame)).await.is_err() {
            return;
        }
        // Read through the echo until the server closes the TCP connection.
        while let Some(Ok(_)) = socket.next().await {}
    };
    if tokio::time::timeout(deadline, handshake).await.is_err() {
        tracing::debug!(
            ?deadline,
            "server did not finish the close handshake in time"
        );
    }
}

/// What one read from the server means to a client.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A binary message.
    Message(Bytes),
    /// A text message (a control message in stream mode).
    Text(String),
    /// A ping, a pong or another sign of life with nothing to deliver.
    Alive,
    /// The connection is over, for this reason.
    End(ClientError),
}

/// Reads the next frame from the server. Cancel-safe.
pub(crate) async fn read<S>(socket: &mut WebSocketStream<S>) -> Incoming
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match socket.next().await {
        Some(Ok(Message::Binary(message))) => Incoming::Message(message),
        Some(Ok(Message::Text(text))) => Incoming::Text(text.as_str().to_owned()),
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Incoming::Alive,
        Some(Ok(Message::Close(frame))) => {
            let (code, reason) = frame.map_or((NO_STATUS, String::new()), |frame| {
                (u16::from(frame.code), frame.reason.to_string())
            });
            Incoming::End(ClientError::ServerClosed { code, reason })
        }
        Some(Err(error)) => Incoming::End(lost(error)),
        None => Incoming::End(ClientError::ConnectionLost(Arc::new(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed without a close frame",
        )))),
    }
}

/// The code reported for a close frame without one (RFC 6455: 1005, "no status received").
const NO_STATUS: u16 = 1005;

/// Ends a connection that ended with `error`: when the server closed it, its close frame is
/// echoed first (bounded by `deadline`), completing the handshake.
pub(crate) async fn end_with<S>(
    socket: &mut WebSocketStream<S>,
    error: ClientError,
    deadline: Duration,
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if matches!(error, ClientError::ServerClosed { .. }) {
        // tungstenite queued the echo when it read the close frame; flushing sends it.
        let _sent = tokio::time::timeout(deadline, SinkExt::flush(socket)).await;
    }
    Err(error)
}

/// Does what a liveness tick asks: a ping (bounded by the write timeout like every write),
/// nothing, or the end of a server that went silent.
pub(crate) async fn on_tick<S>(
    tick: Tick,
    liveness: &mut Liveness,
    socket: &mut WebSocketStream<S>,
    options: &ClientOptions,
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tick {
        Tick::Ping => {
            let ping = socket.send(Message::Ping(Bytes::new()));
            timed_write(options.write_timeout, liveness, ping).await
        }
        Tick::Alive => Ok(()),
        Tick::Expired => Err(ClientError::PongTimeout(options.pong_deadline)),
    }
}
