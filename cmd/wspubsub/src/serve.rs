//! `wspubsub serve`: flags and environment to [`Options`], the server's life from bind to
//! graceful stop, and one info log line per event.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bytesize::ByteSize;
use clap::Args;
use tokio::sync::broadcast::error::RecvError;
use wspubsub_server::{AuthKey, Event, IpNet, Options, Server, ServerHandle, TlsIdentity};

/// Signature algorithms for a public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PublicKeyAlgorithm {
    /// RSA with SHA-256.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
}

/// Flags of `wspubsub serve`; each falls back to the environment variable it names.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on. `:8080` (Go style) means every interface.
    #[arg(long, env = "PUBSUB_ADDR", default_value = "127.0.0.1:8080")]
    addr: String,
    /// Close a peer not heard from (no pong, no frame) within this time; pings go out at 0.7x.
    #[arg(long, env = "PUBSUB_PONG_DEADLINE", default_value = "5s", value_parser = humantime::parse_duration)]
    pong_deadline: Duration,
    /// Close a subscriber as slow (4000) when one batch of writes takes longer than this.
    #[arg(long, env = "PUBSUB_WRITE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    write_timeout: Duration,
    /// How long a close handshake, and the whole graceful shutdown, may take.
    #[arg(long, env = "PUBSUB_CLOSE_DEADLINE", default_value = "5s", value_parser = humantime::parse_duration)]
    close_deadline: Duration,
    /// Largest message a client may send (`1MiB`, `65536`); larger ones are closed with 1009.
    #[arg(long, env = "PUBSUB_MAX_MESSAGE_SIZE", default_value = "1MiB")]
    max_message_size: ByteSize,
    /// Most messages a subscriber may have pending before it is closed as slow (4000).
    #[arg(long, env = "PUBSUB_SUBSCRIBER_QUEUE", default_value_t = wspubsub_server::DEFAULT_SUBSCRIBER_QUEUE_MESSAGES)]
    subscriber_queue: usize,
    /// Most bytes a subscriber may have pending before it is closed as slow (4000).
    #[arg(long, env = "PUBSUB_SUBSCRIBER_QUEUE_BYTES", default_value = "64MiB")]
    subscriber_queue_bytes: ByteSize,
    /// Messages a topic queues from its publishers before they are pushed back.
    #[arg(long, env = "PUBSUB_TOPIC_QUEUE", default_value_t = wspubsub_server::DEFAULT_TOPIC_QUEUE)]
    topic_queue: usize,
    /// Time a client has to send its complete HTTP upgrade request.
    #[arg(long, env = "PUBSUB_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    handshake_timeout: Duration,
    /// Most clients at once (0: no limit); past it new clients get 503.
    #[arg(long, env = "PUBSUB_MAX_CONNECTIONS", default_value_t = 0)]
    max_connections: usize,
    /// Most clients at once from one IP address (0: no limit); past it they get 429.
    #[arg(long, env = "PUBSUB_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    max_connections_per_ip: usize,
    /// Most topics at once (0: no limit); a client of a new topic past it gets 503.
    #[arg(long, env = "PUBSUB_MAX_TOPICS", default_value_t = 0)]
    max_topics: usize,
    /// Most subscribers of one topic (0: no limit); past it new subscribers get 503.
    #[arg(long, env = "PUBSUB_MAX_SUBSCRIBERS_PER_TOPIC", default_value_t = 0)]
    max_subscribers_per_topic: usize,
    /// Largest HTTP request head accepted (at least 8KiB); larger ones get 431.
    #[arg(long, env = "PUBSUB_MAX_HEADER_SIZE", default_value = "16KiB")]
    max_header_size: ByteSize,
    /// Token auth with HS256: the shared secret (prefer the environment variable: command lines
    /// are visible to other users).
    #[arg(
        long,
        env = "PUBSUB_JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "jwt_public_key"
    )]
    jwt_secret: Option<String>,
    /// Token auth with a public key: a PEM file, used with --jwt-algorithm; read again on
    /// SIGHUP (a rotated key, no restart).
    #[arg(long, env = "PUBSUB_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// Algorithm of --jwt-public-key.
    #[arg(
        long,
        env = "PUBSUB_JWT_ALGORITHM",
        value_enum,
        default_value = "rs256"
    )]
    jwt_algorithm: PublicKeyAlgorithm,
    /// Browser origins allowed to connect, comma-separated: exact origins
    /// (`https://app.example.com`) or `*.example.com`; none given allows all. Requests
    /// without an `Origin` header (non-browser clients) always pass.
    #[arg(long, env = "PUBSUB_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` names the client, comma-separated addresses or networks
    /// (`10.0.0.0/8`): the per-IP limit and the logs then see the client, not the proxy.
    #[arg(long, env = "PUBSUB_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    trusted_proxies: Vec<IpNet>,
    /// Serve `wss://` (TLS) with this PEM certificate chain (leaf first); needs --tls-key.
    /// Both files are read again on SIGHUP (a renewed certificate, no restart).
    #[arg(long, env = "PUBSUB_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "PUBSUB_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Serve /healthz, /readyz and /metrics on this address instead of the main one (plain
    /// HTTP, also when the main listener has TLS).
    #[arg(long, env = "PUBSUB_ADMIN_ADDR")]
    admin_addr: Option<std::net::SocketAddr>,
    /// Read settings from this TOML file (keys are flag names: `max-topics = 100`); flags
    /// and the environment override it.
    #[arg(long, env = "PUBSUB_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective configuration (flags, environment, file, defaults) and exit.
    #[arg(long)]
    print_config: bool,
}

