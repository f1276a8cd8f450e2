//! Figures: what a measurement means per second and per million deliveries, medians over
//! runs, and the table and JSON the benchmark prints.

use serde::Serialize;

use crate::access::Variant;
use crate::burst::BurstRow;
use crate::cluster::Layout;
use crate::load::Measurement;
use crate::many::ManyRow;
use crate::mode::Mode;
use crate::pair::PairRow;
use crate::replay::Block;

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) p999_us: f64,
}

/// The figures of one measured load.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Figures {
    /// Deliveries (message x subscriber) per second.
    pub(crate) delivered_per_s: f64,
    /// Delivered payload megabytes (10^6) per second.
    pub(crate) delivered_mb_per_s: f64,
    /// Messages published per second.
    pub(crate) published_per_s: f64,
    /// Server CPU seconds per million deliveries.
    pub(crate) cpu_s_per_million: f64,
    /// Publish-to-receive latency.
    pub(crate) latency: Latency,
}

impl Figures {
    /// The figures of `measurement` with messages of `payload` bytes; its latencies are NaN
    /// when none was recorded (a run that did not drain), never a made-up 0.
    pub(crate) fn of(measurement: &Measurement, payload: usize) -> Figures {
        let per_second = |count: u64| count as f64 / measurement.seconds.max(f64::EPSILON);
        let latency = &measurement.latency;
        let quantile = |q| match latency.is_empty() {
            true => f64::NAN,
            false => latency.value_at_quantile(q) as f64 / 1e3,
        };
        Figures {
            delivered_per_s: per_second(measurement.delivered),
            delivered_mb_per_s: per_second(measurement.delivered) * payload as f64 / 1e6,
            published_per_s: per_second(measurement.published),
            cpu_s_per_million: measurement.server_cpu / (measurement.delivered.max(1) as f64 / 1e6),
            latency: Latency {
                p50_us: quantile(0.5),
                p99_us: quantile(0.99),
                p999_us: quantile(0.999),
            },
        }
    }

    /// The median of each figure over `runs` that have it (NaN if none has).
    pub(crate) fn median(runs: &[Figures]) -> Figures {
        let of = |field: fn(&Figures) -> f64| {
            let known: Vec<f64> = runs.iter().map(field).filter(|v| !v.is_nan()).collect();
            if known.is_empty() {
                f64::NAN
            } else {
                median(known)
            }
        };
        Figures {
            delivered_per_s: of(|f| f.delivered_per_s),
            delivered_mb_per_s: of(|f| f.delivered_mb_per_s),
            published_per_s: of(|f| f.published_per_s),
            cpu_s_per_million: of(|f| f.cpu_s_per_million),
            latency: Latency {
                p50_us: of(|f| f.latency.p50_us),
                p99_us: of(|f| f.latency.p99_us),
                p999_us: of(|f| f.latency.p999_us),
            },
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count; 0 for none).
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

/// One fan-out configuration, against wspubsub and the baseline, side by side.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FanoutRow {
    pub(crate) subscribers: usize,
    pub(crate) payload: usize,
    pub(crate) runs: usize,
    pub(crate) wspubsub: Figures,
    pub(crate) baseline: Figures,
    /// wspubsub's delivered rate over the baseline's.
    pub(crate) rate_ratio: f64,
    /// wspubsub's CPU per million deliveries over the baseline's.
    pub(crate) cpu_ratio: f64,
    /// wspubsub's latency with the publisher held at half its saturated rate.
    pub(crate) half_rate_latency: Latency,
    /// The baseline's latency at the same rate.
    pub(crate) baseline_half_rate_latency: Latency,
    pub(crate) errors: Vec<String>,
}

/// One variant of a `secure` configuration: medians over its runs, and ratios to plain.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SecureFigures {
    /// Which variant: plain, auth, tls or tls+auth.
    pub(crate) variant: Variant,
    /// The load's figures (medians).
    pub(crate) wspubsub: Figures,
    /// Time to connect all subscribers, one after another, in milliseconds.
    pub(crate) connect_ms: f64,
    /// Server CPU meanwhile, in milliseconds.
    pub(crate) connect_server_cpu_ms: f64,
    /// This variant's delivered rate over plain's.
    pub(crate) rate_ratio: f64,
    /// This variant's CPU per million deliveries over plain's.
    pub(crate) cpu_ratio: f64,
    /// This variant's connect time over plain's.
    pub(crate) connect_ratio: f64,
}

