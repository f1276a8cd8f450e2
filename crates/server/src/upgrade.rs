//! The HTTP side of a topic request: who the client is, and the answer to its upgrade.
//!
//! Every request either becomes a publisher or subscriber of its path, or is refused before
//! the upgrade with a status and a one-line body that says what was expected.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    CONNECTION, CONTENT_TYPE, HeaderName, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use wspubsub_protocol::{
    CLIENT_NAME_HEADER, CLIENT_NAME_QUERY, InvalidRole, ROLE_HEADER, ROLE_QUERY, Role,
};

/// The response body type of every answer the server gives.
pub(crate) type Body = Full<Bytes>;

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
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Whether a request asks to become a WebSocket (`Connection: upgrade`, `Upgrade: websocket`).
pub(crate) fn is_websocket_request<B>(request: &Request<B>) -> bool {
    has_token(request.headers(), CONNECTION, "upgrade")
        && has_token(request.headers(), UPGRADE, "websocket")
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// Why a WebSocket handshake cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadHandshake {
    #[error("invalid WebSocket handshake: WebSocket handshakes use GET, not {0}")]
    NotGet(String),
    #[error("invalid WebSocket handshake: missing Sec-WebSocket-Key header")]
    MissingKey,
    #[error("unsupported WebSocket version: this server speaks Sec-WebSocket-Version 13")]
    UnsupportedVersion,
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

/// Checks an upgrade request and returns the 101 answer to send.
pub(crate) fn accept<B>(request: &Request<B>) -> Result<Response<Body>, BadHandshake> {
    if request.method() != Method::GET {
        return Err(BadHandshake::NotGet(request.method().to_string()));
    }
    if request
        .headers()
        .get(SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(BadHandshake::UnsupportedVersion);
    }
    let key = request
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .ok_or(BadHandshake::MissingKey)?;
    let accept_key = derive_accept_key(key.as_bytes());
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    // The accept key is base64: always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&accept_key) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, value);
    }
    Ok(response)
}

/// The body of the answer to a plain HTTP request (no upgrade).
pub(crate) const NOT_A_WEBSOCKET: &str = "expected a WebSocket upgrade: every path is a topic; connect with header `pubsub: publisher` or `pubsub: subscriber`";

#[cfg(test)]
mod tests {
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

    #[test]
    fn handshake_is_checked_and_answered_per_rfc_6455() {
        let headers = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        let good = request("/t", &headers);
        assert!(is_websocket_request(&good));
        let response = accept(&good).expect("valid handshake");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        // The example of RFC 6455 section 1.3.
        assert_eq!(
            response.headers()[SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );

        let old_version = request(
            "/t",
            &[
                headers[0],
                headers[1],
                ("sec-websocket-version", "8"),
                headers[3],
            ],
        );
        assert_eq!(
            accept(&old_version).err(),
            Some(BadHandshake::UnsupportedVersion)
        );
        let keyless = request("/t", &headers[..3]);
        assert_eq!(accept(&keyless).err(), Some(BadHandshake::MissingKey));
        assert!(!is_websocket_request(&request(
            "/t",
            &[("upgrade", "websocket")]
        )));
        assert!(!is_websocket_request(&request(
            "/t",
            &[("connection", "upgrade"), ("upgrade", "h2c")]
        )));
    }

    #[test]
    fn refusals_are_one_line() {
        let response = plain_text(StatusCode::BAD_REQUEST, "nope");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(NOT_A_WEBSOCKET.lines().count() == 1);
    }
}
