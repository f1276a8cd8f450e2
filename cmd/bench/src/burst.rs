//! The `burst` scenario: the hash-verifying load test (`loadtest`: P publishers each send the
//! whole data set to one topic as fast as they can, S subscribers must each receive all of it,
//! proven by SHA-256, in one order) against the baseline broadcaster and against wspubsub,
//! taking turns run after run, each run on a fresh server: the time from the first publish to
//! the last subscriber's last message, and the server's CPU over the whole run. With the
//! default data set (messages of 47 KB on average) the run is bound by copying bytes; the
//! baseline, which copies and does nothing else, shows where that bound lies.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use loadtest::{LoadTest, Progress};
use serde::Serialize;
use wspubsub_testdata::{DataSet, GenerateSpec};

use crate::ServerKind;
use crate::pair::ratio;
use crate::process::ServerProcess;
use crate::report::median;
use crate::scenarios::turns;

/// Bound on one load test, connections to verdicts.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The data set of a burst: the file at `path`, or else the default data set (the bytes
/// `generate-test-data` writes to `testdata/test.dat` with its default flags) cut to its first
/// `count` messages.
pub(crate) fn data_set(path: Option<&Path>, count: usize) -> anyhow::Result<DataSet> {
    match path {
        Some(path) => {
            DataSet::load(path).with_context(|| format!("read the data set {}", path.display()))
        }
        None => Ok(DataSet::generate(GenerateSpec {
            count,
            ..GenerateSpec::default()
        })),
    }
}

/// One server's figures over its runs (medians).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct BurstFigures {
    /// From the first publish to the last subscriber's last message, in seconds.
    pub(crate) seconds: f64,
    /// Payload megabytes (10^6) delivered per second, over all subscribers.
    pub(crate) delivered_mb_per_s: f64,
    /// Server CPU seconds over the whole run (connections included).
    pub(crate) server_cpu_s: f64,
}

impl BurstFigures {
    /// The medians of `runs`.
    fn median(runs: &[BurstFigures]) -> BurstFigures {
        let of = |field: fn(&BurstFigures) -> f64| median(runs.iter().map(field).collect());
        BurstFigures {
            seconds: of(|f| f.seconds),
            delivered_mb_per_s: of(|f| f.delivered_mb_per_s),
            server_cpu_s: of(|f| f.server_cpu_s),
        }
    }
}

/// The `burst` scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BurstRow {
    /// Publishers, each sending the whole data set.
    pub(crate) publishers: usize,
    /// Subscribers, each receiving everything.
    pub(crate) subscribers: usize,
    /// Messages in the data set.
    pub(crate) messages: usize,
    /// Bytes in the data set.
    pub(crate) bytes: u64,
    /// Runs of each server.
    pub(crate) runs: usize,
    /// The baseline broadcaster's figures (medians over its passed runs).
    pub(crate) baseline: BurstFigures,
    /// wspubsub's figures (medians over its passed runs).
    pub(crate) wspubsub: BurstFigures,
    /// wspubsub's time over the baseline's.
    pub(crate) time_ratio: f64,
    /// wspubsub's server CPU over the baseline's.
    pub(crate) cpu_ratio: f64,
    /// Failed runs, with the server they happened on.
    pub(crate) errors: Vec<String>,
}

/// Runs the load test (`publishers` x `subscribers` on `data`) `runs` times against each of
/// the baseline and wspubsub, each run on a fresh server from `server`.
pub(crate) async fn configuration(
    server: impl Fn(ServerKind) -> anyhow::Result<ServerProcess>,
    data: &DataSet,
    (publishers, subscribers): (usize, usize),
    runs: usize,
) -> anyhow::Result<BurstRow> {
    let kinds = [ServerKind::Baseline, ServerKind::Wspubsub];
    let test = LoadTest {
        publishers,
        subscribers,
        timeout: TIMEOUT,
        ..LoadTest::default()
    };
    let mut samples = [Vec::new(), Vec::new()];
    let mut errors = Vec::new();
    for index in turns(runs, kinds.len()) {
        let kind = kinds[index];
        match once(&server(kind)?, data, &test).await {
            Ok(figures) => samples[index].push(figures),
            Err(error) => errors.push(format!("{}: {error:#}", kind.name())),
        }
    }
    let [baseline, wspubsub] = samples.map(|runs| BurstFigures::median(&runs));
    Ok(BurstRow {
        publishers,
        subscribers,
        messages: data.len(),
        bytes: data.total_bytes(),
        runs,
        time_ratio: ratio(wspubsub.seconds, baseline.seconds),
        cpu_ratio: ratio(wspubsub.server_cpu_s, baseline.server_cpu_s),
        baseline,
        wspubsub,
        errors,
    })
}