/// One fan-out configuration against wspubsub plain, with token auth, with TLS, with both.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SecureRow {
    /// Subscribers of the one topic.
    pub(crate) subscribers: usize,
    /// Bytes per message.
    pub(crate) payload: usize,
    /// Runs of each variant.
    pub(crate) runs: usize,
    /// Each variant's figures, plain first.
    pub(crate) variants: Vec<SecureFigures>,
    /// Correctness failures, with the variant they happened in.
    pub(crate) errors: Vec<String>,
}

/// One fan-out configuration with raw subscribers and with subscribers of another mode
/// (stream mode, or SSE), side by side.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct VersusRow {
    /// The mode compared with raw.
    pub(crate) mode: Mode,
    /// Subscribers of the one topic.
    pub(crate) subscribers: usize,
    /// Bytes per message.
    pub(crate) payload: usize,
    /// Runs of each mode.
    pub(crate) runs: usize,
    /// Raw subscribers' figures (medians).
    pub(crate) raw: Figures,
    /// The compared mode's figures (medians).
    pub(crate) compared: Figures,
    /// The compared mode's delivered rate over raw's.
    pub(crate) rate_ratio: f64,
    /// The compared mode's CPU per million deliveries over raw's.
    pub(crate) cpu_ratio: f64,
    /// Correctness failures, with the mode they happened in.
    pub(crate) errors: Vec<String>,
}

/// One layout of a `cluster` configuration: medians over its runs, and ratios to plain.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClusterFigures {
    /// Which layout: plain, cluster-1 or cluster-3.
    pub(crate) layout: Layout,
    /// Its wspubsub nodes.
    pub(crate) nodes: usize,
    /// The load's figures (medians); CPU is every node's plus nats-server's.
    pub(crate) wspubsub: Figures,
    /// nats-server's share of the CPU, 0 to 1 (median).
    pub(crate) broker_share: f64,
    /// Latency with the publisher held at the row's `paced_rate` (medians).
    pub(crate) paced_latency: Latency,
    /// This layout's delivered rate over plain's.
    pub(crate) rate_ratio: f64,
    /// This layout's CPU per million deliveries over plain's.
    pub(crate) cpu_ratio: f64,
}

/// One fan-out configuration on one plain node, one cluster-mode node and three cluster-mode
/// nodes, side by side.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClusterRow {
    /// Subscribers of the one topic (over all nodes).
    pub(crate) subscribers: usize,
    /// Bytes per message.
    pub(crate) payload: usize,
    /// Runs of each layout.
    pub(crate) runs: usize,
    /// The publisher's rate in the paced runs (messages/s): half plain's saturated rate.
    pub(crate) paced_rate: f64,
    /// Each layout's figures, plain first.
    pub(crate) layouts: Vec<ClusterFigures>,
    /// Correctness failures, with the layout they happened in.
    pub(crate) errors: Vec<String>,
}

/// One block of a `replay` configuration: medians over its runs, and ratios to live.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReplayFigures {
    /// Which block: live, replay raw or replay stream.
    pub(crate) block: Block,
    /// Time for all subscribers of a round to get every message, in milliseconds.
    pub(crate) round_ms: f64,
    /// Server CPU per delivered message, in microseconds.
    pub(crate) cpu_us_per_message: f64,
    /// Messages delivered per second, joins and leaves included.
    pub(crate) messages_per_s: f64,
    /// This block's round time over live's.
    pub(crate) time_ratio: f64,
    /// This block's CPU per message over live's.
    pub(crate) cpu_ratio: f64,
}