impl ServeArgs {
    /// The effective settings as a TOML file would hold them (secrets redacted).
    fn render(&self) -> String {
        let duration = |d: Duration| format!("{:?}", humantime::format_duration(d).to_string());
        let mut lines = vec![
            format!("addr = {:?}", self.addr),
            format!("pong-deadline = {}", duration(self.pong_deadline)),
            format!("write-timeout = {}", duration(self.write_timeout)),
            format!("close-deadline = {}", duration(self.close_deadline)),
            format!("handshake-timeout = {}", duration(self.handshake_timeout)),
            format!("max-message-size = {}", self.max_message_size.as_u64()),
            format!("max-header-size = {}", self.max_header_size.as_u64()),
            format!("subscriber-queue = {}", self.subscriber_queue),
            format!(
                "subscriber-queue-bytes = {}",
                self.subscriber_queue_bytes.as_u64()
            ),
            format!("topic-queue = {}", self.topic_queue),
            format!("max-connections = {}", self.max_connections),
            format!("max-connections-per-ip = {}", self.max_connections_per_ip),
            format!("max-topics = {}", self.max_topics),
            format!(
                "max-subscribers-per-topic = {}",
                self.max_subscribers_per_topic
            ),
            format!("allowed-origins = {:?}", self.allowed_origins),
            format!(
                "trusted-proxies = {:?}",
                self.trusted_proxies
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
        ];
        if let Some(admin) = self.admin_addr {
            lines.push(format!("admin-addr = \"{admin}\""));
        }
        for (key, path) in [("tls-cert", &self.tls_cert), ("tls-key", &self.tls_key)] {
            if let Some(path) = path {
                lines.push(format!("{key} = {:?}", path.display().to_string()));
            }
        }
        if self.jwt_secret.is_some() {
            lines.push("jwt-secret = \"<redacted>\"".to_owned());
        }
        if let Some(path) = &self.jwt_public_key {
            lines.push(format!("jwt-public-key = {:?}", path.display().to_string()));
            lines.push(format!(
                "jwt-algorithm = {:?}",
                format!("{:?}", self.jwt_algorithm).to_lowercase()
            ));
        }
        lines.join("\n") + "\n"
    }

    /// The listen address, with Go's `:port` shorthand expanded.
    fn listen_addr(&self) -> String {
        match self.addr.strip_prefix(':') {
            Some(port) => format!("0.0.0.0:{port}"),
            None => self.addr.clone(),
        }
    }

    fn options(&self) -> anyhow::Result<Options> {
        let bytes = |size: ByteSize, name: &str| {
            usize::try_from(size.as_u64())
                .with_context(|| format!("--{name} is too large for this machine"))
        };
        Ok(Options {
            pong_deadline: self.pong_deadline,
            write_timeout: self.write_timeout,
            close_deadline: self.close_deadline,
            max_message_size: bytes(self.max_message_size, "max-message-size")?,
            subscriber_queue_messages: self.subscriber_queue,
            subscriber_queue_bytes: bytes(self.subscriber_queue_bytes, "subscriber-queue-bytes")?,
            topic_queue: self.topic_queue,
            handshake_timeout: self.handshake_timeout,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            max_topics: self.max_topics,
            max_subscribers_per_topic: self.max_subscribers_per_topic,
            allowed_origins: self.allowed_origins.clone(),
            max_header_size: bytes(self.max_header_size, "max-header-size")?,
            auth: self.auth_key()?,
            admin_addr: self.admin_addr,
            tls: self.tls_identity()?,
            trusted_proxies: self.trusted_proxies.clone(),
            ..Options::default()
        })
    }

    /// The TLS certificate and key, if both are given.
    fn tls_identity(&self) -> anyhow::Result<Option<TlsIdentity>> {
        let read = |path: &Path, flag: &str| {
            std::fs::read(path).with_context(|| format!("cannot read --{flag} {}", path.display()))
        };
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(TlsIdentity::from_pem(
                read(cert, "tls-cert")?,
                read(key, "tls-key")?,
            ))),
            _ => anyhow::bail!("--tls-cert and --tls-key go together: give both or neither"),
        }
    }

    /// The token key, if auth is configured.
    fn auth_key(&self) -> anyhow::Result<Option<AuthKey>> {
        if let Some(secret) = &self.jwt_secret {
            anyhow::ensure!(!secret.is_empty(), "--jwt-secret must not be empty");
            return Ok(Some(AuthKey::Hs256(secret.clone().into_bytes())));
        }
        let Some(path) = &self.jwt_public_key else {
            return Ok(None);
        };
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read --jwt-public-key {}", path.display()))?;
        Ok(Some(match self.jwt_algorithm {
            PublicKeyAlgorithm::Rs256 => AuthKey::Rs256(pem),
            PublicKeyAlgorithm::Es256 => AuthKey::Es256(pem),
        }))
    }
}

