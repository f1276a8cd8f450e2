//! How a server under test is secured, and how its clients get in: the `secure` scenario's
//! variants (plain, token auth, TLS, both), the credentials they share (made once per bench
//! run, in a directory of their own that is removed at the end), the flags that hand them to a
//! `bench serve` child, and the scheme, TLS configuration and token its clients use.

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context;
use rustls::ClientConfig;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use wspubsub_server::{AuthKey, Options, TlsIdentity};
use wspubsub_testkit::{Signer, now};

use crate::tls;

/// How long the bench's token stays valid: longer than any bench run, since the server closes
/// a connection whose token expires.
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A way of securing the server: the variants the `secure` scenario compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    /// Plain ws://, no auth: the reference.
    Plain,
    /// Token auth: every client sends an HS256 bearer token.
    Auth,
    /// TLS: clients connect over wss://.
    Tls,
    /// TLS and token auth together.
    TlsAuth,
}

impl Variant {
    /// Every variant, the reference (plain) first.
    pub(crate) const ALL: [Variant; 4] = [
        Variant::Plain,
        Variant::Auth,
        Variant::Tls,
        Variant::TlsAuth,
    ];

    /// The variant's name in the table and the JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Auth => "auth",
            Variant::Tls => "tls",
            Variant::TlsAuth => "tls+auth",
        }
    }

    /// Whether clients connect over TLS.
    fn tls(self) -> bool {
        matches!(self, Variant::Tls | Variant::TlsAuth)
    }

    /// Whether clients must send a token.
    fn auth(self) -> bool {
        matches!(self, Variant::Auth | Variant::TlsAuth)
    }
}

impl serde::Serialize for Variant {
    /// As its name, one spelling for the table and the JSON.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// What a server's clients need to get in: TLS trusting its certificate, a bearer token.
/// The default reaches a plain ws:// server without auth.
#[derive(Debug, Clone, Default)]
pub(crate) struct Access {
    /// TLS configuration for wss://; `None` for plain ws://.
    tls: Option<Arc<ClientConfig>>,
    /// The `Authorization` header every client sends; `None` when auth is off.
    authorization: Option<HeaderValue>,
}

impl Access {
    /// The URL scheme of the server's topics.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "wss" } else { "ws" }
    }

    /// How a client's TCP stream is wrapped: in TLS, or not at all.
    pub(crate) fn connector(&self) -> Connector {
        match &self.tls {
            Some(config) => Connector::Rustls(Arc::clone(config)),
            None => Connector::Plain,
        }
    }

    /// Whether clients get in with nothing: no TLS, no token.
    pub(crate) fn is_plain(&self) -> bool {
        self.tls.is_none() && self.authorization.is_none()
    }

    /// Adds the bearer token to `request`, when the server wants one.
    pub(crate) fn authorize(&self, request: &mut Request) {
        if let Some(authorization) = &self.authorization {
            request
                .headers_mut()
                .insert(AUTHORIZATION, authorization.clone());
        }
    }
}

/// How a server under test is secured: the flags that tell a `bench serve` child, and what its
/// clients need. The default is plain ws:// without auth.
#[derive(Debug, Clone, Default)]
pub(crate) struct Security {
    /// Arguments for `bench serve` after `--kind`.
    pub(crate) serve_args: Vec<OsString>,
    /// What the server's clients need.
    pub(crate) access: Access,
}

/// The `secure` scenario's credentials: a self-signed certificate and its key in files that
/// child servers read, an HS256 secret, and what clients make of them. The directory holding
/// the files is removed when this is dropped.
pub(crate) struct Credentials {
    /// The directory of the files, removed on drop.
    dir: PathBuf,
    /// The certificate's PEM file.
    cert: PathBuf,
    /// The private key's PEM file.
    key: PathBuf,
    /// The HS256 secret the servers verify tokens with.
    secret: String,
    /// Client TLS trusting the certificate.
    client_tls: Arc<ClientConfig>,
    /// `Bearer <token>`, a token signed with the secret allowing every topic.
    authorization: HeaderValue,
}

impl Credentials {
    /// Makes the certificate and the secret, and writes the certificate and key to a fresh
    /// directory under the system's temp directory, named after this process (and a count, so
    /// that tests running side by side get one each).
    pub(crate) fn create() -> anyhow::Result<Credentials> {
        static MADE: AtomicU32 = AtomicU32::new(0);
        let identity = tls::self_signed()?;
        let client_tls = tls::client_config(&identity.cert_pem)?;
        let secret = random_secret();
        let token = Signer::hs256(secret.as_bytes()).token(
            now() + TOKEN_LIFETIME.as_secs(),
            &["/**"],
            &["/**"],
        );
        let authorization =
            HeaderValue::from_str(&format!("Bearer {token}")).context("token as a header value")?;
        let dir = std::env::temp_dir().join(format!(
            "wspubsub-bench-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        ));
        // A directory left by a killed run of a process with the same id: ours to replace.
        match std::fs::remove_dir_all(&dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error).with_context(|| format!("remove stale {}", dir.display()));
            }
            _ => {}
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("create {}", dir.display()))?;
        // From here on, dropping `credentials` removes the directory, whatever fails.
        let credentials = Credentials {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
            secret,
            client_tls,
            authorization,
        };
        write(&credentials.cert, &identity.cert_pem)?;
        write(&credentials.key, &identity.key_pem)?;
        Ok(credentials)
    }

