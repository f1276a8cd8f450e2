//! Subscribes over `wss://` to a server whose certificate a private CA signed (or that is
//! self-signed), trusting the CA certificates of a PEM file instead of the platform's roots.
//!
//! ```sh
//! PUBSUB_URL=wss://127.0.0.1:8443/example PUBSUB_CA_FILE=ca.pem \
//!     cargo run -p wspubsub-subclient --example subscriber_tls
//! ```

use futures_util::StreamExt;
use wspubsub_subclient::{ClientOptions, Subscriber};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("PUBSUB_URL").unwrap_or_else(|_| "wss://127.0.0.1:8443/example".into());
    let ca_file = std::env::var("PUBSUB_CA_FILE").unwrap_or_else(|_| "ca.pem".into());
    let pem = std::fs::read(&ca_file).map_err(|error| format!("cannot read {ca_file}: {error}"))?;

    // A certificate that no CA in the file vouches for fails `connect` with `Connect`.
    let options = ClientOptions::default().ca_certificates_pem(pem);
    let mut subscriber = Subscriber::connect(&url, options).await?;
    while let Some(message) = subscriber.next().await {
        println!("{} bytes over TLS", message?.len());
    }
    Ok(())
}
