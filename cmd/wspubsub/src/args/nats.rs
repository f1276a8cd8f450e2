//! `wspubsub serve`'s cluster-mode flags (`--nats-*`): where NATS is, how this node proves who
//! it is, and the shape of the stream; turned into the server's cluster [`Options`] fields.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use wspubsub_server::{NatsCredentials, NatsStorage, Options};

/// `--nats-storage`: where the stream keeps messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StorageKind {
    /// In memory: fast, lost when NATS restarts.
    Memory,
    /// On disk: survives NATS restarts.
    File,
}

impl From<StorageKind> for NatsStorage {
    fn from(kind: StorageKind) -> Self {
        match kind {
            StorageKind::Memory => NatsStorage::Memory,
            StorageKind::File => NatsStorage::File,
        }
    }
}

/// The cluster-mode flags; each falls back to the environment variable it names.
#[derive(Debug, Clone, Args)]
pub(crate) struct NatsArgs {
    /// Cluster mode: NATS server URLs (comma list) whose JetStream carries every topic
    /// between the wspubsub nodes given the same URLs. Without it the server runs alone.
    #[arg(long, env = "PUBSUB_NATS_URL")]
    nats_url: Option<String>,
    /// Cluster mode: authenticate to NATS with this `.creds` file (JWT and NKey seed, as
    /// `nsc` writes it).
    #[arg(long, env = "PUBSUB_NATS_CREDS")]
    nats_creds: Option<PathBuf>,
    /// Cluster mode: authenticate to NATS as this user, with --nats-password.
    #[arg(long, env = "PUBSUB_NATS_USER")]
    nats_user: Option<String>,
    /// The password of --nats-user (prefer the environment variable: command lines are
    /// visible to other users).
    #[arg(long, env = "PUBSUB_NATS_PASSWORD", hide_env_values = true)]
    nats_password: Option<String>,
    /// Cluster mode: authenticate to NATS with this token (prefer the environment variable).
    #[arg(long, env = "PUBSUB_NATS_TOKEN", hide_env_values = true)]
    nats_token: Option<String>,
    /// Cluster mode: trust the CA certificates of this PEM file (beyond the system's) for
    /// `tls://` NATS URLs.
    #[arg(long, env = "PUBSUB_NATS_CA_FILE")]
    nats_ca_file: Option<PathBuf>,
    /// Cluster mode: where the stream keeps messages: `memory` (lost when NATS restarts) or
    /// `file` (survives restarts). Fixed once the stream exists.
    #[arg(
        long,
        env = "PUBSUB_NATS_STORAGE",
        value_enum,
        default_value = NatsStorage::default().as_str()
    )]
    nats_storage: StorageKind,
    /// Cluster mode: copies of each message in the NATS cluster, 1 to 5 (3 keeps every
    /// message through the loss of one NATS server).
    #[arg(long, env = "PUBSUB_NATS_REPLICAS", default_value_t = 1)]
    nats_replicas: usize,
}

impl NatsArgs {
    /// Sets `options`'s cluster fields from the flags; conflicting or incomplete credentials
    /// are an error (checked here rather than by clap, so that a config file's values are
    /// checked too, and the error is one line).
    pub(crate) fn apply(&self, options: &mut Options) -> anyhow::Result<()> {
        if self.nats_url.is_none() {
            let ignored = self.cluster_flags_given();
            if !ignored.is_empty() {
                tracing::warn!(
                    flags = %ignored.join(" "),
                    "cluster-mode flags have no effect without --nats-url"
                );
            }
        }
        options.nats_url.clone_from(&self.nats_url);
        options.nats_credentials = self.credentials()?;
        if let Some(path) = &self.nats_ca_file {
            std::fs::File::open(path)
                .with_context(|| format!("cannot read --nats-ca-file {}", path.display()))?;
        }
        options.nats_ca_file.clone_from(&self.nats_ca_file);
        options.nats_storage = self.nats_storage.into();
        options.nats_replicas = self.nats_replicas;
        Ok(())
    }

