//! Prometheus metrics, served as OpenMetrics text at `GET /metrics`.
//!
//! Counters are plain atomics on the hot path; gauges that the server already knows (topics)
//! are read when scraped.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use wspubsub_protocol::Role;

use crate::connection::Ending;
use crate::retention::HistoryMetrics;

/// The content type of [`Metrics::encode`]'s output.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `role` label of Server-Sent Events subscribers.
const SSE_ROLE: &str = "sse";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabel {
    status: u16,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabel {
    version: &'static str,
}

/// Why publishers waited: what was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeldReason {
    /// The topic's inbound queue (a publisher waited to queue a message).
    TopicQueue,
    /// A subscriber's backlog, with `--slow-subscriber hold` (the topic waited to append).
    SubscriberBacklog,
}

impl HeldReason {
    fn as_str(self) -> &'static str {
        match self {
            HeldReason::TopicQueue => "topic_queue",
            HeldReason::SubscriberBacklog => "subscriber_backlog",
        }
    }
}

/// Every metric of one server.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    connections: Family<RoleLabel, Gauge>,
    topics: Gauge,
    messages_in: Counter,
    bytes_in: Counter,
    messages_out: Counter,
    bytes_out: Counter,
    closes: Family<ReasonLabel, Counter>,
    rejections: Family<RejectionLabel, Counter>,
    handshake_timeouts: Counter,
    tls_failures: Counter,
    publish_to_write: Histogram,
    held: Family<ReasonLabel, Counter<f64, AtomicU64>>,
    acks_sent: Counter,
    /// History's own metrics, updated by the topics' histories.
    pub(crate) history: HistoryMetrics,
    /// Cluster mode's metrics (exposed only in cluster mode).
    pub(crate) nats: NatsMetrics,
}

/// What a cluster-mode node reports of its link to NATS.
#[derive(Debug, Clone)]
pub(crate) struct NatsMetrics {
    /// 1 while connected to NATS, set when scraped.
    connected: Gauge,
    /// Time from sending a publish to the stream's ack.
    publish_ack: Histogram,
    /// Messages the stream holds for this node's topic readings that they have not read.
    pending: Gauge,
    /// Topic readings that ended on a loss (their subscribers were closed with 4002).
    losses: Counter,
}

impl Default for NatsMetrics {
    fn default() -> Self {
        NatsMetrics {
            connected: Gauge::default(),
            // 100 us to about 6.5 s.
            publish_ack: Histogram::new(exponential_buckets(0.000_1, 2.0, 17)),
            pending: Gauge::default(),
            losses: Counter::default(),
        }
    }
}

