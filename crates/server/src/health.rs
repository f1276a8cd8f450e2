//! Health endpoints for load balancers and orchestrators, on the main listener.
//!
//! The rule that keeps them apart from topics: topics are WebSocket upgrades, so only a plain
//! (non-upgrade) `GET` or `HEAD` of one of these paths is a health check; a WebSocket request
//! to `/healthz` is a topic like any other path.

use hyper::{Method, Request, StatusCode};

use crate::upgrade::{self, Body};

/// Liveness: 200 while the process serves HTTP at all.
pub(crate) const HEALTHZ: &str = "/healthz";

/// Readiness: 200 while the server takes new clients, 503 once it is draining.
pub(crate) const READYZ: &str = "/readyz";

/// The answer to a plain HTTP request if it is a health check.
pub(crate) fn respond<B>(request: &Request<B>, draining: bool) -> Option<hyper::Response<Body>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return None;
    }
    match request.uri().path() {
        HEALTHZ => Some(upgrade::refusal(StatusCode::OK, "ok")),
        READYZ if draining => Some(upgrade::refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
        )),
        READYZ => Some(upgrade::refusal(StatusCode::OK, "ready")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request<()> {
        Request::get(path).body(()).expect("valid request")
    }

    #[test]
    fn health_and_readiness() {
        assert_eq!(
            respond(&get("/healthz"), false).map(|r| r.status()),
            Some(StatusCode::OK)
        );
        assert_eq!(
            respond(&get("/healthz"), true).map(|r| r.status()),
            Some(StatusCode::OK)
        );
        assert_eq!(
            respond(&get("/readyz"), false).map(|r| r.status()),
            Some(StatusCode::OK)
        );
        assert_eq!(
            respond(&get("/readyz"), true).map(|r| r.status()),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert!(respond(&get("/topic"), false).is_none());
        let post = Request::post("/healthz").body(()).expect("valid request");
        assert!(respond(&post, false).is_none());
    }
}