/// One `replay` configuration: subscribers joining on a full history against live delivery.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReplayRow {
    /// Bytes per message.
    pub(crate) payload: usize,
    /// Subscribers joining at once.
    pub(crate) joiners: usize,
    /// Messages in history (and per live round).
    pub(crate) history: u64,
    /// Runs of each block.
    pub(crate) runs: usize,
    /// Each block's figures, live first.
    pub(crate) blocks: Vec<ReplayFigures>,
    /// Correctness failures, with the block they happened in.
    pub(crate) errors: Vec<String>,
}

/// Everything one benchmark run found.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Report {
    pub(crate) machine: String,
    pub(crate) fanout: Vec<FanoutRow>,
    /// The `secure` scenario's configurations.
    pub(crate) secure: Vec<SecureRow>,
    /// The `stream` scenario's configurations.
    pub(crate) stream: Vec<VersusRow>,
    /// The `sse` scenario's configurations.
    pub(crate) sse: Vec<VersusRow>,
    /// The `replay` scenario's configurations.
    pub(crate) replay: Vec<ReplayRow>,
    /// The `cluster` scenario's configurations.
    pub(crate) cluster: Vec<ClusterRow>,
    /// The `latency` scenario's configuration (one message at a time).
    pub(crate) latency: Vec<PairRow>,
    /// The `many` scenario's configuration.
    pub(crate) many: Vec<ManyRow>,
    /// The `burst` scenario's load test.
    pub(crate) burst: Vec<BurstRow>,
    pub(crate) idle: Vec<crate::idle::IdleMeasurement>,
    /// The `churn` scenario's run.
    pub(crate) churn: Vec<crate::churn::ChurnMeasurement>,
    /// The `patterns` scenario's configurations.
    pub(crate) patterns: Vec<crate::patterns::PatternsRow>,
}

impl Report {
    /// Every correctness failure, with where it happened.
    pub(crate) fn errors(&self) -> Vec<String> {
        let fanout = self.fanout.iter().flat_map(|row| {
            row.errors
                .iter()
                .map(move |e| format!("fanout N={} {} B: {e}", row.subscribers, row.payload))
        });
        let secure = self.secure.iter().flat_map(|row| {
            row.errors
                .iter()
                .map(move |e| format!("secure N={} {} B: {e}", row.subscribers, row.payload))
        });
        let versus = self.stream.iter().chain(&self.sse).flat_map(|row| {
            row.errors.iter().map(move |e| {
                let mode = row.mode.name();
                format!("{mode} N={} {} B: {e}", row.subscribers, row.payload)
            })
        });
        let replay = self.replay.iter().flat_map(|row| {
            row.errors
                .iter()
                .map(move |e| format!("replay K={} {} B: {e}", row.joiners, row.payload))
        });
        let cluster = self.cluster.iter().flat_map(|row| {
            row.errors
                .iter()
                .map(move |e| format!("cluster N={} {} B: {e}", row.subscribers, row.payload))
        });
        let latency = self.latency.iter().flat_map(|row| {
            row.errors.iter().map(move |e| {
                let (subscribers, payload) = (row.subscribers_per_topic, row.payload);
                format!("latency N={subscribers} {payload} B: {e}")
            })
        });
        let many = self.many.iter().flat_map(|row| {
            row.errors()
                .into_iter()
                .map(move |e| format!("many {}x{}: {e}", row.topics, row.subscribers_per_topic))
        });
        let burst = self.burst.iter().flat_map(|row| {
            row.errors
                .iter()
                .map(move |e| format!("burst {}x{}: {e}", row.publishers, row.subscribers))
        });
        let idle = self.idle.iter().flat_map(|row| {
            row.errors
                .iter()
                .map(move |e| format!("idle {}: {e}", row.connections))
        });
        let churn = self.churn.iter().flat_map(|row| {
            row.errors
                .iter()
                .map(move |e| format!("churn {}: {e}", row.clients))
        });
        let patterns = self.patterns.iter().flat_map(|row| {
            row.errors
                .iter()
                .map(move |e| format!("patterns N={} {} B: {e}", row.subscribers, row.payload))
        });
        fanout
            .chain(secure)
            .chain(versus)
            .chain(replay)
            .chain(cluster)
            .chain(latency)
            .chain(many)
            .chain(burst)
            .chain(idle)
            .chain(churn)
            .chain(patterns)
            .collect()
    }
}

