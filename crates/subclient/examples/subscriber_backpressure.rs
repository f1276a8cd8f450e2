//! A consumer slower than its topic: the subscriber keeps reading the socket (and answering
//! the server's pings) into a receive buffer bounded here at 1000 messages or 1 MiB. Once the
//! consumer is that far behind, the subscriber closes with `4000` and the stream's last item
//! is `ClientError::Lagged`: nothing is lost silently, and memory stays bounded. Whether to
//! reconnect is the caller's choice (`is_retryable`).
//!
//! ```sh
//! PUBSUB_URL=ws://127.0.0.1:8080/example cargo run -p wspubsub-subclient --example subscriber_backpressure
//! ```

use std::time::Duration;

use futures_util::StreamExt;
use wspubsub_subclient::{ClientError, ClientOptions, Subscriber};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("PUBSUB_URL").unwrap_or_else(|_| "ws://127.0.0.1:8080/example".into());
    let options = ClientOptions::default().receive_buffer(1000, 1 << 20);
    let mut subscriber = Subscriber::connect(&url, options).await?;
    let mut handled = 0u64;
    while let Some(message) = subscriber.next().await {
        match message {
            Ok(_message) => {
                // A slow consumer: 100 messages a second at most.
                tokio::time::sleep(Duration::from_millis(10)).await;
                handled += 1;
            }
            Err(ClientError::Lagged { messages, bytes }) => {
                eprintln!(
                    "fell behind after {handled} messages ({messages} messages, {bytes} bytes unread)"
                );
                break;
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}
