//! Server options: every knob an operator can turn, with the defaults the README documents.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use wspubsub_cluster::{Credentials, Storage};

use crate::auth::AuthKey;
use crate::tls::TlsIdentity;
use wspubsub_protocol::{DEFAULT_CLOSE_DEADLINE, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_PONG_DEADLINE};

/// Default bound on a subscriber's pending messages (as in NATS: generous, so that only a
/// subscriber that really stopped is cut, never a healthy one in a burst).
pub const DEFAULT_SUBSCRIBER_QUEUE_MESSAGES: usize = 65_536;

/// Default bound on a subscriber's pending bytes (64 MiB, as in NATS).
pub const DEFAULT_SUBSCRIBER_QUEUE_BYTES: usize = 64 << 20;

/// Default bound on a topic's inbound queue; publishers wait when it is full.
pub const DEFAULT_TOPIC_QUEUE: usize = 1024;

/// Default bound on the payload bytes a topic's inbound queue holds (16 MiB).
pub const DEFAULT_TOPIC_QUEUE_BYTES: usize = 16 << 20;

/// Default time a subscriber's socket may take no bytes, while it has some to write, before the
/// subscriber is cut as slow.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time a client has to send its complete HTTP upgrade request.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default cap on an HTTP request head (16 KiB: browsers send a few hundred bytes to a few
/// KiB, cookies included).
pub const DEFAULT_MAX_HEADER_SIZE: usize = 16 << 10;

/// Default bound on connections still in their handshake.
pub const DEFAULT_MAX_HANDSHAKES: usize = 512;

/// The smallest request-head cap the HTTP layer (hyper) supports.
pub const MIN_MAX_HEADER_SIZE: usize = 8192;

/// Default most messages a topic's history keeps (0 turns history off).
pub const DEFAULT_HISTORY_MESSAGES: usize = 1000;

/// Default most frame bytes a topic's history keeps (64 MiB): as much as a subscriber may lag
/// behind (`DEFAULT_SUBSCRIBER_QUEUE_BYTES`), so that one cut at that bound, or whose
/// connection broke there, can resume from history without a gap.
pub const DEFAULT_HISTORY_BYTES: usize = DEFAULT_SUBSCRIBER_QUEUE_BYTES;

/// Default age past which history evicts a message; also how long a topic with history
/// outlives its last client.
pub const DEFAULT_HISTORY_AGE: Duration = Duration::from_secs(600);

/// Default most frame bytes all topics' histories keep together (256 MiB).
pub const DEFAULT_HISTORY_TOTAL_BYTES: usize = 256 << 20;

/// The most copies of a message the cluster's stream may keep ([`Options::nats_replicas`]):
/// JetStream's own maximum.
pub const MAX_NATS_REPLICAS: usize = 5;

/// The longest duration any option may be (one year): far beyond any sensible setting, and
/// small enough that adding it to an `Instant`, or multiplying it for a ping interval, can
/// never overflow.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// What a topic does when a subscriber's backlog reaches its bound
/// ([`Options::subscriber_queue_messages`], [`Options::subscriber_queue_bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowSubscriber {
    /// The topic stops taking messages from its publishers (they are pushed back through TCP,
    /// as by a full topic queue) until the subscribers holding the backlog take more. A
    /// subscriber that reads, however slowly, loses nothing; one whose socket takes no bytes
    /// for the write timeout is closed with 4000 and holds no one back any more.
    #[default]
    Hold,
    /// The subscriber is closed with 4000 at the bound; publishers never wait for
    /// subscribers (fan-out to many untrusted clients).
    Close,
}

impl SlowSubscriber {
    /// The name the command line and the config file use.
    pub fn as_str(self) -> &'static str {
        match self {
            SlowSubscriber::Hold => "hold",
            SlowSubscriber::Close => "close",
        }
    }
}

