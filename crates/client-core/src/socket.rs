//! The client socket: connecting (with the role header and a timeout), reading what the
//! server sends, answering and starting the closing handshake.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WireCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use wspubsub_protocol::{CLIENT_NAME_HEADER, CloseCode, ROLE_HEADER, Role};

use crate::{ClientError, ClientOptions, tls};

/// A connected client socket.
pub type ClientSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest part of a refusal body kept in [`ClientError::HandshakeRejected`].
const MAX_REFUSAL_BODY: usize = 1024;

/// Connects to `url` (`ws://host:port/topic`, or `wss://` for TLS) in `role`.
pub async fn connect(
    url: &str,
    role: Role,
    options: &ClientOptions,
) -> Result<ClientSocket, ClientError> {
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
        Ok(Err(error)) => Err(ClientError::Connect(Arc::new(error))),
    }
}

/// Sends close 1000 and waits, at most `deadline`, for the server's echo.
pub async fn close_handshake(socket: &mut ClientSocket, deadline: Duration) {
    let frame = CloseFrame {
        code: WireCloseCode::from(CloseCode::Normal.code()),
        reason: "".into(),
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
pub enum Incoming {
    /// A binary message.
    Message(Bytes),
    /// A ping, a pong or another sign of life with nothing to deliver.
    Alive,
    /// The connection is over, for this reason.
    End(ClientError),
}

/// Reads the next frame from the server. Cancel-safe.
pub async fn read(socket: &mut ClientSocket) -> Incoming {
    match socket.next().await {
        Some(Ok(Message::Binary(message))) => Incoming::Message(message),
        Some(Ok(Message::Text(_))) => {
            tracing::warn!("ignored a text frame: wspubsub servers send binary frames only");
            Incoming::Alive
        }
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Incoming::Alive,
        Some(Ok(Message::Close(frame))) => {
            let (code, reason) = frame.map_or((NO_STATUS, String::new()), |frame| {
                (u16::from(frame.code), frame.reason.to_string())
            });
            Incoming::End(ClientError::ServerClosed { code, reason })
        }
        Some(Err(error)) => Incoming::End(ClientError::ConnectionLost(error.to_string())),
        None => Incoming::End(ClientError::ConnectionLost(
            "closed without a close frame".into(),
        )),
    }
}

/// The code reported for a close frame without one (RFC 6455: 1005, "no status received").
const NO_STATUS: u16 = 1005;

/// Ends a connection that ended with `error`: when the server closed it, its close frame is
/// echoed first (bounded by `deadline`), completing the handshake.
pub async fn end_with(
    socket: &mut ClientSocket,
    error: ClientError,
    deadline: Duration,
) -> Result<(), ClientError> {
    if matches!(error, ClientError::ServerClosed { .. }) {
        // tungstenite queued the echo when it read the close frame; flushing sends it.
        let _sent = tokio::time::timeout(deadline, SinkExt::flush(socket)).await;
    }
    Err(error)
}

/// Sends a ping.
pub async fn ping(socket: &mut ClientSocket) -> Result<(), ClientError> {
    socket
        .send(Message::Ping(Bytes::new()))
        .await
        .map_err(|error| ClientError::ConnectionLost(error.to_string()))
}
