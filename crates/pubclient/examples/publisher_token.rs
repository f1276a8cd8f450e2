//! Publishes to a server with token auth: the JWT goes out as `Authorization: Bearer`. A
//! token without this topic in its `pub` claim is refused with HTTP 403; a missing or
//! expired one with 401. A token that expires while connected ends the publisher with 1008.
//!
//! ```sh
//! PUBSUB_URL=ws://127.0.0.1:8080/example PUBSUB_TOKEN=eyJ... \
//!     cargo run -p wspubsub-pubclient --example publisher_token
//! ```

use wspubsub_pubclient::{ClientError, ClientOptions, Publisher};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("PUBSUB_URL").unwrap_or_else(|_| "ws://127.0.0.1:8080/example".into());
    // From the environment, not a flag: tokens do not belong in shell history.
    let token = std::env::var("PUBSUB_TOKEN").map_err(|_| "set PUBSUB_TOKEN to a JWT")?;

    let publisher = match Publisher::connect(&url, ClientOptions::default().token(token)).await {
        Err(ClientError::HandshakeRejected { status, body }) => {
            return Err(format!("the server refused the token (HTTP {status}): {body}").into());
        }
        connected => connected?,
    };
    publisher.publish(&b"authorised"[..]).await?;
    publisher.close().await?;
    Ok(())
}
