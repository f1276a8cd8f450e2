//! `wspubsub pub`: publish from the shell, one message per stdin line or per file.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use tokio::io::AsyncBufReadExt;
use wspubsub_pubclient::Publisher;

use crate::connect::ConnectArgs;

/// Flags of `wspubsub pub`.
#[derive(Debug, Clone, Args)]
pub(crate) struct PubArgs {
    /// Topic URL, `ws://host:port/topic` (or `wss://` for TLS).
    url: String,
    /// Files to send, one message each, in order; without files, each stdin line is one
    /// message (without its line ending).
    files: Vec<PathBuf>,
    /// Send this many messages, cycling through the input (for quick load).
    #[arg(long)]
    count: Option<u64>,
    /// At most this many messages per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Client name the server logs.
    #[arg(long, default_value = "wspubsub-pub")]
    name: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Publishes the input, then closes cleanly.
pub(crate) async fn run(args: PubArgs) -> anyhow::Result<()> {
    if let Some(rate) = args.rate {
        anyhow::ensure!(
            rate > 0.0 && rate.is_finite(),
            "--rate must be a positive number"
        );
    }
    let messages = read_input(&args.files).await?;
    anyhow::ensure!(
        !messages.is_empty() || args.count.is_none(),
        "--count needs at least one input message"
    );
    let options = args.connect.options(&args.name)?;
    let publisher = Publisher::connect(&args.url, options)
        .await
        .with_context(|| format!("cannot connect to {}", args.url))?;
    let total = args.count.unwrap_or(messages.len() as u64);
    let mut pace = args
        .rate
        .map(|rate| tokio::time::interval(Duration::from_secs_f64(1.0 / rate)));
    for message in messages
        .iter()
        .cycle()
        .take(usize::try_from(total).unwrap_or(usize::MAX))
    {
        if let Some(pace) = &mut pace {
            pace.tick().await;
        }
        publisher
            .publish(message.clone())
            .await
            .context("publish")?;
    }
    publisher.close().await.context("close")?;
    Ok(())
}

/// The messages: each file's bytes, or each stdin line.
async fn read_input(files: &[PathBuf]) -> anyhow::Result<Vec<Bytes>> {
    if !files.is_empty() {
        let mut messages = Vec::with_capacity(files.len());
        for file in files {
            let bytes = tokio::fs::read(file)
                .await
                .with_context(|| format!("cannot read {}", file.display()))?;
            messages.push(Bytes::from(bytes));
        }
        return Ok(messages);
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut messages = Vec::new();
    while let Some(line) = lines.next_line().await.context("cannot read stdin")? {
        messages.push(Bytes::from(line));
    }
    Ok(messages)
}