    /// How a server of `variant` is started and reached.
    pub(crate) fn security(&self, variant: Variant) -> Security {
        let mut security = Security::default();
        if variant.tls() {
            security.serve_args.extend([
                "--tls-cert".into(),
                self.cert.clone().into(),
                "--tls-key".into(),
                self.key.clone().into(),
            ]);
            security.access.tls = Some(Arc::clone(&self.client_tls));
        }
        if variant.auth() {
            security
                .serve_args
                .extend(["--jwt-secret".into(), self.secret.clone().into()]);
            security.access.authorization = Some(self.authorization.clone());
        }
        security
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        // Best effort: a leftover directory is replaced by the next run with this process id.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes `text` to `path`.
fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

/// A secret for this bench run's tokens: 256 random bits, as hex.
fn random_secret() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The `bench serve` flags that secure the child server (wspubsub only).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ServeFlags {
    /// Serve wss:// with this PEM certificate.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require HS256 tokens signed with this secret.
    #[arg(long)]
    jwt_secret: Option<String>,
}

impl ServeFlags {
    /// Whether no flag was given: plain ws://, no auth.
    pub(crate) fn is_plain(&self) -> bool {
        self.tls_cert.is_none() && self.tls_key.is_none() && self.jwt_secret.is_none()
    }

    /// The wspubsub server options the flags ask for, the certificate and key read from their
    /// files.
    pub(crate) fn options(&self) -> anyhow::Result<Options> {
        let read = |path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("read {}", path.display()))
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsIdentity::from_pem(read(cert)?, read(key)?)),
            _ => None,
        };
        Ok(Options {
            tls,
            auth: self
                .jwt_secret
                .as_ref()
                .map(|secret| AuthKey::Hs256(secret.as_bytes().to_vec())),
            ..Options::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `bench serve`'s flags alone, to parse what [`Credentials::security`] passes.
    #[derive(Debug, Parser)]
    struct Serve {
        /// The flags under test.
        #[command(flatten)]
        flags: ServeFlags,
    }

    #[test]
    fn each_variant_reaches_the_server_it_starts() -> anyhow::Result<()> {
        let credentials = Credentials::create()?;
        assert!(credentials.cert.exists() && credentials.key.exists());
        for variant in Variant::ALL {
            let security = credentials.security(variant);
            let args = std::iter::once(OsString::from("serve")).chain(security.serve_args);
            let flags = Serve::try_parse_from(args)?.flags;
            let options = flags.options()?;
            assert_eq!(flags.is_plain(), variant == Variant::Plain);
            assert_eq!(options.tls.is_some(), variant.tls());
            assert_eq!(options.auth.is_some(), variant.auth());
            assert_eq!(security.access.scheme() == "wss", variant.tls());
            assert_eq!(security.access.authorization.is_some(), variant.auth());
        }
        let dir = credentials.dir.clone();
        drop(credentials);
        assert!(!dir.exists(), "the credentials' directory is removed");
        Ok(())
    }

    #[tokio::test]
    async fn clients_get_into_a_tls_and_auth_server_with_its_access_only() -> anyhow::Result<()> {
        let credentials = Credentials::create()?;
        let security = credentials.security(Variant::TlsAuth);
        let args = std::iter::once(OsString::from("serve")).chain(security.serve_args.clone());
        let options = Serve::try_parse_from(args)?.flags.options()?;
        let server = wspubsub_server::Server::bind("127.0.0.1:0", options).await?;
        let addr = server.local_addr()?;
        let handle = server.handle();
        let serving = tokio::spawn(server.run());
        let connect = |access: Access| async move {
            crate::load::connect(addr, &access, "/t", "subscriber", None).await
        };
        connect(security.access.clone()).await?;
        let no_token = Access {
            authorization: None,
            ..security.access.clone()
        };
        assert!(connect(no_token).await.is_err(), "a client without a token");
        assert!(connect(Access::default()).await.is_err(), "a plain client");
        handle.shutdown();
        serving.await?;
        Ok(())
    }

    #[test]
    fn variants_serialize_as_their_names() -> anyhow::Result<()> {
        assert_eq!(serde_json::to_string(&Variant::TlsAuth)?, "\"tls+auth\"");
        Ok(())
    }
}
