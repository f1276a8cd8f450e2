//! One load side by side against the baseline broadcaster and wspubsub: the two take turns
//! run after run (each run starting with the other), each run on a fresh server, so that
//! their figures come from the same minutes of this shared machine; medians, and wspubsub's
//! CPU per delivery and latency as multiples of the baseline's. The measuring tool of the
//! `latency` scenario and of each load of `many`.

use serde::Serialize;

use crate::ServerKind;
use crate::load::{self, LoadSpec};
use crate::process::ServerProcess;
use crate::report::Figures;
use crate::scenarios::alternate;

/// One load against the baseline and against wspubsub: medians over the runs, and ratios.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PairRow {
    /// What the load is, in a word or two (`window 1`, `saturated`, `trickle`, ...).
    pub(crate) load: &'static str,
    /// Topics, each with one publisher.
    pub(crate) topics: usize,
    /// Subscribers of each topic.
    pub(crate) subscribers_per_topic: usize,
    /// Bytes per message.
    pub(crate) payload: usize,
    /// Messages each publisher may have in flight.
    pub(crate) window: usize,
    /// Each publisher's fixed rate (messages/s), if it holds one.
    pub(crate) rate: Option<f64>,
    /// Runs of each server.
    pub(crate) runs: usize,
    /// The baseline broadcaster's figures (medians).
    pub(crate) baseline: Figures,
    /// wspubsub's figures (medians).
    pub(crate) wspubsub: Figures,
    /// wspubsub's CPU per delivery over the baseline's.
    pub(crate) cpu_ratio: f64,
    /// wspubsub's median latency over the baseline's.
    pub(crate) p50_ratio: f64,
    /// wspubsub's 99th-percentile latency over the baseline's.
    pub(crate) p99_ratio: f64,
    /// Correctness failures, with the server they happened on.
    pub(crate) errors: Vec<String>,
}

impl PairRow {
    /// The row of `load` (`spec`, `runs` runs each) from each server's per-run figures.
    fn of(
        load: &'static str,
        spec: &LoadSpec,
        runs: usize,
        baseline: &[Figures],
        wspubsub: &[Figures],
        errors: Vec<String>,
    ) -> PairRow {
        let (baseline, wspubsub) = (Figures::median(baseline), Figures::median(wspubsub));
        PairRow {
            load,
            topics: spec.topics,
            subscribers_per_topic: spec.subscribers_per_topic,
            payload: spec.payload,
            window: spec.window,
            rate: spec.rate,
            runs,
            cpu_ratio: ratio(wspubsub.cpu_s_per_million, baseline.cpu_s_per_million),
            p50_ratio: ratio(wspubsub.latency.p50_us, baseline.latency.p50_us),
            p99_ratio: ratio(wspubsub.latency.p99_us, baseline.latency.p99_us),
            baseline,
            wspubsub,
            errors,
        }
    }
}

/// `value` over `reference`; NaN when the reference is not above 0 (a CPU time below the
/// 10 ms tick of `/proc`, in a short run), never a made-up multiple.
pub(crate) fn ratio(value: f64, reference: f64) -> f64 {
    if reference > 0.0 {
        value / reference
    } else {
        f64::NAN
    }
}

/// Runs `spec` `runs` times against each of the baseline and wspubsub, each run on a fresh
/// server from `server`, the two taking turns.
pub(crate) async fn measure(
    server: impl Fn(ServerKind) -> anyhow::Result<ServerProcess>,
    load: &'static str,
    spec: &LoadSpec,
    runs: usize,
) -> anyhow::Result<PairRow> {
    let kinds = [ServerKind::Baseline, ServerKind::Wspubsub];
    let measure = async |kind: ServerKind| {
        let server = server(kind)?;
        load::run(&server, spec).await
    };
    let sample = |m: &load::Measurement| Figures::of(m, spec.payload);
    let (samples, errors) = alternate(&kinds, runs, ServerKind::name, measure, sample).await?;
    Ok(PairRow::of(
        load,
        spec,
        runs,
        &samples[0],
        &samples[1],
        errors,
    ))
}

