//! `wspubsub serve`'s settings: the flags (each with a `PUBSUB_*` environment fallback), the
//! optional TOML file (`file`) and `--print-config` (`print`), all from the one set of clap
//! definitions below; and those settings turned into the server's [`Options`].

pub(crate) mod file;
mod nats;
pub(crate) mod print;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bytesize::ByteSize;
use clap::Args;
use wspubsub_server::protocol::DEFAULT_MAX_MESSAGE_SIZE;
use wspubsub_server::{
    AdminToken, AuthKey, DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_MESSAGES,
    DEFAULT_HISTORY_TOTAL_BYTES, DEFAULT_MAX_HANDSHAKES, DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_SUBSCRIBER_QUEUE_BYTES, DEFAULT_SUBSCRIBER_QUEUE_MESSAGES, DEFAULT_TOPIC_QUEUE,
    DEFAULT_TOPIC_QUEUE_BYTES, IpNet, Options, SlowSubscriber, TlsIdentity,
};

/// Signature algorithms for a public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PublicKeyAlgorithm {
    /// RSA with SHA-256.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
}

/// `--slow-subscriber`: what a topic does when a subscriber's pending bound is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SlowSubscriberPolicy {
    /// Hold the topic's publishers until the subscriber takes more; cut it only when its
    /// socket takes no bytes for --write-timeout.
    Hold,
    /// Close the subscriber with 4000; publishers never wait for subscribers.
    Close,
}

impl From<SlowSubscriberPolicy> for SlowSubscriber {
    fn from(policy: SlowSubscriberPolicy) -> Self {
        match policy {
            SlowSubscriberPolicy::Hold => SlowSubscriber::Hold,
            SlowSubscriberPolicy::Close => SlowSubscriber::Close,
        }
    }
}

