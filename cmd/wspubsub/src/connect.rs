//! How `wspubsub pub` and `wspubsub sub` connect: the flags they share, turned into
//! [`ClientOptions`].

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use wspubsub_pubclient::ClientOptions;

/// Connection flags of `pub` and `sub`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConnectArgs {
    /// Token for a server with token auth, sent as `Authorization: Bearer` (prefer the
    /// environment variable: command lines are visible to other users).
    #[arg(long, env = "PUBSUB_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// For `wss://` URLs: trust the CA certificates in this PEM file (a private CA, or the
    /// server's self-signed certificate) instead of the system's root certificates.
    #[arg(long, env = "PUBSUB_CA_FILE")]
    ca_file: Option<PathBuf>,
}

impl ConnectArgs {
    /// The client options for a client called `name`.
    pub(crate) fn options(&self, name: &str) -> anyhow::Result<ClientOptions> {
        let mut options = ClientOptions::default().name(name);
        if let Some(token) = &self.token {
            options = options.token(token.as_str());
        }
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --ca-file {}", path.display()))?;
            options = options.ca_certificates_pem(pem);
        }
        Ok(options)
    }
}