/// How the server treats its connections. `Options::default()` is what `wspubsub serve` runs
/// with when no flag is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// A peer that is heard from (pong or any frame) less often than this is closed with 4001.
    /// The server pings at 0.7x this interval.
    pub pong_deadline: Duration,
    /// A subscriber whose socket takes no bytes for this long, while it has frames to write,
    /// is closed as slow (4000), so that it never holds on to resources (or, with
    /// [`SlowSubscriber::Hold`], its topic's publishers) while stalled. A slow reader that
    /// keeps taking bytes is not cut, however long a batch takes.
    pub write_timeout: Duration,
    /// How long a graceful close (close frame out, echo back) may take; also the bound on how
    /// long shutdown waits for connections to finish.
    pub close_deadline: Duration,
    /// Largest message a client may send; larger ones close the client with 1009.
    pub max_message_size: usize,
    /// Bound on a subscriber's pending messages (what it has yet to write, the batch it is
    /// writing included); at it, [`Options::slow_subscriber`] says what happens.
    pub subscriber_queue_messages: usize,
    /// Bound on a subscriber's pending bytes of frames; at it, [`Options::slow_subscriber`]
    /// says what happens.
    pub subscriber_queue_bytes: usize,
    /// What a topic does when a subscriber reaches its pending bound: hold the publishers
    /// (the default) or close the subscriber.
    pub slow_subscriber: SlowSubscriber,
    /// Bound on a topic's inbound queue, in messages; publishers are pushed back past it.
    pub topic_queue: usize,
    /// Bound on a topic's inbound queue, in payload bytes; publishers are pushed back past it.
    pub topic_queue_bytes: usize,
    /// Time a client has to send a complete HTTP request head (guards against slowloris).
    pub handshake_timeout: Duration,
    /// Most clients at once (0: no limit); past it new clients get 503.
    pub max_connections: usize,
    /// Most clients at once from one IP address (0: no limit); past it they get 429.
    pub max_connections_per_ip: usize,
    /// Most topics at once (0: no limit); a client of a new topic past it gets 503.
    pub max_topics: usize,
    /// Most subscribers of one topic (0: no limit); past it new subscribers get 503.
    pub max_subscribers_per_topic: usize,
    /// Largest HTTP request head (request line and headers) accepted, in bytes; larger ones get
    /// 431. At least 8192.
    pub max_header_size: usize,
    /// A separate listen address for `/healthz`, `/readyz` and `/metrics`; when set, the main
    /// listener no longer answers them (so they need not be exposed with the topics).
    pub admin_addr: Option<std::net::SocketAddr>,
    /// Serves the admin API and dashboard (`/api/...`, `/ui`) on the main listener too, to
    /// requests with `Authorization: Bearer <token>`; `None` (the default) keeps them on the
    /// admin listener alone, and with a token the admin listener asks for it as well.
    pub admin_token: Option<AdminToken>,
    /// Token auth: the key JWTs are verified with; `None` (the default) turns auth off.
    pub auth: Option<AuthKey>,
    /// Browser origins allowed to connect: exact origins or `*.domain` wildcards; empty allows
    /// all. Requests without an `Origin` header (non-browser clients) always pass.
    pub allowed_origins: Vec<String>,
    /// Serve `wss://` with this certificate and key; `None` serves plain `ws://`. The admin
    /// listener (`admin_addr`) stays plain HTTP.
    pub tls: Option<TlsIdentity>,
    /// Proxies (load balancers) whose `X-Forwarded-For` names the client: the address the
    /// per-address limit counts and the logs show. Empty (the default) trusts no one, so a
    /// client cannot claim another address.
    pub trusted_proxies: Vec<IpNet>,
    /// With token auth: the audiences a token's `aud` must name one of; empty accepts any
    /// `aud` (or none), as most servers do.
    pub jwt_audience: Vec<String>,
    /// With token auth: the issuers a token's `iss` must be one of; empty accepts any.
    pub jwt_issuer: Vec<String>,
    /// Most connections still in their handshake (TLS, then the HTTP upgrade request) at once;
    /// past it the server stops accepting until one finishes or times out, so that a flood of
    /// idle TCP connections cannot take every file descriptor.
    pub max_handshakes: usize,
    /// Most messages a topic's history keeps after delivery, for subscribers that start from
    /// a past position; 0 turns history off.
    pub history_messages: usize,
    /// Most frame bytes a topic's history keeps.
    pub history_bytes: usize,
    /// History evicts messages older than this; a topic with history outlives its last
    /// client by as long.
    pub history_age: Duration,
    /// Most frame bytes all topics' histories keep together; past it the oldest messages
    /// across topics are evicted first.
    pub history_total_bytes: usize,
    /// Cluster mode: NATS server URLs (comma-separated) whose JetStream carries every topic
    /// between the nodes sharing them; `None` (the default) serves alone, in memory.
    pub nats_url: Option<String>,
    /// Cluster mode: how this node proves who it is to NATS (a `.creds` file, user and
    /// password, or a token); none by default.
    pub nats_credentials: Credentials,
    /// Cluster mode: a PEM file of CA certificates to trust, beyond the system's, for
    /// `tls://` NATS URLs.
    pub nats_ca_file: Option<PathBuf>,
    /// Cluster mode: where the stream keeps messages: memory (the default, fast, lost when
    /// NATS restarts) or file (survives restarts). JetStream cannot change it once the stream
    /// exists.
    pub nats_storage: Storage,
    /// Cluster mode: copies of each message in a NATS cluster (1 to [`MAX_NATS_REPLICAS`];
    /// 3 survives the loss of one NATS server).
    pub nats_replicas: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pong_deadline: DEFAULT_PONG_DEADLINE,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            close_deadline: DEFAULT_CLOSE_DEADLINE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            subscriber_queue_messages: DEFAULT_SUBSCRIBER_QUEUE_MESSAGES,
            subscriber_queue_bytes: DEFAULT_SUBSCRIBER_QUEUE_BYTES,
            slow_subscriber: SlowSubscriber::Hold,
            topic_queue: DEFAULT_TOPIC_QUEUE,
            topic_queue_bytes: DEFAULT_TOPIC_QUEUE_BYTES,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_connections: 0,
            max_connections_per_ip: 0,
            max_topics: 0,
            max_subscribers_per_topic: 0,
            allowed_origins: Vec::new(),
            auth: None,
            tls: None,
            trusted_proxies: Vec::new(),
            admin_addr: None,
            admin_token: None,
            max_header_size: DEFAULT_MAX_HEADER_SIZE,
            jwt_audience: Vec::new(),
            jwt_issuer: Vec::new(),
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            history_messages: DEFAULT_HISTORY_MESSAGES,
            history_bytes: DEFAULT_HISTORY_BYTES,
            history_age: DEFAULT_HISTORY_AGE,
            history_total_bytes: DEFAULT_HISTORY_TOTAL_BYTES,
            nats_url: None,
            nats_credentials: Credentials::None,
            nats_ca_file: None,
            nats_storage: Storage::Memory,
            nats_replicas: 1,
        }
    }
}

