//! Which scenarios run, how often, and in what order: every fan-out configuration runs against
//! the baseline and wspubsub alternately (and, in `secure`, against wspubsub's variants with
//! TLS and token auth), run after run, so that their figures come from the same minutes of this
//! shared machine; the table shows medians.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::ServerKind;
use crate::access::{Credentials, Security};
use crate::load::{self, LoadSpec};
use crate::many::{self, ManySpec};
use crate::mode::Mode;
use crate::patterns;
use crate::process::ServerProcess;
use crate::replay::{self, ReplaySpec};
use crate::report::{self, FanoutRow, Figures, Report, VersusRow};
use crate::{burst, churn, cluster, idle, pair, secure, versus};

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// 1 publisher -> N subscribers on one topic, with the baseline side by side.
    Fanout,
    /// One message at a time: 1 publisher -> N subscribers with a window of 1 (each message
    /// sent once every subscriber has the one before), with the baseline side by side: CPU per
    /// delivery and latency (not run unless asked for).
    Latency,
    /// Many small topics (1000 x 5 subscribers, a publisher each), saturated and at a trickle
    /// (one message per topic every 100 ms), with the baseline side by side, and the ratio to
    /// single-topic fan-out.
    Many,
    /// The load test (5 publishers x 5 subscribers, the default data set) against wspubsub
    /// and against the baseline: time and CPU (not run unless asked for).
    Burst,
    /// Many idle subscribers: memory per connection, time to reach them all.
    Idle,
    /// The fan-out configurations against wspubsub plain, with token auth, with TLS, with both
    /// (not run unless asked for).
    Secure,
    /// The fan-out load with stream-mode (`wspubsub.v2`) subscribers, side by side with raw
    /// (not run unless asked for: about a minute).
    Stream,
    /// The fan-out load with Server-Sent Events subscribers (HTTP, base64 events), side by
    /// side with raw WebSocket subscribers (not run unless asked for).
    Sse,
    /// Subscribers joining with `from=earliest` on a full history, against live delivery.
    Replay,
    /// The fan-out load on three cluster-mode nodes on one nats-server, on one cluster-mode
    /// node and on one plain node, side by side (not run unless asked for; needs
    /// `nats-server`).
    Cluster,
    /// Many clients come, get messages and all leave; the server's memory must come back
    /// near its baseline by itself (not run unless asked for; a real `wspubsub` process).
    Churn,
    /// The fan-out load without and with many idle pattern subscribers (`/x/*`), side by
    /// side: patterns must not slow plain fan-out (not run unless asked for).
    Patterns,
}

/// Options of a benchmark run.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// Scenarios to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values = ["fanout", "replay", "many", "idle"]
    )]
    scenarios: Vec<Scenario>,
    /// Subscriber counts for `fanout`, `secure` and `sse`; the fan-out `many` compares with
    /// uses the first.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 1000])]
    subscribers: Vec<usize>,
    /// Payload sizes (bytes) for `fanout`, `secure`, `stream`, `sse` and `replay`; `latency`
    /// and `many` use the first.
    #[arg(long, value_delimiter = ',', default_values_t = [64, 1024])]
    payloads: Vec<usize>,
    /// Subscriber counts for `stream`.
    #[arg(long, value_delimiter = ',', default_values_t = [100])]
    stream_subscribers: Vec<usize>,
    /// Subscribers (over all nodes) for `cluster`.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 1000])]
    cluster_subscribers: Vec<usize>,
    /// Subscribers joining at once in `replay`.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 10])]
    joiners: Vec<usize>,
    /// Messages the server's history holds (its `--history-messages`), for `replay`.
    #[arg(long, default_value_t = wspubsub_server::DEFAULT_HISTORY_MESSAGES as u64)]
    history: u64,
    /// Measured time of each `replay` block.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    replay_duration: Duration,
    /// Subscribers of the one topic in `latency`.
    #[arg(long, default_value_t = 100)]
    latency_subscribers: usize,
    /// Topics for `many`, each with one publisher.
    #[arg(long, default_value_t = 1000)]
    topics: usize,
    /// Subscribers of each topic in `many`.
    #[arg(long, default_value_t = 5)]
    topic_subscribers: usize,
    /// Messages each publisher of saturated `many` may have in flight.
    #[arg(long, default_value_t = 8)]
    many_window: usize,
    /// Time between two messages of one topic in the trickle of `many`.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    trickle_every: Duration,
    /// Publishers of the `burst` load test, each sending the whole data set.
    #[arg(long, default_value_t = 5)]
    burst_publishers: usize,
    /// Subscribers of the `burst` load test, each receiving everything.
    #[arg(long, default_value_t = 5)]
    burst_subscribers: usize,
    /// Data set of `burst` (a `generate-test-data` file); default: the default data set,
    /// generated in memory, cut to `--burst-messages`.
    #[arg(long)]
    burst_data: Option<PathBuf>,
    /// Messages of the generated `burst` data set (100: the default `testdata/test.dat`).
    #[arg(long, default_value_t = 100)]
    burst_messages: usize,
    /// Connection counts for `idle`.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000, 50_000])]
    idle: Vec<usize>,
    /// Idle pattern subscribers held during `patterns`' second variant.
    #[arg(long, default_value_t = 10_000)]
    idle_patterns: usize,
    /// Clients that come and go in `churn`.
    #[arg(long, default_value_t = 10_000)]
    churn: usize,
    /// The `wspubsub` binary `churn` runs (default: the one beside this bench binary).
    #[arg(long)]
    wspubsub: Option<PathBuf>,
    /// Messages each publisher may have in flight (`fanout`, `secure`, `stream`, `sse`,
    /// `cluster`, and the fan-out `many` compares with).
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Measured time of each run.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Warm-up before each measurement.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Runs of each configuration; the table shows medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Tiny, quick configurations that check correctness only (for CI).
    #[arg(long)]
    smoke: bool,
    /// Test the server at this URL (`ws://host:port`) instead of starting one; the baseline
    /// still runs here for the ratios.
    #[arg(long)]
    url: Option<String>,
    /// Process id of the server at `--url`, for its CPU time and memory from /proc.
    #[arg(long, requires = "url")]
    server_pid: Option<i32>,
}

