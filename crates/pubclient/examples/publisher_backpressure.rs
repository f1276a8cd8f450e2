//! Publishes a large stream at the pace the server takes it: the publisher is a `Sink`, so
//! `forward` waits whenever its small queue is full (the socket is backed up) instead of
//! buffering without bound, and closes the connection when the stream ends. A server that
//! takes no data for the pong deadline ends it with `WriteTimeout` rather than a hang.
//!
//! ```sh
//! PUBSUB_URL=ws://127.0.0.1:8080/example cargo run -p wspubsub-pubclient --example publisher_backpressure
//! ```

use bytes::Bytes;
use futures_util::StreamExt;
use wspubsub_pubclient::{ClientError, ClientOptions, Publisher};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("PUBSUB_URL").unwrap_or_else(|_| "ws://127.0.0.1:8080/example".into());
    let publisher = Publisher::connect(&url, ClientOptions::default()).await?;

    // A first batch by hand: `publish` only queues; `flush` waits until it is written.
    for n in 0..1000u32 {
        publisher.publish(n.to_be_bytes().to_vec()).await?;
    }
    publisher.flush().await?;

    // The rest as a stream: 100 000 messages of 1 KiB, never more than a queue's worth held.
    let messages = futures_util::stream::iter(0..100_000u32)
        .map(|n| Ok::<_, ClientError>(Bytes::from(vec![(n % 251) as u8; 1024])));
    messages.forward(publisher).await?; // closes the publisher at the end
    println!("published 101 000 messages to {url}");
    Ok(())
}
