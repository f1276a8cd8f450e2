//! `wspubsub sub`: print a topic's messages in the shell.

use anyhow::Context;
use base64::Engine;
use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use wspubsub_server::protocol::Start;
use wspubsub_subclient::Subscriber;

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
    /// has) instead of being refused with 416.
    #[arg(long)]
    gap_ok: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

impl SubArgs {
    /// The topic URL with the start position in its query, as the server reads it; checked
    /// here first, so that a bad value is a one-line error before any connection.
    fn url_with_start(&self) -> anyhow::Result<String> {
        let gap = self.gap_ok.then_some("ok");
        Start::parse(self.from.as_deref(), self.since.as_deref(), gap)
            .context("invalid start position")?;
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
    let url = args.url_with_start()?;
    let mut subscriber = Subscriber::connect(&url, options)
        .await
        .with_context(|| format!("cannot connect to {}", args.url))?;
    eprintln!("subscribed to {}", args.url);
    let mut stdout = tokio::io::stdout();
    let mut printed = 0u64;
    while args.count.is_none_or(|count| printed < count) {
        let Some(message) = subscriber.next().await else {
            subscriber.done().await.context("subscription ended")?;
            return Ok(());
        };
        let message = message.context("subscription ended")?;
        stdout
            .write_all(&args.format.render(&message))
            .await
            .context("cannot write to stdout")?;
        stdout.flush().await.context("cannot write to stdout")?;
        printed += 1;
    }
    subscriber.close().await.context("close")?;
    Ok(())
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
