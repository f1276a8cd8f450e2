//! The HTTP side of a topic request: who the client is, and the answer to its upgrade.
//!
//! Every request either becomes a publisher or subscriber of its path, or is refused before
//! the upgrade with a status and a one-line body that says what was expected.

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, SEC_WEBSOCKET_PROTOCOL, UPGRADE};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::server::create_response_with_body;
use wspubsub_fanout::Form;
use wspubsub_protocol::{
    BadStart, CLIENT_NAME_HEADER, CLIENT_NAME_QUERY, FROM_QUERY, GAP_QUERY, InvalidRole,
    ROLE_HEADER, ROLE_QUERY, Role, SINCE_QUERY, STREAM_SUBPROTOCOL, Start, offers_stream,
};

pub(crate) use crate::body::Body;

/// Longest client name accepted; names end up in every log line about the client.
pub(crate) const MAX_CLIENT_NAME_LEN: usize = 128;

/// Who a request says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientIdentity {
    pub(crate) role: Role,
    pub(crate) name: String,
}

/// Why a request's identity was refused (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadIdentity {
    #[error(
        "missing role: send header `pubsub: publisher` or `pubsub: subscriber` (or ?pubsub=...)"
    )]
    MissingRole,
    #[error("{0}; send header `pubsub: publisher` or `pubsub: subscriber` (or ?pubsub=...)")]
    InvalidRole(#[from] InvalidRole),
    #[error("header `{0}` must be visible ASCII")]
    NotText(&'static str),
    #[error("client name longer than {MAX_CLIENT_NAME_LEN} bytes")]
    NameTooLong,
}

/// Reads the role and client name from the headers, falling back to the query string; the
/// header wins when both are given.
pub(crate) fn identify<B>(request: &Request<B>) -> Result<ClientIdentity, BadIdentity> {
    let query = request.uri().query().unwrap_or("");
    let role = match header_text(request.headers(), ROLE_HEADER)? {
        Some(value) => value.parse::<Role>()?,
        None => match query_value(query, ROLE_QUERY) {
            Some(value) => value.parse::<Role>()?,
            None => return Err(BadIdentity::MissingRole),
        },
    };
    let name = match header_text(request.headers(), CLIENT_NAME_HEADER)? {
        Some(name) => name.to_owned(),
        None => query_value(query, CLIENT_NAME_QUERY).unwrap_or_default(),
    };
    if name.len() > MAX_CLIENT_NAME_LEN {
        return Err(BadIdentity::NameTooLong);
    }
    Ok(ClientIdentity { role, name })
}

/// Reads a subscriber's start position from the query string (`from`, `since`, `gap`).
pub(crate) fn start<B>(request: &Request<B>) -> Result<Start, BadStart> {
    let query = request.uri().query().unwrap_or("");
    let value = |key| query_value(query, key);
    Start::parse(
        value(FROM_QUERY).as_deref(),
        value(SINCE_QUERY).as_deref(),
        value(GAP_QUERY).as_deref(),
    )
}

fn header_text<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, BadIdentity> {
    headers
        .get(name)
        .map(|value| value.to_str().map_err(|_| BadIdentity::NotText(name)))
        .transpose()
}

/// The first value of `key` in a query string, percent-decoded.
pub(crate) fn query_value(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.into_owned())
}