/// A network (`10.0.0.0/8`) or a single address (`10.0.0.1`, meaning `/32` or `/128`).
fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is neither an IP address nor a network like 10.0.0.0/8"))
}

/// Runs the server until SIGINT or SIGTERM, then stops it gracefully.
pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let options = args.options()?;
    if args.print_config {
        print!("{}", args.render());
        return Ok(());
    }
    let addr = args.listen_addr();
    let server = Server::bind(addr.as_str(), options)
        .await
        .with_context(|| format!("cannot start on {addr}"))?;
    let local = server.local_addr().context("listen address")?;
    let handle = server.handle();
    tokio::spawn(log_events(handle.clone()));
    tokio::spawn(stop_on_signal(handle.clone()));
    #[cfg(unix)]
    if args.tls_cert.is_some() || args.jwt_public_key.is_some() {
        tokio::spawn(reload_on_hangup(handle, args.clone()));
    }
    let scheme = if args.tls_cert.is_some() { "wss" } else { "ws" };
    tracing::info!(addr = %local, scheme, "wspubsub listening; every URL path is a topic");
    if let Some(admin) = server.admin_addr().transpose().context("admin address")? {
        tracing::info!(addr = %admin, "health and metrics endpoints listening");
    }
    server.run().await;
    tracing::info!("wspubsub stopped");
    Ok(())
}

/// Shuts the server down on the first SIGINT (Ctrl-C) or SIGTERM.
async fn stop_on_signal(handle: ServerHandle) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
    handle.shutdown();
}

/// On every SIGHUP, re-reads the files that may be renewed while the server runs, the TLS
/// certificate and key and the token public key, and uses them from the next connection on;
/// unusable files leave the current ones in place.
#[cfg(unix)]
async fn reload_on_hangup(handle: ServerHandle, args: ServeArgs) {
    use tokio::signal::unix::{SignalKind, signal};

    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGHUP: certificate and key files cannot be reloaded");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        if args.tls_cert.is_some() {
            let reloaded = args.tls_identity().and_then(|identity| {
                let identity = identity.context("no TLS certificate configured")?;
                Ok(handle.reload_tls(&identity)?)
            });
            report_reload("TLS certificate", reloaded);
        }
        if args.jwt_public_key.is_some() {
            let reloaded = args.auth_key().and_then(|key| {
                let key = key.context("no token key configured")?;
                Ok(handle.reload_auth(&key)?)
            });
            report_reload("token public key", reloaded);
        }
    }
}