/// One load test against `server`: its figures if every subscriber passed.
async fn once(
    server: &ServerProcess,
    data: &DataSet,
    test: &LoadTest,
) -> anyhow::Result<BurstFigures> {
    let url = format!("ws://{}", server.addr());
    let cpu_0 = server.cpu_seconds()?;
    let report = loadtest::run(&[url], data, test, &Progress::default()).await?;
    let server_cpu_s = server.cpu_seconds()? - cpu_0;
    if let Some(failed) = report.verdicts.iter().find(|verdict| !verdict.passed) {
        anyhow::bail!(
            "subscriber {} got {} of {} messages{}",
            failed.subscriber,
            failed.received,
            report.expected_messages,
            failed
                .ended_early
                .as_ref()
                .map_or_else(String::new, |why| format!(" ({why})"))
        );
    }
    anyhow::ensure!(report.passed(), "no subscriber was judged");
    let seconds = report.elapsed.as_secs_f64();
    let delivered = report.message_bytes as f64 * test.subscribers as f64;
    Ok(BurstFigures {
        seconds,
        delivered_mb_per_s: delivered / seconds.max(f64::EPSILON) / 1e6,
        server_cpu_s,
    })
}

/// The row as table lines.
pub(crate) fn lines(row: &BurstRow) -> String {
    let (b, w) = (&row.baseline, &row.wspubsub);
    format!(
        "burst  {}x{} {} messages ({:.1} MB) | baseline {:.3} s {:.0} MB/s {:.3} CPU-s | \
         wspubsub {:.3} s {:.0} MB/s {:.3} CPU-s | wspubsub/baseline: time {:.2}x, CPU {:.2}x",
        row.publishers,
        row.subscribers,
        row.messages,
        row.bytes as f64 / 1e6,
        b.seconds,
        b.delivered_mb_per_s,
        b.server_cpu_s,
        w.seconds,
        w.delivered_mb_per_s,
        w.server_cpu_s,
        row.time_ratio,
        row.cpu_ratio,
    )
}

#[cfg(test)]
mod tests {
    use wspubsub_server::Options;

    use super::*;
    use crate::process::{in_process, in_process_baseline};

    #[test]
    fn the_default_data_set_is_generate_test_datas_default_file() -> anyhow::Result<()> {
        let data = data_set(None, 100)?;
        assert_eq!(data.len(), 100);
        assert_eq!(
            data.total_bytes(),
            4_700_051,
            "testdata/README.md's default file"
        );
        assert_eq!(data_set(None, 3)?.len(), 3);
        Ok(())
    }

    #[tokio::test]
    async fn a_burst_through_each_server_delivers_everything_and_times_it() -> anyhow::Result<()> {
        let (server, handle) = in_process(Options::default()).await?;
        let baseline = in_process_baseline().await?;
        let data = data_set(None, 5)?;
        let servers = |kind| match kind {
            ServerKind::Wspubsub => {
                ServerProcess::external(&format!("ws://{}", server.addr()), None)
            }
            ServerKind::Baseline => ServerProcess::external(&baseline, None),
        };
        let row = configuration(servers, &data, (2, 2), 1).await?;
        assert_eq!(row.errors, Vec::<String>::new());
        assert!(row.wspubsub.seconds > 0.0 && row.baseline.seconds > 0.0);
        assert!(row.wspubsub.delivered_mb_per_s > 0.0);
        assert_eq!((row.messages, row.bytes), (5, data.total_bytes()));
        handle.shutdown();
        Ok(())
    }
}