/// A response with a one-line plain-text body: every refusal, and the health endpoints.
pub(crate) fn plain_text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(Body::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Whether a request only reads (`GET` or `HEAD`): all the endpoints, static files and event
/// streams answer.
pub(crate) fn is_read<B>(request: &Request<B>) -> bool {
    matches!(*request.method(), Method::GET | Method::HEAD)
}

/// Whether a request asks to become a WebSocket: its `Upgrade` names `websocket`. Whether it
/// asks correctly (`Connection: upgrade`, the key, the version, ...) is [`accept`]'s question.
pub(crate) fn is_websocket_request<B>(request: &Request<B>) -> bool {
    has_token(request.headers(), UPGRADE, "websocket")
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// Why a WebSocket handshake cannot be answered (RFC 6455, section 4.2.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadHandshake {
    #[error("invalid WebSocket handshake: the method must be GET")]
    NotGet,
    #[error("invalid WebSocket handshake: HTTP/1.1 or later is required")]
    OldHttp,
    #[error("invalid WebSocket handshake: missing `Connection: upgrade`")]
    NoConnectionUpgrade,
    #[error("invalid WebSocket handshake: missing `Upgrade: websocket`")]
    NoUpgradeWebsocket,
    #[error("unsupported WebSocket version: this server speaks Sec-WebSocket-Version 13")]
    UnsupportedVersion,
    #[error("invalid WebSocket handshake: missing Sec-WebSocket-Key header")]
    MissingKey,
    #[error("invalid WebSocket handshake: Sec-WebSocket-Key must be the base64 of 16 bytes")]
    InvalidKey,
    /// Anything else tungstenite refuses, in its words.
    #[error("invalid WebSocket handshake: {0}")]
    Other(String),
}

impl From<WsError> for BadHandshake {
    fn from(error: WsError) -> Self {
        match error {
            WsError::Protocol(ProtocolError::WrongHttpMethod) => BadHandshake::NotGet,
            WsError::Protocol(ProtocolError::WrongHttpVersion) => BadHandshake::OldHttp,
            WsError::Protocol(ProtocolError::MissingConnectionUpgradeHeader) => {
                BadHandshake::NoConnectionUpgrade
            }
            WsError::Protocol(ProtocolError::MissingUpgradeWebSocketHeader) => {
                BadHandshake::NoUpgradeWebsocket
            }
            WsError::Protocol(ProtocolError::MissingSecWebSocketVersionHeader) => {
                BadHandshake::UnsupportedVersion
            }
            WsError::Protocol(ProtocolError::MissingSecWebSocketKey) => BadHandshake::MissingKey,
            WsError::Protocol(ProtocolError::InvalidSecWebSocketKey) => BadHandshake::InvalidKey,
            other => BadHandshake::Other(other.to_string()),
        }
    }
}

impl BadHandshake {
    /// 426 for a version this server does not speak (the answer names the one it does), 400
    /// for everything else.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            BadHandshake::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Checks an upgrade request the way tungstenite's own server does (GET, HTTP/1.1 or later,
/// `Connection: upgrade` among a comma list, `Upgrade: websocket`, version 13, a key that is
/// the base64 of 16 bytes) and returns the 101 answer, with the key's accept hash, to send.
/// A client that offers stream mode ([`stream_mode`]) finds it echoed in
/// `Sec-WebSocket-Protocol`.
pub(crate) fn accept<B>(request: &Request<B>) -> Result<Response<Body>, BadHandshake> {
    let mut response = create_response_with_body(request, Body::default)?;
    if stream_mode(request) == Form::Enveloped {
        response.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(STREAM_SUBPROTOCOL),
        );
    }
    Ok(response)
}

/// Stream mode ([`Form::Enveloped`]) if the request offers `wspubsub.v2` in
/// `Sec-WebSocket-Protocol`, raw otherwise.
pub(crate) fn stream_mode<B>(request: &Request<B>) -> Form {
    let offered = request
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(offers_stream);
    if offered { Form::Enveloped } else { Form::Raw }
}

/// The body of the answer to a plain HTTP request (no upgrade).
pub(crate) const NOT_A_WEBSOCKET: &str = "expected a WebSocket upgrade: every path is a topic; connect with header `pubsub: publisher` or `pubsub: subscriber`, subscribe with a GET that accepts text/event-stream, or publish with a POST";

#[cfg(test)]
mod tests {
    use hyper::Method;

    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("valid request")
    }

    #[test]
    fn role_from_header_or_query_header_wins() {
        let by_header = request("/t", &[("PubSub", "publisher")]);
        assert_eq!(identify(&by_header).map(|c| c.role), Ok(Role::Publisher));
        let by_query = request("/t?pubsub=subscriber&name=web", &[]);
        assert_eq!(
            identify(&by_query),
            Ok(ClientIdentity {
                role: Role::Subscriber,
                name: "web".into()
            })
        );
        let both = request("/t?pubsub=subscriber", &[("pubsub", "publisher")]);
        assert_eq!(identify(&both).map(|c| c.role), Ok(Role::Publisher));
    }

    #[test]
    fn bad_or_missing_role_is_refused() {
        assert_eq!(identify(&request("/t", &[])), Err(BadIdentity::MissingRole));
        let wrong = request("/t?pubsub=subscriber", &[("pubsub", "admin")]);
        assert!(matches!(identify(&wrong), Err(BadIdentity::InvalidRole(_))));
        let long_name = "n".repeat(MAX_CLIENT_NAME_LEN + 1);
        let named = request(
            "/t",
            &[("pubsub", "subscriber"), ("pubsub-client-name", &long_name)],
        );
        assert_eq!(identify(&named), Err(BadIdentity::NameTooLong));
    }

    #[test]
    fn name_header_beats_query_and_query_is_decoded() {
        let both = request(
            "/t?name=q",
            &[("pubsub", "publisher"), ("pubsub-client-name", "h")],
        );
        assert_eq!(identify(&both).map(|c| c.name), Ok("h".into()));
        let encoded = request("/t?pubsub=publisher&name=a%20b", &[]);
        assert_eq!(identify(&encoded).map(|c| c.name), Ok("a b".into()));
    }

    const GOOD: [(&str, &str); 4] = [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    /// The good handshake with `name` replaced by `value` (or left out, for `None`).
    fn handshake(method: Method, name: &str, value: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().method(method).uri("/t");
        for (header, good) in GOOD {
            match (header == name, value) {
                (false, _) => builder = builder.header(header, good),
                (true, Some(value)) => builder = builder.header(header, value),
                (true, None) => {}
            }
        }
        builder.body(()).expect("valid request")
    }

    #[test]
    fn handshake_is_answered_per_rfc_6455() {
        let response = accept(&handshake(Method::GET, "", None)).expect("valid handshake");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        // The example of RFC 6455 section 1.3.
        assert_eq!(
            response.headers()[hyper::header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let shouting = handshake(Method::GET, "connection", Some("UPGRADE"));
        assert!(accept(&shouting).is_ok(), "tokens are case-insensitive");
    }

    #[test]
    fn stream_mode_is_echoed_only_when_offered() {
        let protocol = |offer: Option<&str>| {
            let mut request = handshake(Method::GET, "", None);
            if let Some(offer) = offer {
                let value = HeaderValue::from_str(offer).expect("visible ASCII");
                request.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, value);
            }
            let form = stream_mode(&request);
            let response = accept(&request).expect("valid handshake");
            (
                form,
                response.headers().get(SEC_WEBSOCKET_PROTOCOL).cloned(),
            )
        };
        let echoed = Some(HeaderValue::from_static(STREAM_SUBPROTOCOL));
        assert_eq!(
            protocol(Some("chat, wspubsub.v2")),
            (Form::Enveloped, echoed)
        );
        assert_eq!(protocol(Some("chat")), (Form::Raw, None));
        assert_eq!(protocol(None), (Form::Raw, None));
    }

    #[test]
    fn handshakes_rfc_6455_rejects_are_refused() {
        use BadHandshake::*;
        let cases = [
            (Method::POST, "", None, NotGet),
            (Method::GET, "connection", None, NoConnectionUpgrade),
            (
                Method::GET,
                "connection",
                Some("keep-alive"),
                NoConnectionUpgrade,
            ),
            (Method::GET, "upgrade", Some("h2c"), NoUpgradeWebsocket),
            (
                Method::GET,
                "sec-websocket-version",
                Some("8"),
                UnsupportedVersion,
            ),
            (
                Method::GET,
                "sec-websocket-version",
                None,
                UnsupportedVersion,
            ),
            (Method::GET, "sec-websocket-key", None, MissingKey),
            (
                Method::GET,
                "sec-websocket-key",
                Some("not base64"),
                InvalidKey,
            ),
            // The base64 of 15 bytes: 20 characters, not 24.
            (
                Method::GET,
                "sec-websocket-key",
                Some("AAAAAAAAAAAAAAAAAAAA"),
                InvalidKey,
            ),
        ];
        for (method, name, value, expected) in cases {
            let request = handshake(method, name, value);
            assert_eq!(accept(&request).err(), Some(expected), "{name}: {value:?}");
        }
        let mut old = handshake(Method::GET, "", None);
        *old.version_mut() = hyper::Version::HTTP_10;
        assert_eq!(accept(&old).err(), Some(OldHttp));
        assert_eq!(UnsupportedVersion.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(InvalidKey.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn only_an_upgrade_to_websocket_asks_for_one() {
        assert!(is_websocket_request(&request(
            "/t",
            &[("upgrade", "WebSocket")]
        )));
        assert!(!is_websocket_request(&request(
            "/t",
            &[("connection", "upgrade"), ("upgrade", "h2c")]
        )));
        assert!(!is_websocket_request(&request("/t", &[])));
    }

    #[test]
    fn refusals_are_one_line() {
        let response = plain_text(StatusCode::BAD_REQUEST, "nope");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(NOT_A_WEBSOCKET.lines().count() == 1);
    }
}