impl NatsMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "nats_connected",
            "1 while this node is connected to NATS",
            self.connected.clone(),
        );
        registry.register(
            "nats_publish_ack_seconds",
            "Time from sending a message to the NATS stream to its ack",
            self.publish_ack.clone(),
        );
        registry.register(
            "nats_consumer_pending",
            "Messages the stream holds for this node's topic readings that they have not read yet (consumer lag)",
            self.pending.clone(),
        );
        registry.register(
            "nats_stream_losses",
            "Topic readings that found messages lost by the stream (their subscribers were closed with 4002)",
            self.losses.clone(),
        );
    }

    /// The stream acked a publish sent `elapsed` ago.
    pub(crate) fn acked(&self, elapsed: Duration) {
        self.publish_ack.observe(elapsed.as_secs_f64());
    }

    /// A reading's lag went from `before` to `now` messages.
    pub(crate) fn lag(&self, before: u64, now: u64) {
        let as_i64 = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.pending.inc_by(as_i64(now) - as_i64(before));
    }

    /// A topic's reading found messages lost.
    pub(crate) fn lost(&self) {
        self.losses.inc();
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self::with_nats(false)
    }

    /// The metrics of a cluster-mode node: those of [`Metrics::new`] and NATS's.
    pub(crate) fn for_cluster() -> Self {
        Self::with_nats(true)
    }

    fn with_nats(nats: bool) -> Self {
        let mut registry = Registry::with_prefix("wspubsub");
        let metrics = Metrics {
            connections: Family::default(),
            topics: Gauge::default(),
            messages_in: Counter::default(),
            bytes_in: Counter::default(),
            messages_out: Counter::default(),
            bytes_out: Counter::default(),
            closes: Family::default(),
            rejections: Family::default(),
            handshake_timeouts: Counter::default(),
            tls_failures: Counter::default(),
            // 50 us to about 3.3 s.
            publish_to_write: Histogram::new(exponential_buckets(0.000_05, 2.0, 17)),
            held: Family::default(),
            acks_sent: Counter::default(),
            registry: Registry::default(),
            history: HistoryMetrics::default(),
            nats: NatsMetrics::default(),
        };
        metrics.history.register(&mut registry);
        if nats {
            metrics.nats.register(&mut registry);
        }
        registry.register(
            "connections",
            "Connected clients, by role",
            metrics.connections.clone(),
        );
        registry.register("topics", "Live topics", metrics.topics.clone());
        registry.register(
            "messages_received",
            "Messages received from publishers",
            metrics.messages_in.clone(),
        );
        registry.register(
            "bytes_received",
            "Payload bytes received from publishers",
            metrics.bytes_in.clone(),
        );
        registry.register(
            "messages_delivered",
            "Messages written to subscribers",
            metrics.messages_out.clone(),
        );
        registry.register(
            "bytes_delivered",
            "Frame bytes written to subscribers",
            metrics.bytes_out.clone(),
        );
        registry.register(
            "closes",
            "Connections ended, by reason",
            metrics.closes.clone(),
        );
        registry.register(
            "handshake_rejections",
            "Requests refused before the upgrade, by HTTP status and the rule that refused them",
            metrics.rejections.clone(),
        );
        registry.register(
            "handshake_timeouts",
            "Connections dropped for not sending a complete request within the handshake timeout",
            metrics.handshake_timeouts.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed (not TLS, no shared version or cipher, a client that gave up)",
            metrics.tls_failures.clone(),
        );
        registry.register(
            "publish_to_write_seconds",
            "Time from a message's arrival (read from its publisher) to its write to a subscriber, for the oldest message of each batch written",
            metrics.publish_to_write.clone(),
        );
        registry.register(
            "publish_held_seconds",
            "Time publishers were held back, by what was full: a topic's inbound queue (time each publisher waited), or a subscriber's backlog with --slow-subscriber hold (time each topic waited)",
            metrics.held.clone(),
        );
        registry.register(
            "acks_sent",
            "Acks sent to stream-mode (wspubsub.v2) publishers",
            metrics.acks_sent.clone(),
        );
        let build = Family::<BuildLabel, Gauge>::default();
        build
            .get_or_create(&BuildLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "Build information", build);
        Metrics {
            registry,
            ..metrics
        }
    }

    /// A client joined.
    pub(crate) fn joined(&self, role: Role) {
        self.kind_joined(role.as_str());
    }

    /// A client left, for `ending`.
    pub(crate) fn left(&self, role: Role, ending: &Ending) {
        self.kind_left(role.as_str(), ending);
    }

    /// A Server-Sent Events subscriber joined (`role="sse"`).
    pub(crate) fn sse_joined(&self) {
        self.kind_joined(SSE_ROLE);
    }

    /// A Server-Sent Events subscriber left, for `ending`.
    pub(crate) fn sse_left(&self, ending: &Ending) {
        self.kind_left(SSE_ROLE, ending);
    }

    fn kind_joined(&self, role: &'static str) {
        self.connections.get_or_create(&RoleLabel { role }).inc();
    }

    fn kind_left(&self, role: &'static str, ending: &Ending) {
        self.connections.get_or_create(&RoleLabel { role }).dec();
        self.closes
            .get_or_create(&ReasonLabel {
                reason: ending.reason(),
            })
            .inc();
    }

    /// A publisher's message arrived.
    pub(crate) fn received(&self, bytes: usize) {
        self.messages_in.inc();
        self.bytes_in.inc_by(bytes as u64);
    }

    /// A batch went out to one subscriber.
    pub(crate) fn delivered(&self, messages: u64, bytes: usize, oldest: Option<Instant>) {
        self.messages_out.inc_by(messages);
        self.bytes_out.inc_by(bytes as u64);
        if let Some(oldest) = oldest {
            self.publish_to_write
                .observe(oldest.elapsed().as_secs_f64());
        }
    }

    /// Publishers were held back for `waited`, because of `reason`.
    pub(crate) fn held(&self, reason: HeldReason, waited: Duration) {
        self.held
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc_by(waited.as_secs_f64());
    }

    /// An ack went out to a stream-mode publisher.
    pub(crate) fn ack_sent(&self) {
        self.acks_sent.inc();
    }

    /// A request was refused with `status`, by the rule named `reason`.
    pub(crate) fn rejected(&self, status: u16, reason: &'static str) {
        self.rejections
            .get_or_create(&RejectionLabel { status, reason })
            .inc();
    }

    /// A TLS handshake failed.
    pub(crate) fn tls_failed(&self) {
        self.tls_failures.inc();
    }

    /// A connection sent no complete request within the handshake timeout.
    pub(crate) fn handshake_timed_out(&self) {
        self.handshake_timeouts.inc();
    }

    /// The text exposition, with the topic count and (cluster mode) the NATS connection
    /// state as of now.
    pub(crate) fn encode(&self, topics: usize, nats_connected: Option<bool>) -> String {
        self.topics.set(i64::try_from(topics).unwrap_or(i64::MAX));
        if let Some(connected) = nats_connected {
            self.nats.connected.set(i64::from(connected));
        }
        let mut text = String::new();
        // The encoder fails only when its writer does, and writing into a String cannot fail.
        let _infallible = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_in_the_exposition() {
        let metrics = Metrics::new();
        metrics.joined(Role::Subscriber);
        metrics.joined(Role::Publisher);
        metrics.left(Role::Publisher, &Ending::Shutdown);
        metrics.received(10);
        metrics.delivered(3, 40, Some(Instant::now()));
        metrics.rejected(400, "not_websocket");
        metrics.handshake_timed_out();
        metrics.tls_failed();
        metrics.held(HeldReason::TopicQueue, Duration::from_millis(1500));
        metrics.held(HeldReason::SubscriberBacklog, Duration::from_millis(250));
        metrics.held(HeldReason::SubscriberBacklog, Duration::from_millis(250));
        let text = metrics.encode(2, None);
        for line in [
            "wspubsub_connections{role=\"subscriber\"} 1",
            "wspubsub_connections{role=\"publisher\"} 0",
            "wspubsub_topics 2",
            "wspubsub_messages_received_total 1",
            "wspubsub_bytes_received_total 10",
            "wspubsub_messages_delivered_total 3",
            "wspubsub_bytes_delivered_total 40",
            "wspubsub_closes_total{reason=\"shutdown\"} 1",
            "wspubsub_handshake_rejections_total{status=\"400\",reason=\"not_websocket\"} 1",
            "wspubsub_handshake_timeouts_total 1",
            "wspubsub_tls_handshake_failures_total 1",
            "wspubsub_publish_to_write_seconds_count 1",
            "wspubsub_publish_held_seconds_total{reason=\"topic_queue\"} 1.5",
            "wspubsub_publish_held_seconds_total{reason=\"subscriber_backlog\"} 0.5",
            "wspubsub_build_info{version=\"",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