/// The secret that opens the admin API ([`Options::admin_token`]); never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// A token; an empty one is refused by [`Options::validate`].
    pub fn new(token: impl Into<String>) -> Self {
        AdminToken(token.into())
    }

    /// The token's bytes, for comparing in constant time.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("AdminToken(<redacted>)")
    }
}

/// An option value the server cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid option {name}: {problem}")]
pub struct InvalidOption {
    /// The option's name, as the command line spells it.
    pub name: &'static str,
    /// What is wrong with its value.
    pub problem: &'static str,
}

impl Options {
    /// Checks that the values make sense together and are in range (durations above zero and
    /// at most a year, so that no deadline arithmetic can overflow); [`crate::Server::bind`]
    /// calls it.
    pub fn validate(&self) -> Result<(), InvalidOption> {
        let duration = |name, duration: Duration| {
            let problem = if duration.is_zero() {
                "must be greater than zero"
            } else if duration > MAX_DURATION {
                "must be at most a year"
            } else {
                return Ok(());
            };
            Err(InvalidOption { name, problem })
        };
        duration("pong-deadline", self.pong_deadline)?;
        duration("write-timeout", self.write_timeout)?;
        duration("close-deadline", self.close_deadline)?;
        duration("handshake-timeout", self.handshake_timeout)?;
        duration("history-age", self.history_age)?;
        let at_least_one = |name, value: usize| {
            if value == 0 {
                Err(InvalidOption {
                    name,
                    problem: "must be at least 1",
                })
            } else {
                Ok(())
            }
        };
        at_least_one("max-message-size", self.max_message_size)?;
        at_least_one("subscriber-queue", self.subscriber_queue_messages)?;
        at_least_one("topic-queue", self.topic_queue)?;
        at_least_one("max-handshakes", self.max_handshakes)?;
        at_least_one("history-bytes", self.history_bytes)?;
        at_least_one("history-total-bytes", self.history_total_bytes)?;
        if self.max_header_size < MIN_MAX_HEADER_SIZE {
            return Err(InvalidOption {
                name: "max-header-size",
                problem: "must be at least 8192 bytes",
            });
        }
        if self.topic_queue_bytes < self.max_message_size {
            return Err(InvalidOption {
                name: "topic-queue-bytes",
                problem: "must be at least max-message-size, or no message could ever be queued",
            });
        }
        if self.subscriber_queue_bytes < self.max_message_size {
            return Err(InvalidOption {
                name: "subscriber-queue-bytes",
                problem: "must be at least max-message-size, or no message could ever be queued",
            });
        }
        if self
            .admin_token
            .as_ref()
            .is_some_and(|token| token.as_bytes().is_empty())
        {
            return Err(InvalidOption {
                name: "admin-token",
                problem: "must not be empty",
            });
        }
        self.validate_cluster()
    }

