//! `wspubsub pub`: publish from the shell, one message per stdin line or per file.
//!
//! The input streams: each stdin line is published as soon as it is read (`tail -f log |
//! wspubsub pub URL` works) and files are read one at a time, so nothing waits for the end of
//! the input and memory does not grow with it. Only `--count` keeps messages, to cycle
//! through them once the input ends early, and at most [`MAX_KEPT_BYTES`] of them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use tokio::io::{AsyncBufReadExt, BufReader, Split, Stdin};
use wspubsub_pubclient::{Publisher, PublisherOptions, Reconnect};

use crate::connect::ConnectArgs;

/// The most input bytes `--count` keeps to cycle through (64 MiB).
const MAX_KEPT_BYTES: usize = 64 << 20;

/// Flags of `wspubsub pub`.
#[derive(Debug, Clone, Args)]
pub(crate) struct PubArgs {
    /// Topic URL, `ws://host:port/topic` (or `wss://` for TLS).
    url: String,
    /// Files to send, one message each, in order; without files, each stdin line is one
    /// message (without its line ending).
    files: Vec<PathBuf>,
    /// Send this many messages, cycling through the input (for quick load); the cycled
    /// messages are kept in memory, at most 64 MiB of them.
    #[arg(long)]
    count: Option<u64>,
    /// At most this many messages per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Client name the server logs.
    #[arg(long, default_value = "wspubsub-pub")]
    name: String,
    /// Stream mode: the server acknowledges every message it stored, and `pub` exits 0 only
    /// once every message was acknowledged (non-zero, with the reason, otherwise).
    #[arg(long)]
    confirm: bool,
    /// With --confirm: when the connection breaks, connect again, with backoff, and re-send
    /// what was not acknowledged. At-least-once: a message stored just before the break,
    /// its acknowledgement lost, is stored twice.
    #[arg(long, requires = "confirm")]
    reconnect: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Publishes the input as it is read, then closes cleanly.
pub(crate) async fn run(args: PubArgs) -> anyhow::Result<()> {
    if let Some(rate) = args.rate {
        anyhow::ensure!(
            rate > 0.0 && rate.is_finite(),
            "--rate must be a positive number"
        );
    }
    let options = args.connect.options(&args.name)?;
    let publisher = if args.confirm {
        let mut stream = PublisherOptions::default();
        if args.reconnect {
            stream = stream.reconnect(Reconnect::default());
        }
        Publisher::connect_stream(&args.url, options, stream).await
    } else {
        Publisher::connect(&args.url, options).await
    }
    .with_context(|| format!("cannot connect to {}", args.url))?;
    let mut out = Paced {
        publisher: &publisher,
        pace: args
            .rate
            .map(|rate| tokio::time::interval(Duration::from_secs_f64(1.0 / rate))),
    };
    let mut input = Input::new(args.files);
    let mut kept = args.count.map(|_| Kept::default());
    let mut sent = 0u64;
    while args.count.is_none_or(|count| sent < count) {
        let Some(message) = input.next().await? else {
            break;
        };
        if let Some(kept) = &mut kept {
            kept.keep(&message)?;
        }
        out.send(message).await?;
        sent += 1;
    }
    if let (Some(count), Some(kept)) = (args.count, kept) {
        out.cycle(&kept.messages, count - sent).await?;
    }
    // In stream mode, the close waits until every message is acknowledged.
    publisher.close().await.context("close")?;
    Ok(())
}

/// The publisher, at most `--rate` messages a second.
struct Paced<'a> {
    publisher: &'a Publisher,
    pace: Option<tokio::time::Interval>,
}

impl Paced<'_> {
    async fn send(&mut self, message: Bytes) -> anyhow::Result<()> {
        if let Some(pace) = &mut self.pace {
            pace.tick().await;
        }
        self.publisher.publish(message).await.context("publish")
    }

    /// Sends `rest` more messages, cycling through `messages`.
    async fn cycle(&mut self, messages: &[Bytes], rest: u64) -> anyhow::Result<()> {
        if rest == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            !messages.is_empty(),
            "--count needs at least one input message"
        );
        let rest = usize::try_from(rest).unwrap_or(usize::MAX);
        for message in messages.iter().cycle().take(rest) {
            self.send(message.clone()).await?;
        }
        Ok(())
    }
}

/// Where messages come from: stdin lines, or files, one message each, read one at a time.
enum Input {
    /// Each line is a message, without its line ending (`\n` or `\r\n`).
    Lines(Split<BufReader<Stdin>>),
    /// Each file is a message.
    Files(std::vec::IntoIter<PathBuf>),
}

impl Input {
    fn new(files: Vec<PathBuf>) -> Input {
        if files.is_empty() {
            Input::Lines(BufReader::new(tokio::io::stdin()).split(b'\n'))
        } else {
            Input::Files(files.into_iter())
        }
    }

    /// The next message, `None` at the end of the input.
    async fn next(&mut self) -> anyhow::Result<Option<Bytes>> {
        match self {
            Input::Lines(lines) => {
                let line = lines.next_segment().await.context("cannot read stdin")?;
                Ok(line.map(|mut line| {
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    Bytes::from(line)
                }))
            }
            Input::Files(files) => {
                let Some(file) = files.next() else {
                    return Ok(None);
                };
                let bytes = tokio::fs::read(&file)
                    .await
                    .with_context(|| format!("cannot read {}", file.display()))?;
                Ok(Some(Bytes::from(bytes)))
            }
        }
    }
}

/// The messages `--count` cycles through, bounded in bytes.
#[derive(Default)]
struct Kept {
    messages: Vec<Bytes>,
    bytes: usize,
}

impl Kept {
    fn keep(&mut self, message: &Bytes) -> anyhow::Result<()> {
        self.bytes = self.bytes.saturating_add(message.len());
        anyhow::ensure!(
            self.bytes <= MAX_KEPT_BYTES,
            "--count cycles through the input, which it keeps in memory: more than 64 MiB of \
             input before --count was reached (send fewer or smaller messages)"
        );
        self.messages.push(message.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_input_is_bounded() {
        let mut kept = Kept::default();
        let half = Bytes::from(vec![0u8; MAX_KEPT_BYTES / 2]);
        kept.keep(&half).expect("within the bound");
        kept.keep(&half).expect("exactly the bound");
        assert!(kept.keep(&Bytes::from_static(b"x")).is_err());
        assert_eq!(kept.messages.len(), 2);
    }
}