    /// The cluster-mode flags (besides `--nats-url`) given a value other than their default.
    fn cluster_flags_given(&self) -> Vec<&'static str> {
        [
            (self.nats_creds.is_some(), "--nats-creds"),
            (self.nats_user.is_some(), "--nats-user"),
            (self.nats_password.is_some(), "--nats-password"),
            (self.nats_token.is_some(), "--nats-token"),
            (self.nats_ca_file.is_some(), "--nats-ca-file"),
            (self.nats_storage != StorageKind::Memory, "--nats-storage"),
            (self.nats_replicas != 1, "--nats-replicas"),
        ]
        .into_iter()
        .filter_map(|(set, flag)| set.then_some(flag))
        .collect()
    }

    /// The one way of authenticating the flags give, if any.
    fn credentials(&self) -> anyhow::Result<NatsCredentials> {
        let given: Vec<&str> = [
            (self.nats_creds.is_some(), "--nats-creds"),
            (self.nats_user.is_some(), "--nats-user"),
            (self.nats_token.is_some(), "--nats-token"),
        ]
        .into_iter()
        .filter_map(|(set, flag)| set.then_some(flag))
        .collect();
        anyhow::ensure!(
            given.len() <= 1,
            "{} cannot be used together: give one way to authenticate to NATS",
            given.join(" and ")
        );
        anyhow::ensure!(
            self.nats_password.is_none() || self.nats_user.is_some(),
            "--nats-password needs --nats-user"
        );
        if let Some(path) = &self.nats_creds {
            return Ok(NatsCredentials::File(path.clone()));
        }
        if let Some(token) = &self.nats_token {
            return Ok(NatsCredentials::Token(token.clone()));
        }
        let Some(user) = &self.nats_user else {
            return Ok(NatsCredentials::None);
        };
        let Some(password) = &self.nats_password else {
            anyhow::bail!("--nats-user needs --nats-password (or PUBSUB_NATS_PASSWORD)");
        };
        Ok(NatsCredentials::UserPassword {
            user: user.clone(),
            password: password.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::args::Wrapper;

    use super::*;

    /// The options from `args` (after the binary name), or the error's one line.
    fn options(args: &[&str]) -> Result<Options, String> {
        Wrapper::try_parse_from([&["wspubsub"], args].concat())
            .map_err(|error| error.to_string())?
            .serve
            .options()
            .map_err(|error| format!("{error:#}"))
    }

    #[test]
    fn one_way_of_authenticating_at_a_time() {
        let error = options(&["--nats-creds", "n.creds", "--nats-token", "t"])
            .expect_err("a creds file and a token");
        assert!(
            error.contains("--nats-creds and --nats-token cannot be used together"),
            "{error}"
        );
        let error = options(&[
            "--nats-user",
            "u",
            "--nats-password",
            "p",
            "--nats-token",
            "t",
        ])
        .expect_err("a user and a token");
        assert!(error.contains("--nats-user and --nats-token"), "{error}");
        let error = options(&["--nats-user", "u"]).expect_err("no password");
        assert!(
            error.contains("--nats-user needs --nats-password"),
            "{error}"
        );
        let error = options(&["--nats-password", "p"]).expect_err("no user");
        assert!(
            error.contains("--nats-password needs --nats-user"),
            "{error}"
        );
        let error = options(&["--nats-token", ""]).expect_err("an empty token");
        assert!(error.contains("nats-token"), "{error}");
    }

    #[test]
    fn credentials_reach_the_options() {
        let credentials = |args: &[&str]| options(args).map(|o| o.nats_credentials);
        assert_eq!(credentials(&[]), Ok(NatsCredentials::None));
        assert_eq!(
            credentials(&["--nats-user", "node", "--nats-password", "pw"]),
            Ok(NatsCredentials::UserPassword {
                user: "node".into(),
                password: "pw".into()
            })
        );
        assert_eq!(
            credentials(&["--nats-token", "t0k"]),
            Ok(NatsCredentials::Token("t0k".into()))
        );
        assert_eq!(
            credentials(&["--nats-creds", "/etc/nats/node.creds"]),
            Ok(NatsCredentials::File("/etc/nats/node.creds".into()))
        );
    }

    #[test]
    fn storage_replicas_and_ca_file_reach_the_options() {
        let defaults = options(&[]).expect("defaults");
        assert_eq!(
            (defaults.nats_storage, defaults.nats_replicas),
            (NatsStorage::Memory, 1)
        );
        let set = options(&[
            "--nats-url",
            "nats://127.0.0.1:4222",
            "--nats-storage",
            "file",
            "--nats-replicas",
            "3",
        ])
        .expect("valid");
        assert_eq!(set.nats_url.as_deref(), Some("nats://127.0.0.1:4222"));
        assert_eq!(
            (set.nats_storage, set.nats_replicas),
            (NatsStorage::File, 3)
        );
        assert!(options(&["--nats-storage", "disk"]).is_err());
        let error = options(&["--nats-replicas", "6"]).expect_err("too many replicas");
        assert!(error.contains("nats-replicas: must be 1 to 5"), "{error}");
        let error = options(&["--nats-replicas", "0"]).expect_err("no replica");
        assert!(error.contains("nats-replicas"), "{error}");
        let error =
            options(&["--nats-ca-file", "/nonexistent/ca.pem"]).expect_err("an unreadable CA");
        assert!(
            error.contains("cannot read --nats-ca-file /nonexistent/ca.pem"),
            "{error}"
        );
        let ca = std::env::current_exe().expect("a readable file");
        let ca = ca.to_string_lossy();
        let with_ca = options(&["--nats-ca-file", &ca]).expect("a readable CA file");
        assert_eq!(
            with_ca.nats_ca_file.as_deref(),
            Some(std::path::Path::new(&*ca))
        );
    }
}
