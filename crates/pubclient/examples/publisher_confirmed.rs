//! Publishes in stream mode, where the server acknowledges what it stored: the first message
//! is confirmed on its own, the rest are published fire-and-forget, and the close returns
//! `Ok` only once every one of them is acknowledged. With a reconnect policy, messages a
//! broken connection left unacknowledged are sent again (at-least-once).
//!
//! ```sh
//! PUBSUB_URL=ws://127.0.0.1:8080/example cargo run -p wspubsub-pubclient --example publisher_confirmed
//! ```

use wspubsub_pubclient::{ClientOptions, Publisher, PublisherOptions, Reconnect};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("PUBSUB_URL").unwrap_or_else(|_| "ws://127.0.0.1:8080/example".into());
    let options = PublisherOptions::default().reconnect(Reconnect::default());
    let publisher = Publisher::connect_stream(&url, ClientOptions::default(), options).await?;
    publisher.publish_confirmed(&b"first"[..]).await?; // returns once the server stored it
    for n in 0..1000 {
        publisher.publish(format!("message {n}")).await?; // queued; acknowledged later
    }
    publisher.close().await?; // Ok only once all 1001 are acknowledged
    println!("all messages stored");
    Ok(())
}