/// Flags of `wspubsub serve`; each falls back to the environment variable it names.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on. `:8080` (Go style) means every interface: `[::]:8080`, IPv6 and
    /// IPv4 where the system allows dual-stack sockets, else `0.0.0.0:8080`.
    #[arg(long, env = "PUBSUB_ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) addr: String,
    /// Close a peer not heard from (no pong, no frame) within this time; pings go out at 0.7x.
    #[arg(long, env = "PUBSUB_PONG_DEADLINE", default_value = "5s", value_parser = humantime::parse_duration)]
    pong_deadline: Duration,
    /// Close a subscriber as slow (4000) when its socket takes no bytes for this long while
    /// it has frames to write.
    #[arg(long, env = "PUBSUB_WRITE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    write_timeout: Duration,
    /// How long a close handshake, and the whole graceful shutdown, may take.
    #[arg(long, env = "PUBSUB_CLOSE_DEADLINE", default_value = "5s", value_parser = humantime::parse_duration)]
    close_deadline: Duration,
    /// Largest message a client may send (`1MiB`, `65536`); larger ones are closed with 1009.
    #[arg(long, env = "PUBSUB_MAX_MESSAGE_SIZE", default_value_t = DEFAULT_MAX_MESSAGE_SIZE, value_parser = parse_size)]
    max_message_size: usize,
    /// Most messages a subscriber may have pending (the batch it writes included); at the
    /// bound, --slow-subscriber says what happens.
    #[arg(long, env = "PUBSUB_SUBSCRIBER_QUEUE", default_value_t = DEFAULT_SUBSCRIBER_QUEUE_MESSAGES)]
    subscriber_queue: usize,
    /// Most bytes a subscriber may have pending (the batch it writes included); at the bound,
    /// --slow-subscriber says what happens.
    #[arg(long, env = "PUBSUB_SUBSCRIBER_QUEUE_BYTES", default_value_t = DEFAULT_SUBSCRIBER_QUEUE_BYTES, value_parser = parse_size)]
    subscriber_queue_bytes: usize,
    /// At a subscriber's pending bound: `hold` the topic's publishers until it takes more (a
    /// reader that reads loses nothing), or `close` it with 4000 (publishers never wait).
    #[arg(
        long,
        env = "PUBSUB_SLOW_SUBSCRIBER",
        value_enum,
        default_value = SlowSubscriber::default().as_str()
    )]
    slow_subscriber: SlowSubscriberPolicy,
    /// Messages a topic queues from its publishers before they are pushed back.
    #[arg(long, env = "PUBSUB_TOPIC_QUEUE", default_value_t = DEFAULT_TOPIC_QUEUE)]
    topic_queue: usize,
    /// Payload bytes a topic queues from its publishers before they are pushed back (at
    /// least --max-message-size).
    #[arg(long, env = "PUBSUB_TOPIC_QUEUE_BYTES", default_value_t = DEFAULT_TOPIC_QUEUE_BYTES, value_parser = parse_size)]
    topic_queue_bytes: usize,
    /// Time a client has to send its complete HTTP upgrade request.
    #[arg(long, env = "PUBSUB_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    handshake_timeout: Duration,
    /// Most connections still in their handshake (TLS, then the upgrade request) at once; past
    /// it the server accepts no more until one finishes or times out.
    #[arg(long, env = "PUBSUB_MAX_HANDSHAKES", default_value_t = DEFAULT_MAX_HANDSHAKES)]
    max_handshakes: usize,
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
    #[arg(long, env = "PUBSUB_MAX_HEADER_SIZE", default_value_t = DEFAULT_MAX_HEADER_SIZE, value_parser = parse_size)]
    max_header_size: usize,
    /// Messages each topic keeps after delivery, for subscribers that start from a past
    /// position (`?from=`, `?since=`); 0 turns history off.
    #[arg(long, env = "PUBSUB_HISTORY_MESSAGES", default_value_t = DEFAULT_HISTORY_MESSAGES)]
    history_messages: usize,
    /// Frame bytes each topic's history keeps.
    #[arg(long, env = "PUBSUB_HISTORY_BYTES", default_value_t = DEFAULT_HISTORY_BYTES, value_parser = parse_size)]
    history_bytes: usize,
    /// History drops messages older than this; a topic with history outlives its last client
    /// by as long.
    #[arg(long, env = "PUBSUB_HISTORY_AGE", default_value = "10m", value_parser = humantime::parse_duration)]
    history_age: Duration,
    /// Frame bytes all topics' histories keep together; past it the oldest messages across
    /// topics go first.
    #[arg(long, env = "PUBSUB_HISTORY_TOTAL_BYTES", default_value_t = DEFAULT_HISTORY_TOTAL_BYTES, value_parser = parse_size)]
    history_total_bytes: usize,
    /// Cluster mode (`--nats-url` and the other `--nats-*` flags).
    #[command(flatten)]
    nats: nats::NatsArgs,
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
    pub(crate) jwt_public_key: Option<PathBuf>,
    /// Algorithm of --jwt-public-key.
    #[arg(
        long,
        env = "PUBSUB_JWT_ALGORITHM",
        value_enum,
        default_value = "rs256"
    )]
    jwt_algorithm: PublicKeyAlgorithm,
    /// With token auth: audiences a token's `aud` must name one of, comma-separated or
    /// repeated; none given accepts any `aud` (or none).
    #[arg(long, env = "PUBSUB_JWT_AUDIENCE", value_delimiter = ',')]
    jwt_audience: Vec<String>,
    /// With token auth: issuers a token's `iss` must be one of, comma-separated or repeated;
    /// none given accepts any.
    #[arg(long, env = "PUBSUB_JWT_ISSUER", value_delimiter = ',')]
    jwt_issuer: Vec<String>,
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
    pub(crate) tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "PUBSUB_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Serve /healthz, /readyz and /metrics on this address instead of the main one (plain
    /// HTTP, also when the main listener has TLS).
    #[arg(long, env = "PUBSUB_ADMIN_ADDR")]
    admin_addr: Option<std::net::SocketAddr>,
    /// Serve the admin API and dashboard (/api/, /ui) on the main listener too, to requests
    /// with `Authorization: Bearer <token>` (also required on --admin-addr then). Prefer the
    /// environment variable: command lines are visible to other users.
    #[arg(long, env = "PUBSUB_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Read settings from this TOML file (keys are flag names: `max-topics = 100`); flags
    /// and the environment override it.
    #[arg(long, env = "PUBSUB_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Print the effective configuration (flags, environment, file, defaults) and exit; reads
    /// no key or certificate file.
    #[arg(long)]
    pub(crate) print_config: bool,
}

