//! Cross-origin access for the plain-HTTP side of topics (EventSource subscribers and
//! `POST` publishers): pages of the origins `--allowed-origins` allows may read the answers
//! (`*` when no origins are configured), and `OPTIONS` preflights are answered.
//!
//! Whether a request from a refused origin is served at all is admission's rule (403, as
//! for WebSockets); this module only says what a browser may read.

use hyper::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, HeaderMap, HeaderValue, ORIGIN, VARY,
};
use hyper::{Response, StatusCode};

use crate::body::Body;
use crate::origin::OriginPolicy;
use crate::upgrade::plain_text;

/// The methods a preflight allows on a topic.
const METHODS: &str = "GET, HEAD, POST, OPTIONS";

/// The request headers a preflight allows when the browser names none.
const HEADERS: &str = "authorization, content-type, last-event-id";

/// How long a browser may cache a preflight's answer, in seconds.
const MAX_AGE: &str = "600";

/// Adds the CORS headers of an answer to a request with these `request` headers: always
/// `Vary: Origin`, and `Access-Control-Allow-Origin` when the request's origin is allowed.
pub(crate) fn allow(origins: &OriginPolicy, request: &HeaderMap, response: &mut HeaderMap) {
    response.append(VARY, HeaderValue::from_static("origin"));
    let Some(origin) = request.get(ORIGIN) else {
        return;
    };
    if origins.allows_all() {
        response.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    } else if origin.to_str().is_ok_and(|origin| origins.allows(origin)) {
        response.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
}

/// The answer to an `OPTIONS` preflight: 204 with what a page of an allowed origin may send,
/// or 403 (without any `Access-Control-Allow-Origin`) for a refused origin.
pub(crate) fn preflight(origins: &OriginPolicy, request: &HeaderMap) -> Response<Body> {
    let allowed = request
        .get(ORIGIN)
        .is_none_or(|origin| origin.to_str().is_ok_and(|origin| origins.allows(origin)));
    if !allowed {
        let mut refused = plain_text(StatusCode::FORBIDDEN, "origin not allowed");
        refused
            .headers_mut()
            .insert(VARY, HeaderValue::from_static("origin"));
        return refused;
    }
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    allow(origins, request, headers);
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(METHODS),
    );
    let asked = request
        .get(ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or(HeaderValue::from_static(HEADERS));
    headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked);
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(origin) = origin {
            headers.insert(ORIGIN, HeaderValue::from_static(origin));
        }
        headers
    }

    fn allowed_origin(origins: &OriginPolicy, origin: Option<&'static str>) -> Option<String> {
        let mut response = HeaderMap::new();
        allow(origins, &headers(origin), &mut response);
        assert_eq!(response[VARY], "origin");
        response
            .get(ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|value| value.to_str().expect("ASCII").to_owned())
    }

    #[test]
    fn any_origin_without_configuration_only_allowed_ones_with() {
        let open = OriginPolicy::default();
        assert_eq!(
            allowed_origin(&open, Some("https://a.test")),
            Some("*".into())
        );
        assert_eq!(allowed_origin(&open, None), None);
        let strict = OriginPolicy::new(&["https://app.test".into()]);
        assert_eq!(
            allowed_origin(&strict, Some("https://app.test")),
            Some("https://app.test".into())
        );
        assert_eq!(allowed_origin(&strict, Some("https://evil.test")), None);
    }

    #[test]
    fn preflights_answer_allowed_origins_and_refuse_others() {
        let strict = OriginPolicy::new(&["https://app.test".into()]);
        let answered = preflight(&strict, &headers(Some("https://app.test")));
        assert_eq!(answered.status(), StatusCode::NO_CONTENT);
        assert_eq!(answered.headers()[ACCESS_CONTROL_ALLOW_METHODS], METHODS);
        assert_eq!(answered.headers()[ACCESS_CONTROL_ALLOW_HEADERS], HEADERS);
        let refused = preflight(&strict, &headers(Some("https://evil.test")));
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(!refused.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    }
}
