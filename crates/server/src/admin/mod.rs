//! The admin API and dashboard: which requests are theirs, on which listener, and the token.
//!
//! Plain `GET`/`HEAD` requests of `/api/...` and `/ui` are answered here: always on the admin
//! listener (`admin_addr`), on the main listener only when [`Options::admin_token`] is set;
//! never on the main listener by default (there such a request is what it always was). With a
//! token set, every admin request on either listener needs `Authorization: Bearer <token>`
//! (401 otherwise), except the dashboard's own files, which hold no data: the page reads the
//! token from its URL fragment (`/ui#token=...`, which browsers never send) and sends it with
//! every API call. What each path answers is `views` (JSON) and `ui` (the page's files).
//!
//! [`Options::admin_token`]: crate::Options::admin_token

mod rates;
mod ui;
mod views;

use std::net::SocketAddr;

use bytes::Bytes;
use hyper::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};

use crate::http::Listener;
use crate::options::AdminToken;
use crate::server::State;
use crate::upgrade::{self, Body};

pub(crate) use rates::Rates;

/// Where the JSON API lives.
const API_PREFIX: &str = "/api/";

/// The dashboard's page.
const UI_PATH: &str = "/ui";

/// What the admin API needs that the rest of the server does not keep.
#[derive(Debug)]
pub(crate) struct Admin {
    /// Recent samples of each topic's counters, for its rates.
    pub(crate) rates: Rates,
    /// The main listener's address, for the page to find topics when it is served elsewhere.
    pub(crate) main_addr: Option<SocketAddr>,
}

impl Admin {
    /// The admin state of a server whose main listener is bound to `main_addr`.
    pub(crate) fn new(main_addr: Option<SocketAddr>) -> Self {
        Admin {
            rates: Rates::default(),
            main_addr,
        }
    }
}

/// The answer to `request` on `listener` if it is an admin request served there; `None`
/// leaves it to the rest of the server.
pub(crate) fn respond<B>(
    state: &State,
    listener: Listener,
    request: &Request<B>,
) -> Option<Response<Body>> {
    // WebSocket and EventSource clients of `/api/x` are topic clients like any other.
    if !upgrade::is_read(request)
        || upgrade::is_websocket_request(request)
        || crate::sse::is_event_stream_request(request)
    {
        return None;
    }
    let path = request.uri().path();
    let api = path.strip_prefix(API_PREFIX);
    let page = path == UI_PATH || path.starts_with("/ui/");
    if api.is_none() && !page {
        return None;
    }
    let token = state.options.admin_token.as_ref();
    if listener == Listener::Main && token.is_none() {
        return None;
    }
    if page {
        return Some(ui::respond(path));
    }
    if let Some(token) = token
        && !authorized(request, token)
    {
        return Some(unauthorized());
    }
    Some(views::respond(
        state,
        listener,
        request,
        api.unwrap_or_default(),
    ))
}

/// Whether the request carries `Authorization: Bearer <token>`, compared in constant time.
fn authorized<B>(request: &Request<B>, token: &AdminToken) -> bool {
    request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|offered| same_secret(offered, token.as_bytes()))
}

/// Compares two secrets in time that depends on their lengths only, not on where they differ.
fn same_secret(offered: &[u8], expected: &[u8]) -> bool {
    let differences = offered
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(differences) == 0 && offered.len() == expected.len()
}

/// 401 with the challenge a client needs.
fn unauthorized() -> Response<Body> {
    let mut response = json(
        StatusCode::UNAUTHORIZED,
        br#"{"error":"the admin API needs Authorization: Bearer <admin token>"}"#.to_vec(),
    );
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// A JSON response, never cached (it is live state).
fn json(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The one-line answer to an admin path that does not exist.
fn not_found(what: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": what });
    json(StatusCode::NOT_FOUND, body.to_string().into_bytes())
}

/// The plain-text 404 of the admin listener for anything it does not serve.
pub(crate) fn elsewhere() -> Response<Body> {
    upgrade::plain_text(
        StatusCode::NOT_FOUND,
        "this listener serves /healthz, /readyz, /metrics, /api/, /ui and /wspubsub.js",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cres", b"s3cret"));
        assert!(
            !same_secret(b"s3cre", b"s3cret"),
            "a prefix is not the secret"
        );
        assert!(!same_secret(b"s3cret!", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
    }

    #[test]
    fn only_a_bearer_of_the_token_is_authorized() {
        let token = AdminToken::new("t0ken");
        let with = |value: &str| {
            Request::get("/api/topics")
                .header(AUTHORIZATION, value)
                .body(())
                .expect("valid request")
        };
        assert!(authorized(&with("Bearer t0ken"), &token));
        assert!(!authorized(&with("Bearer t0ke"), &token));
        assert!(!authorized(&with("Basic t0ken"), &token));
        let bare = Request::get("/api/topics").body(()).expect("valid request");
        assert!(!authorized(&bare, &token));
    }
}
