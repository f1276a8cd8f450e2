//! Prints every message of a topic until Ctrl-C, like the Go README's subscriber example.
//!
//! ```sh
//! PUBSUB_URL=ws://127.0.0.1:8080/example cargo run -p wspubsub-subclient --example subscriber
//! ```

use futures_util::StreamExt;
use wspubsub_subclient::{ClientOptions, Subscriber};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("PUBSUB_URL").unwrap_or_else(|_| "ws://127.0.0.1:8080/example".into());
    println!("Connecting to {url:?}.");
    let mut subscriber =
        Subscriber::connect(&url, ClientOptions::default().name("example-subscriber")).await?;

    // Print messages as they come in, until Ctrl-C or the end of the connection; `?` turns
    // the stream's last item, the error that ended it, into this program's error.
    loop {
        tokio::select! {
            message = subscriber.next() => match message {
                Some(message) => println!("{}", String::from_utf8_lossy(&message?)),
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => return Ok(subscriber.close().await?),
        }
    }
}
