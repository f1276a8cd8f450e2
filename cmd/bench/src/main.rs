//! `bench`: wspubsub's benchmark. Every scenario runs against a server in its own process
//! (this binary re-executed as `bench serve`), so that the server's CPU time and memory are
//! read from `/proc` apart from the load's, and is checked for correctness: a run that lost,
//! duplicated or reordered a message is reported as a failure, not a number.
//!
//! - `fanout`: 1 publisher -> N subscribers on one topic, with a window of messages in flight;
//!   measured against wspubsub and, in the same run, against `baseline`, a minimal broadcaster
//!   that writes pre-framed bytes with no topic logic at all (the practical limit of this
//!   machine and this client).
//! - `latency` (only when asked for): one message at a time, 1 publisher -> N subscribers
//!   with a window of 1 (the next message goes once every subscriber has the last), against
//!   wspubsub and the baseline in the same run: server CPU per delivery and latency.
//! - `many`: many small topics (1000 x 5 subscribers, a publisher each), saturated (window 8)
//!   and at a trickle (one message per topic every 100 ms), against wspubsub and the baseline
//!   (which keeps topics by URL path), and beside them the single-topic fan-out they are
//!   compared with.
//! - `burst` (only when asked for): the hash-verifying load test (5 publishers x 5
//!   subscribers, the default data set) against wspubsub and the baseline: time and CPU.
//! - `idle`: many idle subscribers: server memory per connection, time to reach all of them.
//! - `stream` (only when asked for): the fan-out load with subscribers in stream mode (`wspubsub.v2`, enveloped,
//!   seqs checked) side by side with raw subscribers: what the envelope costs.
//! - `sse` (only when asked for): the fan-out load with Server-Sent Events subscribers (plain
//!   HTTP, base64 events, ids checked) side by side with raw WebSocket subscribers.
//! - `replay`: subscribers joining with `from=earliest` on a full history, against live
//!   delivery of as many messages: time to catch up and server CPU per replayed message.
//! - `cluster` (only when asked for): the fan-out load over three wspubsub nodes in cluster
//!   mode on one nats-server, on one node in cluster mode, and on one plain node, side by
//!   side: what the NATS hop costs (the broker's CPU counted in).
//! - `churn` (only when asked for): 10,000 clients come, get messages and all leave, against a
//!   real `wspubsub` process: its resident memory must be back within 16 MiB of its baseline
//!   within 30 s, by itself.
//! - `secure` (only when asked for): the fan-out load against wspubsub plain, with token auth,
//!   with TLS, and with both, side by side: what TLS and auth cost.
//! - `patterns` (only when asked for): the fan-out load on a server with no pattern subscriber
//!   and on one holding `--idle-patterns` (10,000) idle ones, side by side: patterns are
//!   matched per topic, never per message, so they must not slow fan-out.

mod access;
mod baseline;
mod burst;
mod churn;
mod cluster;
mod idle;
mod load;
mod many;
mod mode;
mod pair;
mod patterns;
mod process;
mod replay;
mod report;
mod scenarios;
mod secure;
mod sse;
mod target;
mod tls;
mod versus;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// wspubsub's benchmark: fan-out, many topics and idle connections, with a baseline.
#[derive(Debug, Parser)]
#[command(name = "bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: scenarios::RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the scenarios (the default).
    Run(Box<scenarios::RunArgs>),
    /// Serve on 127.0.0.1 (a free port), print `ADDR <address>`, stop when stdin closes.
    #[command(hide = true)]
    Serve {
        /// Which server.
        #[arg(long, value_enum)]
        kind: ServerKind,
        /// TLS and token auth (wspubsub only).
        #[command(flatten)]
        flags: access::ServeFlags,
        /// Cluster mode: the NATS server(s) whose JetStream the node shares (wspubsub only).
        #[arg(long)]
        nats_url: Option<String>,
    },
}

/// The servers the benchmark can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ServerKind {
    /// The wspubsub server with default options.
    Wspubsub,
    /// The minimal broadcaster.
    Baseline,
}

impl ServerKind {
    /// The kind's name on the command line and in the table.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ServerKind::Wspubsub => "wspubsub",
            ServerKind::Baseline => "baseline",
        }
    }
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Some(Command::Serve {
            kind,
            flags,
            nats_url,
        }) => {
            runtime.block_on(process::serve_child(kind, &flags, nats_url))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Run(args)) => runtime.block_on(scenarios::run(*args)),
        None => runtime.block_on(scenarios::run(cli.run)),
    }
}