impl ServeArgs {
    /// The server options, checked ([`Options::validate`]), with the key and certificate
    /// files read.
    pub(crate) fn options(&self) -> anyhow::Result<Options> {
        let mut options = Options {
            pong_deadline: self.pong_deadline,
            write_timeout: self.write_timeout,
            close_deadline: self.close_deadline,
            max_message_size: self.max_message_size,
            subscriber_queue_messages: self.subscriber_queue,
            subscriber_queue_bytes: self.subscriber_queue_bytes,
            slow_subscriber: self.slow_subscriber.into(),
            topic_queue: self.topic_queue,
            topic_queue_bytes: self.topic_queue_bytes,
            handshake_timeout: self.handshake_timeout,
            max_handshakes: self.max_handshakes,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            max_topics: self.max_topics,
            max_subscribers_per_topic: self.max_subscribers_per_topic,
            allowed_origins: self.allowed_origins.clone(),
            max_header_size: self.max_header_size,
            auth: self.auth_key()?,
            jwt_audience: self.jwt_audience.clone(),
            jwt_issuer: self.jwt_issuer.clone(),
            admin_addr: self.admin_addr,
            admin_token: self.admin_token.clone().map(AdminToken::new),
            tls: self.tls_identity()?,
            trusted_proxies: self.trusted_proxies.clone(),
            history_messages: self.history_messages,
            history_bytes: self.history_bytes,
            history_age: self.history_age,
            history_total_bytes: self.history_total_bytes,
            ..Options::default()
        };
        self.nats.apply(&mut options)?;
        options.validate()?;
        Ok(options)
    }

