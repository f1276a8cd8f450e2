//! Static files the server hands to browsers: the client module at [`CLIENT_MODULE_PATH`],
//! on the main and the admin listener, so that a page can
//! `import { subscribe } from "/wspubsub.js"` from the server it talks to.
//!
//! Like the endpoints, only a plain (non-upgrade) `GET` or `HEAD` is answered here: a
//! WebSocket client of `/wspubsub.js` is a client of that topic.

use bytes::Bytes;
use hyper::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Request, Response};

use crate::upgrade::{self, Body};

/// Where the browser client module is served.
pub(crate) const CLIENT_MODULE_PATH: &str = "/wspubsub.js";

/// The browser client module (`clients/js/wspubsub.js`), built into the binary.
const CLIENT_MODULE: &str = include_str!("../../../clients/js/wspubsub.js");

/// The answer to a plain HTTP request if it is for a static file.
pub(crate) fn respond<B>(request: &Request<B>) -> Option<Response<Body>> {
    if !upgrade::is_read(request) || request.uri().path() != CLIENT_MODULE_PATH {
        return None;
    }
    let mut response = Response::new(Body::new(Bytes::from_static(CLIENT_MODULE.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    // Public code, no credentials: any origin may import it (module scripts load with CORS).
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    // Revalidated on each load, so a page never runs a module older than its server.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Some(response)
}

#[cfg(test)]
mod tests {
    use hyper::Method;

    use super::*;

    fn request(method: Method, path: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .expect("valid request")
    }

    #[test]
    fn the_client_module_is_served_as_javascript() {
        let response = respond(&request(Method::GET, "/wspubsub.js")).expect("served");
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(CLIENT_MODULE.contains("export function subscribe("));
        assert!(CLIENT_MODULE.contains("export async function publish("));
        assert!(respond(&request(Method::HEAD, "/wspubsub.js")).is_some());
    }

    #[test]
    fn other_paths_and_methods_are_not_files() {
        assert!(respond(&request(Method::POST, "/wspubsub.js")).is_none());
        assert!(respond(&request(Method::GET, "/wspubsub.js/x")).is_none());
        assert!(respond(&request(Method::GET, "/other.js")).is_none());
    }
}