    /// The cluster-mode options: a replica count JetStream takes, no empty credential.
    fn validate_cluster(&self) -> Result<(), InvalidOption> {
        if !(1..=MAX_NATS_REPLICAS).contains(&self.nats_replicas) {
            return Err(InvalidOption {
                name: "nats-replicas",
                problem: "must be 1 to 5 (3 keeps every message through the loss of one NATS server)",
            });
        }
        let empty = match &self.nats_credentials {
            Credentials::UserPassword { user, .. } if user.is_empty() => Some("nats-user"),
            Credentials::UserPassword { password, .. } if password.is_empty() => {
                Some("nats-password")
            }
            Credentials::Token(token) if token.is_empty() => Some("nats-token"),
            Credentials::File(path) if path.as_os_str().is_empty() => Some("nats-creds"),
            _ => None,
        };
        match empty {
            Some(name) => Err(InvalidOption {
                name,
                problem: "must not be empty",
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use wspubsub_protocol::ping_interval;

    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Options::default().validate(), Ok(()));
    }

    #[test]
    fn rejects_zero_and_inconsistent_values() {
        let zero_deadline = Options {
            pong_deadline: Duration::ZERO,
            ..Options::default()
        };
        assert_eq!(
            zero_deadline.validate().map_err(|e| e.name),
            Err("pong-deadline")
        );
        let tiny_queue = Options {
            subscriber_queue_bytes: 10,
            ..Options::default()
        };
        assert_eq!(
            tiny_queue.validate().map_err(|e| e.name),
            Err("subscriber-queue-bytes")
        );
        let no_topic_queue = Options {
            topic_queue: 0,
            ..Options::default()
        };
        assert_eq!(
            no_topic_queue.validate().map_err(|e| e.name),
            Err("topic-queue")
        );
    }

    #[test]
    fn cluster_options_need_a_replica_count_and_no_empty_credential() {
        let name = |options: Options| options.validate().map_err(|e| e.name);
        for (replicas, expected) in [
            (0, Err("nats-replicas")),
            (1, Ok(())),
            (3, Ok(())),
            (MAX_NATS_REPLICAS, Ok(())),
            (MAX_NATS_REPLICAS + 1, Err("nats-replicas")),
        ] {
            let options = Options {
                nats_replicas: replicas,
                ..Options::default()
            };
            assert_eq!(name(options), expected, "{replicas} replicas");
        }
        let credentials = |credentials| Options {
            nats_credentials: credentials,
            ..Options::default()
        };
        assert_eq!(
            name(credentials(Credentials::Token(String::new()))),
            Err("nats-token")
        );
        assert_eq!(
            name(credentials(Credentials::UserPassword {
                user: "u".into(),
                password: String::new(),
            })),
            Err("nats-password")
        );
        assert_eq!(
            name(credentials(Credentials::UserPassword {
                user: String::new(),
                password: "p".into(),
            })),
            Err("nats-user")
        );
        assert_eq!(name(credentials(Credentials::Token("t".into()))), Ok(()));
    }

    #[test]
    fn debug_output_shows_no_nats_secret() {
        let options = Options {
            nats_credentials: Credentials::UserPassword {
                user: "node".into(),
                password: "hunter2".into(),
            },
            ..Options::default()
        };
        let printed = format!("{options:?}");
        assert!(
            printed.contains("node") && !printed.contains("hunter2"),
            "{printed}"
        );
        let token = format!("{:?}", Credentials::Token("s3cret".into()));
        assert!(!token.contains("s3cret"), "{token}");
    }

    #[test]
    fn rejects_durations_that_would_overflow_or_never_ping() {
        let name = |options: Options| options.validate().map_err(|e| e.name);
        let absurd = Duration::from_secs(1_000_000_000 * 365 * 24 * 3600);
        for (field, option) in [
            (
                "pong-deadline",
                (|o: &mut Options| &mut o.pong_deadline) as fn(&mut Options) -> &mut Duration,
            ),
            ("write-timeout", |o| &mut o.write_timeout),
            ("close-deadline", |o| &mut o.close_deadline),
            ("handshake-timeout", |o| &mut o.handshake_timeout),
            ("history-age", |o| &mut o.history_age),
        ] {
            let mut options = Options::default();
            *option(&mut options) = absurd;
            assert_eq!(name(options), Err(field));
            let mut options = Options::default();
            *option(&mut options) = MAX_DURATION;
            assert_eq!(name(options), Ok(()), "{field} at the maximum");
        }
        // The shortest accepted deadline still pings (0.7 ns rounds to 1 ns), so a ping
        // interval is never zero.
        assert!(!ping_interval(Duration::from_nanos(1)).is_zero());
        let no_handshakes = Options {
            max_handshakes: 0,
            ..Options::default()
        };
        assert_eq!(name(no_handshakes), Err("max-handshakes"));
        let no_history_bytes = Options {
            history_bytes: 0,
            ..Options::default()
        };
        assert_eq!(name(no_history_bytes), Err("history-bytes"));
        let history_off = Options {
            history_messages: 0,
            ..Options::default()
        };
        assert_eq!(name(history_off), Ok(()), "0 messages turns history off");
    }
}