impl RunArgs {
    /// The server to measure for `kind`: the one at `--url` for wspubsub if given, else a
    /// fresh child process.
    fn server(&self, kind: ServerKind) -> anyhow::Result<ServerProcess> {
        match (&self.url, kind) {
            (Some(url), ServerKind::Wspubsub) => ServerProcess::external(url, self.server_pid),
            _ => ServerProcess::spawn(kind, &Security::default()),
        }
    }
}

impl RunArgs {
    /// The smoke configuration: every scenario, tiny, once (`secure` with the first payload
    /// only, since it runs four servers per configuration).
    fn smoke(mut self) -> Self {
        self.subscribers = vec![10];
        self.stream_subscribers = vec![10];
        self.cluster_subscribers = vec![10];
        self.joiners = vec![3];
        self.replay_duration = Duration::from_millis(200);
        self.latency_subscribers = 10;
        self.topics = 20;
        self.burst_messages = 10;
        self.idle = vec![200];
        self.churn = 1_000;
        self.idle_patterns = 200;
        self.duration = Duration::from_millis(300);
        self.warmup = Duration::from_millis(100);
        self.runs = 1;
        self
    }
}

/// Runs the scenarios, prints the table, writes the JSON; fails on any correctness error.
pub(crate) async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let args = if args.smoke { args.smoke() } else { args };
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    anyhow::ensure!(
        args.payloads.iter().all(|&p| p >= load::HEADER),
        "payloads must be at least {} bytes",
        load::HEADER
    );
    anyhow::ensure!(
        args.url.is_none() || !args.scenarios.contains(&Scenario::Secure),
        "the secure scenario starts its own servers (with and without TLS and auth); \
         it cannot run against --url"
    );
    anyhow::ensure!(
        args.url.is_none() || !args.scenarios.contains(&Scenario::Cluster),
        "the cluster scenario starts its own nodes and nats-server; it cannot run against --url"
    );
    let mut report = Report {
        machine: machine(),
        ..Report::default()
    };
    println!("machine: {}", report.machine);
    if args.scenarios.contains(&Scenario::Fanout) {
        for &subscribers in &args.subscribers {
            for &payload in &args.payloads {
                let row = fanout(&args, subscribers, payload).await?;
                println!("{}", report::fanout_lines(&row));
                report.fanout.push(row);
            }
        }
    }
    if args.scenarios.contains(&Scenario::Secure) {
        // One certificate and secret for the whole scenario; their files go with `credentials`.
        let credentials = Credentials::create()?;
        let payloads = if args.smoke { 1 } else { args.payloads.len() };
        for &subscribers in &args.subscribers {
            for &payload in args.payloads.iter().take(payloads) {
                let spec = spec(&args, 1, subscribers, payload);
                let row = secure::configuration(&credentials, &spec, args.runs).await?;
                println!("{}", report::secure_lines(&row));
                report.secure.push(row);
            }
        }
    }
    if args.scenarios.contains(&Scenario::Stream) {
        report.stream = versus_rows(&args, &args.stream_subscribers, Mode::Stream).await?;
    }
    if args.scenarios.contains(&Scenario::Sse) {
        report.sse = versus_rows(&args, &args.subscribers, Mode::Sse).await?;
    }
    if args.scenarios.contains(&Scenario::Replay) {
        anyhow::ensure!(args.history >= 1, "--history must be at least 1");
        for &joiners in &args.joiners {
            for &payload in &args.payloads {
                let spec = ReplaySpec {
                    payload,
                    joiners,
                    history: args.history,
                    duration: args.replay_duration,
                };
                let server = || args.server(ServerKind::Wspubsub);
                let row = replay::configuration(server, &spec, args.runs).await?;
                println!("{}", report::replay_lines(&row));
                report.replay.push(row);
            }
        }
    }
    if args.scenarios.contains(&Scenario::Cluster) {
        for &subscribers in &args.cluster_subscribers {
            for &payload in &args.payloads {
                let spec = spec(&args, 1, subscribers, payload);
                let row = cluster::configuration(&spec, args.runs).await?;
                println!("{}", report::cluster_lines(&row));
                report.cluster.push(row);
            }
        }
    }
    if args.scenarios.contains(&Scenario::Latency) {
        let payload = args.payloads.first().copied().unwrap_or(64);
        let spec = LoadSpec {
            window: 1,
            ..spec(&args, 1, args.latency_subscribers, payload)
        };
        let row =
            pair::measure(|kind| args.server(kind), "one-at-a-time", &spec, args.runs).await?;
        println!("{}", pair::line("latency", &row));
        report.latency.push(row);
    }
    if args.scenarios.contains(&Scenario::Many) {
        let spec = many_spec(&args);
        let saturated = &spec.saturated;
        idle::raise_file_limit(saturated.topics * (saturated.subscribers_per_topic + 1))?;
        let row = many::configuration(|kind| args.server(kind), &spec).await?;
        println!("{}", many::lines(&row));
        report.many.push(row);
    }
    if args.scenarios.contains(&Scenario::Burst) {
        let data = burst::data_set(args.burst_data.as_deref(), args.burst_messages)?;
        let clients = (args.burst_publishers, args.burst_subscribers);
        let row = burst::configuration(|kind| args.server(kind), &data, clients, args.runs).await?;
        println!("{}", burst::lines(&row));
        report.burst.push(row);
    }
    if args.scenarios.contains(&Scenario::Idle) {
        let limit = idle::raise_file_limit(args.idle.iter().copied().max().unwrap_or(0))?;
        for &connections in &args.idle {
            let unknown_memory = (args.url.is_some() && args.server_pid.is_none())
                .then(|| "the memory of a server at --url needs its --server-pid".to_owned());
            let measured = match unknown_memory.or_else(|| idle::unreachable(connections, limit)) {
                Some(why) => idle::IdleMeasurement::skipped(connections, why),
                None => idle::run(&args.server(ServerKind::Wspubsub)?, connections).await?,
            };
            match &measured.skipped {
                Some(why) => println!("idle   N={connections:<6} | skipped: {why}"),
                None => println!(
                    "idle   N={:<6} | {:.0} bytes of server memory per connection | one message to all in {:.1} ms",
                    measured.connections, measured.rss_per_connection, measured.deliver_all_ms
                ),
            }
            report.idle.push(measured);
        }
    }
    if args.scenarios.contains(&Scenario::Patterns) {
        idle::raise_file_limit(args.idle_patterns)?;
        for &subscribers in &args.subscribers {
            for &payload in &args.payloads {
                let spec = spec(&args, 1, subscribers, payload);
                let server = || args.server(ServerKind::Wspubsub);
                let row =
                    patterns::configuration(server, &spec, args.runs, args.idle_patterns).await?;
                println!("{}", patterns::lines(&row));
                report.patterns.push(row);
            }
        }
    }
    if args.scenarios.contains(&Scenario::Churn) {
        let measured = churn_run(&args).await?;
        println!("{}", report::churn_line(&measured));
        report.churn.push(measured);
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("write {}", path.display()))?;
    }
    let errors = report.errors();
    for error in &errors {
        println!("FAIL {error}");
    }
    let skipped = report.idle.iter().filter(|r| r.skipped.is_some()).count();
    let checks = report.fanout.len()
        + report.latency.len()
        + report.burst.len()
        + report.secure.len()
        + report.stream.len()
        + report.sse.len()
        + report.replay.len()
        + report.cluster.len()
        + report.many.len()
        + report.idle.len()
        + report.churn.len()
        - skipped;
    let failed = count_failed(&report);
    println!(
        "bench: {} passed, {failed} failed, {skipped} skipped",
        checks - failed
    );
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// How many configurations found a correctness error.
fn count_failed(report: &Report) -> usize {
    report
        .fanout
        .iter()
        .filter(|r| !r.errors.is_empty())
        .count()
        + report
            .latency
            .iter()
            .filter(|r| !r.errors.is_empty())
            .count()
        + report.burst.iter().filter(|r| !r.errors.is_empty()).count()
        + report
            .secure
            .iter()
            .filter(|r| !r.errors.is_empty())
            .count()
        + report
            .stream
            .iter()
            .chain(&report.sse)
            .filter(|r| !r.errors.is_empty())
            .count()
        + report
            .replay
            .iter()
            .filter(|r| !r.errors.is_empty())
            .count()
        + report
            .cluster
            .iter()
            .filter(|r| !r.errors.is_empty())
            .count()
        + report
            .many
            .iter()
            .filter(|r| !r.errors().is_empty())
            .count()
        + report.idle.iter().filter(|r| !r.errors.is_empty()).count()
        + report.churn.iter().filter(|r| !r.errors.is_empty()).count()
}