/// A pair row as a table line, under `scenario`'s name.
pub(crate) fn line(scenario: &str, row: &PairRow) -> String {
    let (b, w) = (&row.baseline, &row.wspubsub);
    let rate = row
        .rate
        .map_or_else(|| "saturated".to_owned(), |rate| format!("{rate:.0} msg/s"));
    format!(
        "{scenario:<7} {:<9} {}x{} {} B window {} {rate} | baseline {:>9.0} deliveries/s \
         {:>6.3} CPU-s/M p50/p99 {:.0}/{:.0} us | wspubsub {:>9.0} deliveries/s {:>6.3} CPU-s/M \
         p50/p99 {:.0}/{:.0} us | wspubsub/baseline: CPU {:.2}x, p50 {:.2}x, p99 {:.2}x",
        row.load,
        row.topics,
        row.subscribers_per_topic,
        row.payload,
        row.window,
        b.delivered_per_s,
        b.cpu_s_per_million,
        b.latency.p50_us,
        b.latency.p99_us,
        w.delivered_per_s,
        w.cpu_s_per_million,
        w.latency.p50_us,
        w.latency.p99_us,
        row.cpu_ratio,
        row.p50_ratio,
        row.p99_ratio,
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use wspubsub_server::Options;

    use super::*;
    use crate::mode::Mode;
    use crate::process::{in_process, in_process_baseline};
    use crate::report::Latency;

    fn figures(cpu: f64, p50: f64, p99: f64) -> Figures {
        Figures {
            cpu_s_per_million: cpu,
            latency: Latency {
                p50_us: p50,
                p99_us: p99,
                p999_us: p99,
            },
            ..Figures::default()
        }
    }

    #[test]
    fn the_row_holds_medians_and_wspubsubs_multiples_of_the_baseline() {
        let spec = LoadSpec {
            topics: 1000,
            subscribers_per_topic: 5,
            payload: 64,
            window: 8,
            warmup: Duration::ZERO,
            duration: Duration::ZERO,
            rate: Some(10.0),
            mode: Mode::Raw,
        };
        let baseline = [
            figures(2.0, 100.0, 400.0),
            figures(4.0, 300.0, 900.0),
            figures(3.0, 200.0, 800.0),
        ];
        let wspubsub = [
            figures(9.0, 50.0, 400.0),
            figures(6.0, 150.0, 1600.0),
            figures(1.0, 100.0, 800.0),
        ];
        let row = PairRow::of("trickle", &spec, 3, &baseline, &wspubsub, Vec::new());
        assert_eq!(row.baseline.cpu_s_per_million, 3.0);
        assert_eq!(row.wspubsub.cpu_s_per_million, 6.0);
        assert_eq!(row.cpu_ratio, 2.0);
        assert_eq!(row.p50_ratio, 0.5);
        assert_eq!(row.p99_ratio, 1.0);
        assert_eq!((row.topics, row.subscribers_per_topic), (1000, 5));
        assert!(line("many", &row).contains("CPU 2.00x, p50 0.50x, p99 1.00x"));
        assert!(ratio(1.0, 0.0).is_nan(), "nothing measured is no multiple");
    }

    #[tokio::test]
    async fn both_servers_deliver_each_topic_to_its_own_subscribers_one_at_a_time()
    -> anyhow::Result<()> {
        let (server, handle) = in_process(Options::default()).await?;
        let baseline = in_process_baseline().await?;
        let servers = |kind| match kind {
            ServerKind::Wspubsub => {
                ServerProcess::external(&format!("ws://{}", server.addr()), None)
            }
            ServerKind::Baseline => ServerProcess::external(&baseline, None),
        };
        // A subscriber given another topic's messages would see their numbers out of order.
        let spec = LoadSpec {
            topics: 3,
            subscribers_per_topic: 2,
            payload: 64,
            window: 1,
            warmup: Duration::from_millis(20),
            duration: Duration::from_millis(150),
            rate: None,
            mode: Mode::Raw,
        };
        let row = measure(servers, "window 1", &spec, 1).await?;
        assert_eq!(row.errors, Vec::<String>::new());
        assert!(row.baseline.delivered_per_s > 0.0 && row.wspubsub.delivered_per_s > 0.0);
        assert!(row.wspubsub.latency.p50_us > 0.0);
        handle.shutdown();
        Ok(())
    }
}