/// A churn run as a table line.
pub(crate) fn churn_line(run: &crate::churn::ChurnMeasurement) -> String {
    use crate::churn::mib;
    let back = match run.return_seconds {
        Some(seconds) => format!("back within the margin after {seconds:.1} s"),
        None => format!(
            "NOT back within the margin in {:?}",
            crate::churn::RETURN_DEADLINE
        ),
    };
    format!(
        "churn  N={:<6} | server RSS baseline {} MiB, peak {} MiB, after {} MiB | {back}",
        run.clients,
        mib(run.baseline_rss),
        mib(run.peak_rss),
        mib(run.after_rss)
    )
}

/// A fan-out row as table lines.
pub(crate) fn fanout_lines(row: &FanoutRow) -> String {
    let w = &row.wspubsub;
    let b = &row.baseline;
    let h = &row.half_rate_latency;
    format!(
        "fanout N={:<5} {:>5} B | wspubsub {:>10.0} deliveries/s {:>7.1} MB/s {:>8.0} pub/s {:>6.3} CPU-s/M | \
         baseline {:>10.0} deliveries/s {:>6.3} CPU-s/M | rate {:>4.0}% of baseline, CPU {:.2}x | \
         latency p50/p99/p99.9 {:.0}/{:.0}/{:.0} us saturated, {:.0}/{:.0}/{:.0} us at half rate \
         (baseline {:.0}/{:.0}/{:.0} us)",
        row.subscribers,
        row.payload,
        w.delivered_per_s,
        w.delivered_mb_per_s,
        w.published_per_s,
        w.cpu_s_per_million,
        b.delivered_per_s,
        b.cpu_s_per_million,
        row.rate_ratio * 100.0,
        row.cpu_ratio,
        w.latency.p50_us,
        w.latency.p99_us,
        w.latency.p999_us,
        h.p50_us,
        h.p99_us,
        h.p999_us,
        row.baseline_half_rate_latency.p50_us,
        row.baseline_half_rate_latency.p99_us,
        row.baseline_half_rate_latency.p999_us,
    )
}

/// A secure row as table lines, one per variant.
pub(crate) fn secure_lines(row: &SecureRow) -> String {
    let lines: Vec<String> = row
        .variants
        .iter()
        .map(|v| {
            let w = &v.wspubsub;
            format!(
                "secure N={:<5} {:>5} B {:<8} | {:>10.0} deliveries/s {:>6.3} CPU-s/M | \
                 rate {:>4.0}% of plain, CPU {:.2}x | connect {} subscribers {:.0} ms ({:.2}x), \
                 server CPU {:.0} ms | latency p50/p99 {:.0}/{:.0} us",
                row.subscribers,
                row.payload,
                v.variant.name(),
                w.delivered_per_s,
                w.cpu_s_per_million,
                v.rate_ratio * 100.0,
                v.cpu_ratio,
                row.subscribers,
                v.connect_ms,
                v.connect_ratio,
                v.connect_server_cpu_ms,
                w.latency.p50_us,
                w.latency.p99_us,
            )
        })
        .collect();
    lines.join("\n")
}

