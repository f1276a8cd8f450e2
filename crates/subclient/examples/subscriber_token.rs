//! Subscribes to a server with token auth: the JWT goes out as `Authorization: Bearer`.
//! A missing, expired or wrong token is refused at the handshake with HTTP 401 or 403.
//!
//! ```sh
//! PUBSUB_URL=ws://127.0.0.1:8080/example PUBSUB_TOKEN=eyJ... \
//!     cargo run -p wspubsub-subclient --example subscriber_token
//! ```

use futures_util::StreamExt;
use wspubsub_subclient::{ClientError, ClientOptions, Subscriber};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("PUBSUB_URL").unwrap_or_else(|_| "ws://127.0.0.1:8080/example".into());
    // From the environment, not a flag: tokens do not belong in shell history.
    let token = std::env::var("PUBSUB_TOKEN").map_err(|_| "set PUBSUB_TOKEN to a JWT")?;

    let mut subscriber =
        match Subscriber::connect(&url, ClientOptions::default().token(token)).await {
            Err(ClientError::HandshakeRejected { status, body }) => {
                return Err(format!("the server refused the token (HTTP {status}): {body}").into());
            }
            connected => connected?,
        };
    while let Some(message) = subscriber.next().await {
        println!("{} bytes", message?.len());
    }
    Ok(())
}