/// The churn scenario, once: against the server at `--url` (whose `--server-pid` it needs),
/// else against a `wspubsub` process of its own.
async fn churn_run(args: &RunArgs) -> anyhow::Result<churn::ChurnMeasurement> {
    idle::raise_file_limit(args.churn + churn::TOPICS)?;
    let server = match &args.url {
        Some(url) => {
            anyhow::ensure!(
                args.server_pid.is_some(),
                "the churn scenario reads the memory of the server at --url: give --server-pid"
            );
            ServerProcess::external(url, args.server_pid)?
        }
        None => {
            let exe = match &args.wspubsub {
                Some(path) => path.clone(),
                None => std::env::current_exe()
                    .context("path of the bench binary")?
                    .with_file_name("wspubsub"),
            };
            ServerProcess::spawn_binary(&exe)?
        }
    };
    churn::run(&server, args.churn).await
}

/// Measures each of `variants` `runs` times, the variants taking turns ([`turns`]), each
/// time with `measure` (on fresh servers); returns each variant's samples (`sample` of each
/// measurement), in the order of `variants`, and every correctness error prefixed with its
/// variant's `name`.
pub(crate) async fn alternate<V: Copy, S>(
    variants: &[V],
    runs: usize,
    name: impl Fn(V) -> &'static str,
    mut measure: impl AsyncFnMut(V) -> anyhow::Result<load::Measurement>,
    sample: impl Fn(&load::Measurement) -> S,
) -> anyhow::Result<(Vec<Vec<S>>, Vec<String>)> {
    let mut samples: Vec<Vec<S>> = variants.iter().map(|_| Vec::new()).collect();
    let mut errors = Vec::new();
    for index in turns(runs, variants.len()) {
        let variant = variants[index];
        let measurement = measure(variant).await?;
        errors.extend(
            measurement
                .errors
                .iter()
                .map(|e| format!("{}: {e}", name(variant))),
        );
        samples[index].push(sample(&measurement));
    }
    Ok((samples, errors))
}