/// A stream or SSE row as a table line.
pub(crate) fn versus_lines(row: &VersusRow) -> String {
    let (r, s) = (&row.raw, &row.compared);
    let mode = row.mode.name();
    format!(
        "{mode:<6} N={:<5} {:>5} B | raw {:>10.0} deliveries/s {:>6.3} CPU-s/M | \
         {mode} {:>10.0} deliveries/s {:>6.3} CPU-s/M | {mode} rate {:>4.0}% of raw, CPU {:.2}x | \
         latency p50/p99 raw {:.0}/{:.0} us, {mode} {:.0}/{:.0} us",
        row.subscribers,
        row.payload,
        r.delivered_per_s,
        r.cpu_s_per_million,
        s.delivered_per_s,
        s.cpu_s_per_million,
        row.rate_ratio * 100.0,
        row.cpu_ratio,
        r.latency.p50_us,
        r.latency.p99_us,
        s.latency.p50_us,
        s.latency.p99_us,
    )
}

/// A cluster row as table lines, one per layout.
pub(crate) fn cluster_lines(row: &ClusterRow) -> String {
    let lines: Vec<String> = row
        .layouts
        .iter()
        .map(|l| {
            let w = &l.wspubsub;
            format!(
                "cluster N={:<5} {:>5} B {:<9} | {:>10.0} deliveries/s {:>6.3} CPU-s/M \
                 ({:>3.0}% nats-server) | rate {:>4.0}% of plain, CPU {:.2}x | \
                 latency p50/p99 {:.0}/{:.0} us saturated, {:.0}/{:.0} us at {:.0} msg/s",
                row.subscribers,
                row.payload,
                l.layout.name(),
                w.delivered_per_s,
                w.cpu_s_per_million,
                l.broker_share * 100.0,
                l.rate_ratio * 100.0,
                l.cpu_ratio,
                w.latency.p50_us,
                w.latency.p99_us,
                l.paced_latency.p50_us,
                l.paced_latency.p99_us,
                row.paced_rate,
            )
        })
        .collect();
    lines.join("\n")
}

/// A replay row as table lines, one per block.
pub(crate) fn replay_lines(row: &ReplayRow) -> String {
    let lines: Vec<String> = row
        .blocks
        .iter()
        .map(|b| {
            format!(
                "replay K={:<3} {:>5} B {:<13} | {} messages to each in {:>7.2} ms ({:.2}x live) | \
                 {:>6.3} us server CPU per message ({:.2}x live) | {:>9.0} messages/s",
                row.joiners,
                row.payload,
                b.block.name(),
                row.history,
                b.round_ms,
                b.time_ratio,
                b.cpu_us_per_message,
                b.cpu_ratio,
                b.messages_per_s,
            )
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }

    #[test]
    fn figures_per_second_and_per_million() {
        let mut latency = crate::load::histogram();
        latency.record(2_000).expect("in range");
        let measurement = Measurement {
            delivered: 2_000_000,
            published: 20_000,
            seconds: 2.0,
            server_cpu: 0.5,
            broker_cpu: 0.0,
            latency,
            errors: Vec::new(),
            connect_seconds: 0.1,
            connect_server_cpu: 0.05,
        };
        let figures = Figures::of(&measurement, 100);
        assert_eq!(figures.delivered_per_s, 1_000_000.0);
        assert_eq!(figures.delivered_mb_per_s, 100.0);
        assert_eq!(figures.published_per_s, 10_000.0);
        assert_eq!(figures.cpu_s_per_million, 0.25);
        assert!((figures.latency.p50_us - 2.0).abs() < 0.01);
        let undrained = Measurement {
            latency: crate::load::histogram(),
            ..measurement
        };
        let undrained = Figures::of(&undrained, 100);
        assert!(undrained.latency.p50_us.is_nan());
        let medians = Figures::median(&[undrained, figures, undrained]);
        assert!((medians.latency.p50_us - 2.0).abs() < 0.01, "the one known");
        assert!(Figures::median(&[undrained]).latency.p99_us.is_nan());
        assert_eq!(
            Figures::median(&[undrained, figures]).cpu_s_per_million,
            0.25
        );
    }
}
