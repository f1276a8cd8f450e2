//! The plain-HTTP endpoints on the main listener: health, readiness and metrics.
//!
//! The rule that keeps them apart from topics: topics are WebSocket upgrades, so only a plain
//! (non-upgrade) `GET` or `HEAD` of one of these paths is answered here; a WebSocket request
//! to `/healthz` is a topic like any other path.

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::metrics::{self, Metrics};
use crate::upgrade::{self, Body};

/// Liveness: 200 while the process serves HTTP at all.
pub(crate) const HEALTHZ: &str = "/healthz";

/// Readiness: 200 while the server takes new clients, 503 once it is draining or (cluster
/// mode) while NATS or its stream is unusable.
pub(crate) const READYZ: &str = "/readyz";

/// Prometheus metrics in the OpenMetrics text format.
pub(crate) const METRICS: &str = "/metrics";

/// What the endpoints report on.
#[derive(Debug, Clone)]
pub(crate) struct Status<'a> {
    /// Whether the server is draining (shutting down).
    pub(crate) draining: bool,
    /// The server's metrics.
    pub(crate) metrics: &'a Metrics,
    /// Live topics now.
    pub(crate) topics: usize,
    /// Cluster mode: how the link to NATS is now.
    pub(crate) broker: Option<BrokerHealth>,
}

/// A cluster-mode node's link to NATS, as the endpoints report it.
#[derive(Debug, Clone, Default)]
pub(crate) struct BrokerHealth {
    /// Whether the NATS connection is up.
    pub(crate) connected: bool,
    /// Why cluster topics cannot be served now, if they cannot.
    pub(crate) trouble: Option<String>,
}

/// The answer to a plain HTTP request if it is for one of the endpoints.
pub(crate) fn respond<B>(request: &Request<B>, status: &Status<'_>) -> Option<Response<Body>> {
    if !upgrade::is_read(request) {
        return None;
    }
    let trouble = status
        .broker
        .as_ref()
        .and_then(|broker| broker.trouble.clone());
    match request.uri().path() {
        HEALTHZ => Some(upgrade::plain_text(StatusCode::OK, "ok")),
        READYZ if status.draining => Some(upgrade::plain_text(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
        )),
        READYZ => Some(match trouble {
            Some(trouble) => upgrade::plain_text(StatusCode::SERVICE_UNAVAILABLE, &trouble),
            None => upgrade::plain_text(StatusCode::OK, "ready"),
        }),
        METRICS => {
            let connected = status.broker.as_ref().map(|broker| broker.connected);
            let text = status.metrics.encode(status.topics, connected);
            let mut response = Response::new(Body::new(Bytes::from(text)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            Some(response)
        }
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
    fn health_readiness_and_metrics() {
        let metrics = Metrics::new();
        let serving = Status {
            draining: false,
            metrics: &metrics,
            topics: 3,
            broker: None,
        };
        let draining = Status {
            draining: true,
            ..serving.clone()
        };
        let nats_down = Status {
            broker: Some(BrokerHealth {
                connected: false,
                trouble: Some("NATS unreachable".into()),
            }),
            ..serving.clone()
        };
        let status = |path, status: &Status<'_>| respond(&get(path), status).map(|r| r.status());
        assert_eq!(status("/healthz", &serving), Some(StatusCode::OK));
        assert_eq!(status("/healthz", &draining), Some(StatusCode::OK));
        assert_eq!(status("/readyz", &serving), Some(StatusCode::OK));
        assert_eq!(
            status("/readyz", &draining),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(
            status("/readyz", &nats_down),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(status("/healthz", &nats_down), Some(StatusCode::OK));
        assert_eq!(status("/metrics", &serving), Some(StatusCode::OK));
        assert_eq!(status("/topic", &serving), None);
        let post = Request::post("/healthz").body(()).expect("valid request");
        assert!(respond(&post, &serving).is_none());
    }
}