/// The order in which `variants` variants run, `runs` times each: run after run, each run
/// starting with the next variant, so that none always runs first (on a cold machine) or
/// last.
pub(crate) fn turns(runs: usize, variants: usize) -> impl Iterator<Item = usize> {
    (0..runs).flat_map(move |run| (0..variants).map(move |turn| (run + turn) % variants))
}

fn spec(args: &RunArgs, topics: usize, subscribers_per_topic: usize, payload: usize) -> LoadSpec {
    LoadSpec {
        topics,
        subscribers_per_topic,
        payload,
        window: args.window,
        warmup: args.warmup,
        duration: args.duration,
        rate: None,
        mode: Mode::Raw,
    }
}

/// The `stream` or `sse` scenario: each of `subscribers` with each payload, raw and `mode`
/// subscribers alternately ([`versus::configuration`]), each row printed as it is measured.
async fn versus_rows(
    args: &RunArgs,
    subscribers: &[usize],
    mode: Mode,
) -> anyhow::Result<Vec<VersusRow>> {
    let mut rows = Vec::new();
    for &subscribers in subscribers {
        for &payload in &args.payloads {
            let spec = spec(args, 1, subscribers, payload);
            let server = || args.server(ServerKind::Wspubsub);
            let row = versus::configuration(server, &spec, args.runs, mode).await?;
            println!("{}", report::versus_lines(&row));
            rows.push(row);
        }
    }
    Ok(rows)
}