/// Logs how reloading `what` went.
#[cfg(unix)]
fn report_reload(what: &str, reloaded: anyhow::Result<()>) {
    match reloaded {
        Ok(()) => tracing::info!("SIGHUP: {what} reloaded"),
        Err(error) => tracing::warn!(
            error = format!("{error:#}"),
            "SIGHUP: {what} not reloaded; still using the previous one"
        ),
    }
}

/// Writes one info line per server event.
async fn log_events(handle: ServerHandle) {
    let mut events = handle.events();
    loop {
        match events.recv().await {
            Ok(event) => log_event(&event),
            Err(RecvError::Lagged(missed)) => tracing::warn!(missed, "event log fell behind"),
            Err(RecvError::Closed) => return,
        }
    }
}

fn log_event(event: &Event) {
    let client = event.client_id.as_deref().unwrap_or("-");
    let detail = event.detail.as_deref().unwrap_or("");
    tracing::info!(event = %event.kind, topic = %event.topic, client, detail);
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn defaults_match_the_library_defaults() {
        let args = Wrapper::try_parse_from(["wspubsub"])
            .expect("defaults parse")
            .serve;
        let options = args.options().expect("valid");
        let defaults = Options::default();
        assert_eq!(options, defaults);
        assert_eq!(args.listen_addr(), "127.0.0.1:8080");
    }

    #[test]
    fn durations_sizes_and_go_style_addresses_parse() {
        let args = Wrapper::try_parse_from([
            "wspubsub",
            "--addr",
            ":9000",
            "--pong-deadline",
            "250ms",
            "--max-message-size",
            "64KiB",
        ])
        .expect("parse")
        .serve;
        assert_eq!(args.listen_addr(), "0.0.0.0:9000");
        let options = args.options().expect("valid");
        assert_eq!(options.pong_deadline, Duration::from_millis(250));
        assert_eq!(options.max_message_size, 64 * 1024);
    }

    #[test]
    fn auth_flags_choose_the_key() {
        let parse = |args: &[&str]| Wrapper::try_parse_from([&["wspubsub"], args].concat());
        let secret = parse(&["--jwt-secret", "s3cret"]).expect("parse").serve;
        assert_eq!(
            secret.options().expect("valid").auth,
            Some(AuthKey::Hs256(b"s3cret".to_vec()))
        );
        assert_eq!(
            parse(&[])
                .expect("parse")
                .serve
                .options()
                .expect("valid")
                .auth,
            None
        );
        assert!(
            parse(&["--jwt-secret", "a", "--jwt-public-key", "k.pem"]).is_err(),
            "one key at a time"
        );
        let missing = parse(&["--jwt-public-key", "/nonexistent/key.pem"])
            .expect("parse")
            .serve;
        let error = missing.options().expect_err("unreadable key").to_string();
        assert!(error.contains("--jwt-public-key"), "{error}");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let args = Wrapper::try_parse_from([
            "wspubsub",
            "--trusted-proxies",
            "10.0.0.0/8, 192.168.1.7,fd00::/8",
        ])
        .expect("parse")
        .serve;
        let proxies: Vec<String> = args
            .options()
            .expect("valid")
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]);
        assert!(Wrapper::try_parse_from(["wspubsub", "--trusted-proxies", "lb.internal"]).is_err());
    }

    #[test]
    fn tls_flags_come_in_pairs() {
        let parse = |args: &[&str]| {
            Wrapper::try_parse_from([&["wspubsub"], args].concat())
                .expect("parse")
                .serve
                .options()
        };
        let error = parse(&["--tls-cert", "cert.pem"]).expect_err("a certificate without a key");
        assert!(
            error.to_string().contains("give both or neither"),
            "{error}"
        );
        let error = parse(&[
            "--tls-cert",
            "/nonexistent/c.pem",
            "--tls-key",
            "/nonexistent/k.pem",
        ])
        .expect_err("unreadable files");
        assert!(error.to_string().contains("--tls-cert"), "{error}");
        assert_eq!(parse(&[]).expect("no TLS").tls, None);
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(Wrapper::try_parse_from(["wspubsub", "--write-timeout", "soon"]).is_err());
        assert!(Wrapper::try_parse_from(["wspubsub", "--max-message-size", "lots"]).is_err());
    }
}
