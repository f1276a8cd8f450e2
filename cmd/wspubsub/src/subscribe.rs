//! `wspubsub sub`: print a topic's messages in the shell.

use anyhow::Context;
use base64::Engine;
use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
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
    #[command(flatten)]
    connect: ConnectArgs,
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
    let mut subscriber = Subscriber::connect(&args.url, options)
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
