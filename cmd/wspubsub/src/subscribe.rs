//! `wspubsub sub`: print a topic's messages in the shell.

use anyhow::Context;
use base64::Engine;
use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use wspubsub_server::protocol::Start;
use wspubsub_subclient::{
    ClientOptions, Event, Reconnect, StreamSubscriber, Subscriber, SubscriberOptions,
};

use crate::connect::ConnectArgs;

/// Flags of `wspubsub sub`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SubArgs {
    /// Topic URL, `ws://host:port/topic` (or `wss://` for TLS).
    url: String,
    /// How to print each message.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Exit after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Client name the server logs.
    #[arg(long, default_value = "wspubsub-sub")]
    name: String,
    /// Where to start: `latest` (only what is published from now on, the default),
    /// `earliest` (everything the topic's history holds first), or a sequence number (the
    /// first message wanted).
    #[arg(long, conflicts_with = "since")]
    from: Option<String>,
    /// Start with the first message the server took at or after this time: RFC 3339
    /// (`2026-12-01T10:00:00Z`) or unix milliseconds.
    #[arg(long)]
    since: Option<String>,
    /// Accept a start position the topic's history no longer covers (start with what it
    /// has) instead of being refused with 416; with --reconnect, also go on after a gap
    /// (noted on stderr) instead of exiting.
    #[arg(long)]
    gap_ok: bool,
    /// Stream mode with reconnects: when the connection breaks (network loss, a server
    /// restart or shutdown, a cut for being slow), connect again, with backoff, and resume
    /// right after the last message printed, from the topic's history. Nothing is printed
    /// twice; messages history no longer holds are a gap, which ends `sub` with an error
    /// unless --gap-ok.
    #[arg(long)]
    reconnect: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

impl SubArgs {
    /// Where to start and whether a gap is accepted; checked here first, so that a bad value
    /// is a one-line error before any connection.
    fn start(&self) -> anyhow::Result<Start> {
        let gap = self.gap_ok.then_some("ok");
        Start::parse(self.from.as_deref(), self.since.as_deref(), gap)
            .context("invalid start position")
    }

    /// The topic URL with the start position in its query, as the server reads it; checked
    /// here first, so that a bad value is a one-line error before any connection.
    fn url_with_start(&self) -> anyhow::Result<String> {
        let gap = self.gap_ok.then_some("ok");
        self.start()?;
        let mut query = form_urlencoded::Serializer::new(String::new());
        let pairs = [
            ("from", self.from.as_deref()),
            ("since", self.since.as_deref()),
            ("gap", gap),
        ];
        for (key, value) in pairs {
            if let Some(value) = value {
                query.append_pair(key, value);
            }
        }
        let query = query.finish();
        if query.is_empty() {
            return Ok(self.url.clone());
        }
        let separator = if self.url.contains('?') { '&' } else { '?' };
        Ok(format!("{}{separator}{query}", self.url))
    }
}

/// How messages are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The bytes as they are, nothing added.
    Raw,
    /// Lowercase hex, one message per line.
    Hex,
    /// Standard base64, one message per line.
    Base64,
    /// UTF-8 (invalid bytes replaced), one message per line.
    Text,
}

impl Format {
    fn render(self, message: &[u8]) -> Vec<u8> {
        let line = |text: String| format!("{text}\n").into_bytes();
        match self {
            Format::Raw => message.to_vec(),
            Format::Hex => line(hex::encode(message)),
            Format::Base64 => line(base64::engine::general_purpose::STANDARD.encode(message)),
            Format::Text => line(String::from_utf8_lossy(message).into_owned()),
        }
    }
}

/// Prints messages until `--count` or the end of the connection (an error unless we closed).
pub(crate) async fn run(args: SubArgs) -> anyhow::Result<()> {
    let options = args.connect.options(&args.name)?;
    if args.reconnect {
        return run_reconnecting(args, options).await;
    }
    let url = args.url_with_start()?;
    let mut subscriber = Subscriber::connect(&url, options)
        .await
        .with_context(|| format!("cannot connect to {}", args.url))?;
    eprintln!("subscribed to {}", args.url);
    let mut printer = Printer::new(&args);
    while !printer.done() {
        let Some(message) = subscriber.next().await else {
            subscriber.done().await.context("subscription ended")?;
            return Ok(());
        };
        printer
            .print(&message.context("subscription ended")?)
            .await?;
    }
    subscriber.close().await.context("close")?;
    Ok(())
}

/// `sub --reconnect`: stream mode, resuming after every break.
async fn run_reconnecting(args: SubArgs, options: ClientOptions) -> anyhow::Result<()> {
    let start = args.start()?;
    let stream = SubscriberOptions::default()
        .start(start.position)
        .reconnect(Reconnect::default());
    let mut subscriber = StreamSubscriber::connect(&args.url, options, stream)
        .await
        .with_context(|| format!("cannot connect to {}", args.url))?;
    eprintln!("subscribed to {}", args.url);
    let mut printer = Printer::new(&args);
    while !printer.done() {
        let Some(event) = subscriber.next().await else {
            subscriber.done().await.context("subscription ended")?;
            return Ok(());
        };
        match event.context("subscription ended")? {
            Event::Message(message) => printer.print(&message.payload).await?,
            Event::Reconnected { from, after } => {
                eprintln!("reconnected after: {after}; resuming at seq {from}");
            }
            Event::Gap { from, to, reason } if start.gap_ok => {
                eprintln!("gap: messages from seq {from} up to {to} will not come ({reason})");
            }
            Event::Gap { from, to, reason } => anyhow::bail!(
                "gap: the topic's history no longer holds messages from seq {from} up to {to} \
                 ({reason}); --gap-ok goes on without them"
            ),
            other => tracing::debug!(?other, "ignored an event"),
        }
    }
    subscriber.close().await.context("close")?;
    Ok(())
}

/// Writes messages to stdout in the chosen format, counting them against `--count`.
struct Printer {
    stdout: tokio::io::Stdout,
    format: Format,
    printed: u64,
    count: Option<u64>,
}

impl Printer {
    fn new(args: &SubArgs) -> Printer {
        Printer {
            stdout: tokio::io::stdout(),
            format: args.format,
            printed: 0,
            count: args.count,
        }
    }

    /// Whether `--count` messages have been printed.
    fn done(&self) -> bool {
        self.count.is_some_and(|count| self.printed >= count)
    }

    /// Prints one message, flushed at once (a pipe reader sees it as it comes).
    async fn print(&mut self, message: &[u8]) -> anyhow::Result<()> {
        self.stdout
            .write_all(&self.format.render(message))
            .await
            .context("cannot write to stdout")?;
        self.stdout
            .flush()
            .await
            .context("cannot write to stdout")?;
        self.printed += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_render_one_message_each() {
        let message = b"hi\xff";
        assert_eq!(Format::Raw.render(message), message.to_vec());
        assert_eq!(Format::Hex.render(message), b"6869ff\n".to_vec());
        assert_eq!(Format::Base64.render(message), b"aGn/\n".to_vec());
        assert_eq!(
            Format::Text.render(message),
            "hi\u{fffd}\n".as_bytes().to_vec()
        );
    }
}