    /// The TLS certificate and key, if both are given.
    pub(crate) fn tls_identity(&self) -> anyhow::Result<Option<TlsIdentity>> {
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
    pub(crate) fn auth_key(&self) -> anyhow::Result<Option<AuthKey>> {
        // clap checks the conflict on the command line only, not between file values.
        anyhow::ensure!(
            self.jwt_secret.is_none() || self.jwt_public_key.is_none(),
            "--jwt-secret and --jwt-public-key cannot be used together: give one"
        );
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

/// A size in bytes, `65536` or with a unit (`64KiB`, `1MiB`), that fits this machine.
fn parse_size(text: &str) -> Result<usize, String> {
    let size: ByteSize = text.trim().parse()?;
    usize::try_from(size.as_u64()).map_err(|_| format!("{text:?} is too large for this machine"))
}

/// A network (`10.0.0.0/8`) or a single address (`10.0.0.1`, meaning `/32` or `/128`).
fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is neither an IP address nor a network like 10.0.0.0/8"))
}

/// `serve`'s flags alone, as the unit tests parse them.
#[cfg(test)]
#[derive(Debug, clap::Parser)]
pub(crate) struct Wrapper {
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        Wrapper::try_parse_from([&["wspubsub"], args].concat()).map(|wrapper| wrapper.serve)
    }

    #[test]
    fn defaults_match_the_library_defaults() {
        let args = parse(&[]).expect("defaults parse");
        assert_eq!(args.options().expect("valid"), Options::default());
        assert_eq!(args.addr, "127.0.0.1:8080");
    }

    #[test]
    fn durations_and_sizes_parse() {
        let args =
            parse(&["--pong-deadline", "250ms", "--max-message-size", "64KiB"]).expect("parse");
        let options = args.options().expect("valid");
        assert_eq!(options.pong_deadline, Duration::from_millis(250));
        assert_eq!(options.max_message_size, 64 * 1024);
    }

    #[test]
    fn token_claims_and_handshake_bounds_reach_the_options() {
        let args = parse(&[
            "--jwt-audience",
            "api,web",
            "--jwt-audience",
            "cli",
            "--jwt-issuer",
            "https://id.example.com",
            "--max-handshakes",
            "64",
            "--topic-queue-bytes",
            "2MiB",
        ])
        .expect("parse");
        let options = args.options().expect("valid");
        assert_eq!(options.jwt_audience, ["api", "web", "cli"]);
        assert_eq!(options.slow_subscriber, SlowSubscriber::Hold, "the default");
        assert_eq!(options.jwt_issuer, ["https://id.example.com"]);
        assert_eq!(options.max_handshakes, 64);
        assert_eq!(options.topic_queue_bytes, 2 << 20);
    }

    #[test]
    fn history_flags_reach_the_options() {
        let defaults = parse(&[]).expect("parse").options().expect("valid");
        assert_eq!(defaults.history_age, wspubsub_server::DEFAULT_HISTORY_AGE);
        let options = parse(&[
            "--history-messages",
            "0",
            "--history-bytes",
            "1MiB",
            "--history-age",
            "90s",
            "--history-total-bytes",
            "8MiB",
        ])
        .expect("parse")
        .options()
        .expect("valid");
        assert_eq!(options.history_messages, 0);
        assert_eq!(options.history_bytes, 1 << 20);
        assert_eq!(options.history_age, Duration::from_secs(90));
        assert_eq!(options.history_total_bytes, 8 << 20);
    }

    #[test]
    fn out_of_range_values_are_refused_before_the_server_starts() {
        let error = parse(&["--pong-deadline", "1000000000y"])
            .expect("parse")
            .options()
            .expect_err("an absurd deadline");
        assert!(error.to_string().contains("pong-deadline"), "{error}");
    }

    #[test]
    fn auth_flags_choose_the_key() {
        let secret = parse(&["--jwt-secret", "s3cret"]).expect("parse");
        assert_eq!(
            secret.options().expect("valid").auth,
            Some(AuthKey::Hs256(b"s3cret".to_vec()))
        );
        assert_eq!(
            parse(&[]).expect("parse").options().expect("valid").auth,
            None
        );
        assert!(
            parse(&["--jwt-secret", "a", "--jwt-public-key", "k.pem"]).is_err(),
            "one key at a time"
        );
        let missing = parse(&["--jwt-public-key", "/nonexistent/key.pem"]).expect("parse");
        let error = missing.options().expect_err("unreadable key").to_string();
        assert!(error.contains("--jwt-public-key"), "{error}");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let args =
            parse(&["--trusted-proxies", "10.0.0.0/8, 192.168.1.7,fd00::/8"]).expect("parse");
        let proxies: Vec<String> = args
            .options()
            .expect("valid")
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]);
        assert!(parse(&["--trusted-proxies", "lb.internal"]).is_err());
    }

    #[test]
    fn tls_flags_come_in_pairs() {
        let options = |args: &[&str]| parse(args).expect("parse").options();
        let error = options(&["--tls-cert", "cert.pem"]).expect_err("a certificate without a key");
        assert!(
            error.to_string().contains("give both or neither"),
            "{error}"
        );
        let error = options(&[
            "--tls-cert",
            "/nonexistent/c.pem",
            "--tls-key",
            "/nonexistent/k.pem",
        ])
        .expect_err("unreadable files");
        assert!(error.to_string().contains("--tls-cert"), "{error}");
        assert_eq!(options(&[]).expect("no TLS").tls, None);
    }

    #[test]
    fn slow_subscriber_policy_is_hold_or_close() {
        let policy =
            |args: &[&str]| parse(args).map(|a| a.options().expect("valid").slow_subscriber);
        assert_eq!(
            policy(&["--slow-subscriber", "close"]).ok(),
            Some(SlowSubscriber::Close)
        );
        assert_eq!(
            policy(&["--slow-subscriber", "hold"]).ok(),
            Some(SlowSubscriber::Hold)
        );
        assert!(policy(&["--slow-subscriber", "drop"]).is_err());
    }

    #[test]
    fn the_admin_token_reaches_the_options_and_must_not_be_empty() {
        let options = parse(&["--admin-token", "s3cret"])
            .expect("parse")
            .options()
            .expect("valid");
        assert_eq!(options.admin_token, Some(AdminToken::new("s3cret")));
        let error = parse(&["--admin-token", ""])
            .expect("parse")
            .options()
            .expect_err("an empty token");
        assert!(error.to_string().contains("admin-token"), "{error}");
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(parse(&["--write-timeout", "soon"]).is_err());
        assert!(parse(&["--max-message-size", "lots"]).is_err());
    }
}