/// One fan-out configuration: baseline and wspubsub alternately, `runs` times each.
async fn fanout(args: &RunArgs, subscribers: usize, payload: usize) -> anyhow::Result<FanoutRow> {
    let saturated = spec(args, 1, subscribers, payload);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut half, mut baseline_half) = (Vec::new(), Vec::new());
    let mut errors = Vec::new();
    for _ in 0..args.runs {
        let baseline = measure(args, ServerKind::Baseline, &saturated, &mut errors).await?;
        theirs.push(Figures::of(&baseline, payload));
        let server = args.server(ServerKind::Wspubsub)?;
        let measured = load::run(&server, &saturated).await?;
        errors.extend(measured.errors.iter().cloned());
        let figures = Figures::of(&measured, payload);
        ours.push(figures);
        drop(server);
        // Latency at half wspubsub's saturated rate, on fresh servers, both kinds.
        let paced = LoadSpec {
            rate: Some((figures.published_per_s / 2.0).max(1.0)),
            ..saturated.clone()
        };
        let slow = measure(args, ServerKind::Wspubsub, &paced, &mut errors).await?;
        half.push(Figures::of(&slow, payload));
        let slow = measure(args, ServerKind::Baseline, &paced, &mut errors).await?;
        baseline_half.push(Figures::of(&slow, payload));
    }
    let (wspubsub, baseline) = (Figures::median(&ours), Figures::median(&theirs));
    Ok(FanoutRow {
        subscribers,
        payload,
        runs: args.runs,
        rate_ratio: wspubsub.delivered_per_s / baseline.delivered_per_s.max(f64::EPSILON),
        cpu_ratio: wspubsub.cpu_s_per_million / baseline.cpu_s_per_million.max(f64::EPSILON),
        half_rate_latency: Figures::median(&half).latency,
        baseline_half_rate_latency: Figures::median(&baseline_half).latency,
        wspubsub,
        baseline,
        errors,
    })
}

/// What `many` runs: `--topics` x `--topic-subscribers` saturated with `--many-window`, the
/// same at one message per topic every `--trickle-every`, and the single-topic fan-out to the
/// first of `--subscribers` with `--window`; all with the first of `--payloads`.
fn many_spec(args: &RunArgs) -> ManySpec {
    let payload = args.payloads.first().copied().unwrap_or(64);
    let fanout_subscribers = args.subscribers.first().copied().unwrap_or(100);
    ManySpec {
        saturated: LoadSpec {
            window: args.many_window,
            ..spec(args, args.topics, args.topic_subscribers, payload)
        },
        trickle_every: args.trickle_every,
        fanout: spec(args, 1, fanout_subscribers, payload),
        runs: args.runs,
    }
}

/// Runs `spec` once against a fresh server of `kind`, collecting its errors.
async fn measure(
    args: &RunArgs,
    kind: ServerKind,
    spec: &LoadSpec,
    errors: &mut Vec<String>,
) -> anyhow::Result<load::Measurement> {
    let server = args.server(kind)?;
    let measured = load::run(&server, spec).await?;
    errors.extend(measured.errors.iter().map(|e| format!("{kind:?}: {e}")));
    Ok(measured)
}

/// A one-line description of this machine.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!(
        "{cores} cores, {cpu}, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_run_every_variant_once_per_run_each_run_starting_with_the_next() {
        let order: Vec<usize> = turns(3, 3).collect();
        assert_eq!(order, [0, 1, 2, 1, 2, 0, 2, 0, 1]);
        assert_eq!(turns(0, 4).count(), 0);
    }

    #[tokio::test]
    async fn alternate_keeps_each_variants_runs_and_labels_its_errors() -> anyhow::Result<()> {
        let mut order = Vec::new();
        let measure = async |variant: usize| {
            order.push(variant);
            Ok(load::Measurement {
                delivered: variant as u64,
                published: 0,
                seconds: 1.0,
                server_cpu: 0.0,
                broker_cpu: 0.0,
                latency: load::histogram(),
                errors: if variant == 1 {
                    vec!["lost one".into()]
                } else {
                    Vec::new()
                },
                connect_seconds: 0.0,
                connect_server_cpu: 0.0,
            })
        };
        let name = |variant: usize| ["a", "b"][variant];
        let delivered = |m: &load::Measurement| m.delivered;
        let (samples, errors) = alternate(&[0, 1], 2, name, measure, delivered).await?;
        assert_eq!(samples, [[0, 0], [1, 1]]);
        assert_eq!(errors, ["b: lost one", "b: lost one"]);
        assert_eq!(order, [0, 1, 1, 0]);
        Ok(())
    }
}
