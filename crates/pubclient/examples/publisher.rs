//! Publishes one message and closes, like the Go README's publisher example.
//!
//! ```sh
//! PUBSUB_URL=ws://127.0.0.1:8080/example cargo run -p wspubsub-pubclient --example publisher
//! ```

use wspubsub_pubclient::{ClientOptions, Publisher};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The pubsub WebSocket URL from the environment; every path is a topic.
    let url = std::env::var("PUBSUB_URL").unwrap_or_else(|_| "ws://127.0.0.1:8080/example".into());

    let publisher =
        Publisher::connect(&url, ClientOptions::default().name("example-publisher")).await?;
    publisher.publish(&b"message"[..]).await?;

    // Close: the message goes out first, then the close handshake. The result is how the
    // connection ended (the Go client's Done() and Error() in one).
    match publisher.close().await {
        Ok(()) => println!("published one message to {url}"),
        Err(error) => eprintln!("the publisher ended with an error: {error}"),
    }
    Ok(())
}
