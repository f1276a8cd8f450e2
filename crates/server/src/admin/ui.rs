//! The dashboard's files (`/ui`, `/ui/app.js`, `/ui/style.css`), built into the binary: no
//! build step, nothing fetched from elsewhere, so the page works offline. It lists topics
//! from `/api/topics`, and tails and publishes with the browser module at `/wspubsub.js`.

use bytes::Bytes;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue, REFERRER_POLICY};
use hyper::{Response, StatusCode};

use super::not_found;
use crate::upgrade::Body;

/// The page's files: path, content type, content.
const FILES: [(&str, &str, &str); 3] = [
    (
        "/ui",
        "text/html; charset=utf-8",
        include_str!("../../assets/ui/index.html"),
    ),
    (
        "/ui/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/ui/app.js"),
    ),
    (
        "/ui/style.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/ui/style.css"),
    ),
];

/// Scripts, styles and fetches from this origin only; WebSockets to any host (the topics may
/// be on the main listener while the page is on the admin one).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
     img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The answer to `GET path` under `/ui`.
pub(super) fn respond(path: &str) -> Response<Body> {
    let path = if path == "/ui/" { "/ui" } else { path };
    let Some((_, content_type, content)) = FILES.iter().find(|(file, ..)| *file == path) else {
        return not_found("no such dashboard file");
    };
    let mut response = Response::new(Body::new(Bytes::from_static(content.as_bytes())));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_served_with_its_type_and_nothing_else_is() {
        for (path, content_type, _) in FILES {
            let response = respond(path);
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(response.headers()[CONTENT_TYPE], content_type, "{path}");
        }
        assert_eq!(respond("/ui/").status(), StatusCode::OK);
        assert_eq!(respond("/ui/missing.js").status(), StatusCode::NOT_FOUND);
    }
}
