//! `loadtest`: runs the hash-verifying load test against a wspubsub server and exits non-zero
//! unless every subscriber received exactly every message.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use loadtest::{InProcessServer, LoadTest, NodeSet, Progress, in_process_options, parse_base_url};
use wspubsub_testdata::DataSet;

/// Hash-verifying load test: P publishers each send every message of a data set; S
/// subscribers must each receive all P x count messages, proven by SHA-256 over the sorted
/// messages.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version, about)]
struct Args {
    /// Test data file (make one with `generate-test-data`).
    #[arg(long, default_value = "testdata/test.dat")]
    data: PathBuf,
    /// Publishers, each sending the whole data set.
    #[arg(long, default_value_t = 5)]
    publishers: usize,
    /// Subscribers, each of which must receive everything.
    #[arg(long, default_value_t = 5)]
    subscribers: usize,
    /// Base URL of the server to test (`ws://host:port` or `wss://`), or a comma list of
    /// them: the nodes of a cluster, numbered from 1. Without it a server is started
    /// in-process on 127.0.0.1.
    #[arg(long, value_delimiter = ',', value_parser = parse_base_url)]
    url: Vec<String>,
    /// The nodes publishers are spread over, round-robin: 1-based numbers and ranges into
    /// the --url list, comma-separated (`1-2`, `1,3`). Default: all.
    #[arg(long, value_name = "NODES")]
    publisher_nodes: Option<NodeSet>,
    /// The nodes subscribers are spread over, round-robin (as --publisher-nodes).
    /// Default: all.
    #[arg(long, value_name = "NODES")]
    subscriber_nodes: Option<NodeSet>,
    /// Topic (URL path) to use.
    #[arg(long, default_value = "/loadtest")]
    topic: String,
    /// Give up (and fail) after this long.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Break every subscriber's connection this many times (a TCP reset at a random moment);
    /// each must resume from the server's history and still get everything. With more than 0
    /// the subscribers use stream mode, each through its own loopback proxy (ws:// only).
    #[arg(long, default_value_t = 0)]
    disrupt: usize,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    anyhow::ensure!(
        args.publishers >= 1 && args.subscribers >= 1,
        "--publishers and --subscribers must be at least 1"
    );
    anyhow::ensure!(args.topic.starts_with('/'), "--topic must start with '/'");
    if let Err(error) = test_of(&args).placement(&node_urls(&args.url)) {
        // A bad node list is a bad flag: refused as clap refuses one (exit 2).
        Args::command()
            .error(clap::error::ErrorKind::ValueValidation, error)
            .exit();
    }
    let data = DataSet::load(&args.data).with_context(|| {
        format!(
            "cannot read test data {} (generate it with `cargo run --release -p generate-test-data`)",
            args.data.display()
        )
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args, data))
}

/// The load test the flags describe.
fn test_of(args: &Args) -> LoadTest {
    LoadTest {
        publishers: args.publishers,
        subscribers: args.subscribers,
        topic: args.topic.clone(),
        timeout: args.timeout,
        disrupt: args.disrupt,
        publisher_nodes: args.publisher_nodes.clone().unwrap_or_default(),
        subscriber_nodes: args.subscriber_nodes.clone().unwrap_or_default(),
    }
}

/// The nodes' URLs: `--url`'s, or the one in-process server's (whose URL is not known
/// before it starts, but counts as one node).
fn node_urls(urls: &[String]) -> Vec<String> {
    match urls {
        [] => vec!["ws://127.0.0.1 (in-process)".to_owned()],
        urls => urls.to_vec(),
    }
}

async fn run(args: Args, data: DataSet) -> anyhow::Result<ExitCode> {
    let test = test_of(&args);
    let in_process = match args.url.is_empty() {
        false => None,
        true => Some(InProcessServer::start_with(in_process_options(&data, &test)).await?),
    };
    let urls = match &in_process {
        Some(server) => vec![server.url().to_owned()],
        None => args.url.clone(),
    };
    let nodes = match urls.as_slice() {
        [url] => url.clone(),
        urls => format!("{} nodes, topic ", urls.len()),
    };
    say(format_args!(
        "loadtest: {} publishers x {} messages ({:.1} MB), {} subscribers{}, {}{}{}",
        args.publishers,
        data.len(),
        data.total_bytes() as f64 / 1e6,
        args.subscribers,
        match args.disrupt {
            0 => String::new(),
            resets => format!(" each disrupted {resets} times"),
        },
        nodes,
        args.topic,
        if in_process.is_some() {
            " (in-process server)"
        } else {
            ""
        },
    ));
    if urls.len() > 1 {
        say(test.placement(&urls)?);
    }
    let progress = Progress::for_stderr();
    let ticker = (!progress.has_bar()).then(|| tokio::spawn(print_progress(progress.clone())));
    let outcome = loadtest::run(&urls, &data, &test, &progress).await;
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    if let Some(server) = in_process {
        server.stop().await?;
    }
    match outcome {
        Ok(report) => {
            say(&report);
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(error) => {
            let (delivered, total) = progress.snapshot();
            say(format_args!(
                "FAIL: {error} ({delivered} of {total} deliveries done)"
            ));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Prints one line on stdout. A reader that went away (`loadtest | head`) is no reason to
/// fail: the exit code still says whether the test passed.
fn say(line: impl std::fmt::Display) {
    use std::io::Write;
    if let Err(error) = writeln!(std::io::stdout().lock(), "{line}")
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("loadtest: cannot write to stdout: {error}");
    }
}

/// Prints a progress line every few seconds, for logs that are not a terminal.
async fn print_progress(progress: Progress) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    every.tick().await;
    loop {
        every.tick().await;
        let (delivered, total) = progress.snapshot();
        say(format_args!("progress: {delivered} of {total} deliveries"));
    }
}
