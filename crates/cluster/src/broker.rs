//! A thin typed layer over `async-nats` JetStream: connect, keep one stream for every topic,
//! publish with the stream's ack, and read one topic in stream order.
//!
//! One stream ([`STREAM`]) holds every topic as the subjects `wspubsub.t.>` (see
//! [`crate::subject`]). Its sequence is the single order all nodes agree on: a message's
//! stream sequence is its position everywhere. A [`Subscription`] reads one topic's subject
//! through an ephemeral in-memory pull consumer without acks; it ends with an error as soon as
//! the consumer skips a message or falls silent (the NATS server holding it stopped), and its
//! owner subscribes again from the message after the last one it read.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::stream::{Config as StreamConfig, DiscardPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::subject::{self, SubjectError};

/// The name of the stream that holds every topic.
pub const STREAM: &str = "WSPUBSUB";

/// How a node proves who it is to NATS (what `async-nats` offers). Its `Debug` shows no
/// password or token.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No authentication.
    #[default]
    None,
    /// A `.creds` file (JWT and NKey seed), as `nsc` writes it.
    File(PathBuf),
    /// A user name and password.
    UserPassword {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// A token.
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::File(path) => f.debug_tuple("File").field(path).finish(),
            Credentials::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::Token(_) => f.debug_tuple("Token").field(&"<redacted>").finish(),
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    /// NATS server URLs, comma-separated (`nats://a:4222,nats://b:4222`); the client picks
    /// one and fails over to the others.
    pub urls: String,
    /// How to authenticate.
    pub credentials: Credentials,
    /// A PEM file of CA certificates to trust for TLS, beyond the system's.
    pub ca_file: Option<PathBuf>,
    /// The connection name the server shows in its monitoring.
    pub name: String,
    /// How long a JetStream request (a publish ack, a stream or consumer change) may take.
    pub request_timeout: Duration,
}

impl ConnectConfig {
    /// Plain connection to `urls`, no credentials, a 5 s request timeout.
    pub fn new(urls: impl Into<String>) -> ConnectConfig {
        ConnectConfig {
            urls: urls.into(),
            credentials: Credentials::None,
            ca_file: None,
            name: "wspubsub".into(),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Where the stream keeps messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Storage {
    /// In memory: fast, lost when every replica's server restarts.
    #[default]
    Memory,
    /// On disk: survives server restarts.
    File,
}

/// The stream's shape: storage, replication and how much history it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// Memory (the default) or file storage. Fixed once the stream exists.
    pub storage: Storage,
    /// Copies of each message: 1, or 3 on a NATS cluster of at least three servers.
    pub replicas: usize,
    /// Messages kept per topic (JetStream's `max_msgs_per_subject`); `None` keeps all.
    pub messages_per_topic: Option<u64>,
    /// Bytes kept over all topics (`max_bytes`), oldest evicted first: JetStream has no
    /// per-subject byte limit; `None` keeps all.
    pub total_bytes: Option<u64>,
    /// How long a message is kept (`max_age`); `None` keeps it until a size limit evicts it.
    pub max_age: Option<Duration>,
}

impl Storage {
    /// The name the command line and the config file use (`memory`, `file`).
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::Memory => "memory",
            Storage::File => "file",
        }
    }
}

impl Default for StreamSpec {
    fn default() -> StreamSpec {
        StreamSpec {
            storage: Storage::Memory,
            replicas: 1,
            messages_per_topic: None,
            total_bytes: None,
            max_age: None,
        }
    }
}

/// What the stream is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    /// When the stream was created: a stream recreated (a memory stream after a restart of
    /// its servers) starts its sequence at 1 again, and this tells the incarnations apart.
    pub created: SystemTime,
    /// The oldest sequence still stored (0 when empty).
    pub first_sequence: u64,
    /// When the oldest message still stored was stored (the epoch when empty): anything
    /// stored before has been evicted.
    pub first_time: SystemTime,
    /// The newest sequence stored (0 when nothing was ever stored).
    pub last_sequence: u64,
    /// The name of the NATS server leading the stream's replicas (in a NATS cluster).
    pub leader: Option<String>,
}

/// Where a [`Subscription`] starts reading its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Only what is published after [`Broker::subscribe`] returns (the latest).
    New,
    /// The oldest message of the topic the stream still holds.
    Earliest,
    /// The topic's first message at or after this stream sequence.
    Sequence(u64),
    /// The topic's first message stored at or after this time.
    Time(SystemTime),
}

/// One message of a topic, as the stream holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The stream sequence: the message's position on every node.
    pub sequence: u64,
    /// When the stream stored it.
    pub time: SystemTime,
    /// The message body.
    pub payload: Bytes,
    /// Its subject (the topic's, see [`subject::topic_for`]).
    pub subject: String,
    /// Messages of the topic the stream held after this one when it was delivered: how far
    /// the subscription is behind.
    pub pending: u64,
}

/// Whether creating the stream failed only because another node created it at that moment.
fn lost_create_race(error: &async_nats::jetstream::context::CreateStreamError) -> bool {
    use async_nats::jetstream::ErrorCode;
    use async_nats::jetstream::context::CreateStreamErrorKind;
    match error.kind() {
        CreateStreamErrorKind::JetStream(error) => matches!(
            error.error_code(),
            ErrorCode::STREAM_NAME_EXIST | ErrorCode::STREAM_SUBJECT_OVERLAP
        ),
        _ => false,
    }
}

/// What went wrong talking to NATS.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// `urls` named no server.
    #[error("no NATS server URL given")]
    NoUrl,
    /// The credentials file could not be read.
    #[error("reading NATS credentials {path:?}: {source}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No server could be reached or it refused us.
    #[error("connecting to NATS: {0}")]
    Connect(#[from] async_nats::ConnectError),
    /// The stream could not be created or changed.
    #[error("ensuring stream {STREAM}: {0}")]
    Stream(#[from] async_nats::jetstream::context::CreateStreamError),
    /// The stream exists with another storage, which JetStream cannot change.
    #[error(
        "stream {STREAM} exists with {} storage and cannot change to {}: \
         use {} storage, or delete the stream first",
        existing.as_str(), wanted.as_str(), existing.as_str()
    )]
    StorageFixed {
        /// The storage of the existing stream.
        existing: Storage,
        /// The storage asked for.
        wanted: Storage,
    },
    /// The stream could not be looked up.
    #[error("looking up stream {STREAM}: {0}")]
    Lookup(#[from] async_nats::jetstream::context::GetStreamError),
    /// A topic's newest message could not be looked up.
    #[error("looking up a topic's newest message: {0}")]
    Last(async_nats::jetstream::stream::LastRawMessageError),
    /// The stream's state could not be read.
    #[error("reading the state of stream {STREAM}: {0}")]
    Info(async_nats::jetstream::context::RequestError),
    /// The topic has no subject.
    #[error(transparent)]
    Subject(#[from] SubjectError),
    /// The message was not sent.
    #[error("publishing: {0}")]
    Publish(#[from] async_nats::jetstream::context::PublishError),
    /// The consumer for a subscription could not be created.
    #[error("subscribing: {0}")]
    Consumer(#[from] async_nats::jetstream::stream::ConsumerError),
    /// The consumer's message stream could not be started.
    #[error("subscribing: {0}")]
    Messages(#[from] async_nats::jetstream::consumer::StreamError),
    /// A subscription broke: its consumer is gone, fell silent, or the connection dropped.
    #[error("reading a subscription: {0}")]
    Reading(#[from] pull::MessagesError),
    /// A subscription's consumer skipped messages (a consumer recreated behind its back).
    #[error("a subscription skipped messages: expected delivery {expected}, got {delivered}")]
    Skipped {
        /// The consumer sequence expected next.
        expected: u64,
        /// The consumer sequence delivered.
        delivered: u64,
    },
    /// A delivered message carried no JetStream metadata.
    #[error("a delivered message has no stream metadata: {0}")]
    Metadata(String),
}

impl BrokerError {
    /// Whether creating or reading the stream failed for a moment only: JetStream not yet
    /// (or no longer) ready, as while a NATS cluster elects its leaders, or a request that
    /// timed out. Trying again shortly may succeed.
    pub fn is_transient(&self) -> bool {
        use async_nats::jetstream::ErrorCode;
        use async_nats::jetstream::context::CreateStreamErrorKind;
        match self {
            BrokerError::Stream(error) => match error.kind() {
                CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::JetStreamUnavailable => {
                    true
                }
                CreateStreamErrorKind::JetStream(error) => {
                    error.code() == 503 || error.error_code() == ErrorCode::CLUSTER_NOT_AVAILABLE
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// Whether a publish failed because no server took it for the stream (no responders:
    /// the stream has no leader, as during an election after its leader's server stopped),
    /// so the message is surely not stored and sending it again cannot duplicate it.
    pub fn not_stored(&self) -> bool {
        use async_nats::jetstream::context::PublishErrorKind;
        matches!(self, BrokerError::Publish(error) if error.kind() == PublishErrorKind::StreamNotFound)
    }
}

/// A connection to NATS with its JetStream context; cheap to clone.
#[derive(Debug, Clone)]
pub struct Broker {
    client: async_nats::Client,
    jetstream: Context,
    /// Counts the connections made (see [`Broker::connections`]).
    connections: watch::Receiver<u64>,
}

impl Broker {
    /// Connects to one of `config.urls` (failing over to the others later).
    pub async fn connect(config: &ConnectConfig) -> Result<Broker, BrokerError> {
        let urls: Vec<&str> = config
            .urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect();
        if urls.is_empty() {
            return Err(BrokerError::NoUrl);
        }
        let (connected, connections) = watch::channel(0);
        let connected = std::sync::Arc::new(connected);
        let mut options = async_nats::ConnectOptions::new()
            .name(&config.name)
            .request_timeout(Some(config.request_timeout))
            .event_callback(move |event| {
                let connected = std::sync::Arc::clone(&connected);
                async move {
                    if matches!(event, async_nats::Event::Connected) {
                        connected.send_modify(|count| *count += 1);
                    }
                }
            });
        options = match &config.credentials {
            Credentials::None => options,
            Credentials::File(path) => {
                options
                    .credentials_file(path)
                    .await
                    .map_err(|source| BrokerError::Credentials {
                        path: path.clone(),
                        source,
                    })?
            }
            Credentials::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.clone())
            }
            Credentials::Token(token) => options.token(token.clone()),
        };
        if let Some(ca_file) = &config.ca_file {
            options = options.add_root_certificates(ca_file.clone());
        }
        let client = options.connect(urls).await?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(config.request_timeout);
        Ok(Broker {
            client,
            jetstream,
            connections,
        })
    }

    /// The number of times the client has connected so far: it changes at every
    /// reconnection, after which the stream may have been recreated (a memory stream whose
    /// servers restarted) and must be looked at again.
    pub fn connections(&self) -> watch::Receiver<u64> {
        self.connections.clone()
    }

    /// Whether the client is connected right now (it reconnects by itself when not).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Creates the topic stream with `spec`, or updates its limits when it exists; returns
    /// its state.
    pub async fn ensure_stream(&self, spec: &StreamSpec) -> Result<StreamState, BrokerError> {
        let config = stream_config(spec);
        let info = match self.jetstream.create_or_update_stream(config.clone()).await {
            // Another node created it between our update's "not found" and our create:
            // now the update finds it.
            Err(error) if lost_create_race(&error) => {
                self.jetstream.create_or_update_stream(config).await?
            }
            Err(error) => return Err(self.explain(spec, error).await),
            Ok(info) => info,
        };
        let state = StreamState {
            created: info.created.into(),
            first_sequence: info.state.first_sequence,
            first_time: info.state.first_timestamp.into(),
            last_sequence: info.state.last_sequence,
            leader: info.cluster.and_then(|cluster| cluster.leader),
        };
        if state.created > SystemTime::UNIX_EPOCH {
            return Ok(state);
        }
        // Two nodes creating the stream at once: the loser's answer (an update) can carry
        // a zero creation time. The stream's own info has the real one.
        self.stream_state().await
    }

    /// Why creating or updating the stream failed: a storage change, which JetStream refuses
    /// with a generic "invalid configuration", gets its own error.
    async fn explain(
        &self,
        spec: &StreamSpec,
        error: async_nats::jetstream::context::CreateStreamError,
    ) -> BrokerError {
        match self.stream_spec().await {
            Ok(existing) if existing.storage != spec.storage => BrokerError::StorageFixed {
                existing: existing.storage,
                wanted: spec.storage,
            },
            _ => error.into(),
        }
    }

    /// The stream's shape as NATS holds it now (it must exist: see
    /// [`Broker::ensure_stream`]): what a node, or an operator's check, actually got.
    pub async fn stream_spec(&self) -> Result<StreamSpec, BrokerError> {
        let mut stream = self.jetstream.get_stream(STREAM).await?;
        let info = stream.info().await.map_err(BrokerError::Info)?;
        let config = &info.config;
        let limit = |value: i64| u64::try_from(value).ok();
        Ok(StreamSpec {
            storage: match config.storage {
                StorageType::File => Storage::File,
                StorageType::Memory => Storage::Memory,
            },
            replicas: config.num_replicas,
            messages_per_topic: limit(config.max_messages_per_subject),
            total_bytes: limit(config.max_bytes),
            max_age: Some(config.max_age).filter(|age| !age.is_zero()),
        })
    }

    /// The stream's state now (it must exist: see [`Broker::ensure_stream`]).
    pub async fn stream_state(&self) -> Result<StreamState, BrokerError> {
        let mut stream = self.jetstream.get_stream(STREAM).await?;
        let info = stream.info().await.map_err(BrokerError::Info)?;
        Ok(StreamState {
            created: info.created.into(),
            first_sequence: info.state.first_sequence,
            first_time: info.state.first_timestamp.into(),
            last_sequence: info.state.last_sequence,
            leader: info.cluster.clone().and_then(|cluster| cluster.leader),
        })
    }

    /// Publishes `payload` to `topic` and waits for the stream's ack: returns the message's
    /// stream sequence.
    pub async fn publish(&self, topic: &str, payload: Bytes) -> Result<u64, BrokerError> {
        self.send(topic, Publish::build().payload(payload))
            .await?
            .sequence()
            .await
    }

    /// Like [`Broker::publish`], with an id the stream deduplicates on (within its
    /// two-minute window): publishing again after a lost ack stores the message once, and
    /// the ack names the sequence it got the first time.
    pub async fn publish_once(
        &self,
        topic: &str,
        id: &str,
        payload: Bytes,
    ) -> Result<u64, BrokerError> {
        let message = Publish::build().payload(payload).message_id(id);
        self.send(topic, message).await?.sequence().await
    }

    /// Sends `payload` to `topic` without waiting for the ack, so that several publishes can
    /// be in flight; the returned [`PendingAck`] resolves to the sequence.
    pub async fn send_publish(
        &self,
        topic: &str,
        payload: Bytes,
    ) -> Result<PendingAck, BrokerError> {
        self.send(topic, Publish::build().payload(payload)).await
    }

    async fn send(&self, topic: &str, message: Publish) -> Result<PendingAck, BrokerError> {
        let subject = subject::subject_for(topic)?;
        let ack = self.jetstream.send_publish(subject, message).await?;
        Ok(PendingAck { ack })
    }

    /// The stream sequence of `topic`'s newest message, if the stream holds any.
    pub async fn last_sequence_of(&self, topic: &str) -> Result<Option<u64>, BrokerError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        let subject = subject::subject_for(topic)?;
        let stream = self.jetstream.get_stream_no_info(STREAM).await?;
        match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => Ok(Some(message.sequence)),
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(error) => Err(BrokerError::Last(error)),
        }
    }

    /// Reads `topic` from `start`, in stream order. When this returns, the consumer exists:
    /// whatever is published to the topic afterwards reaches the subscription.
    pub async fn subscribe(&self, topic: &str, start: Start) -> Result<Subscription, BrokerError> {
        self.subscribe_filter(subject::subject_for(topic)?, start)
            .await
    }

    /// Reads every topic whose subject `filter_subject` matches (one of
    /// [`subject::filters_for`]' filters of a pattern) from `start`, in stream order, as
    /// [`Self::subscribe`] reads one.
    pub async fn subscribe_filter(
        &self,
        filter_subject: String,
        start: Start,
    ) -> Result<Subscription, BrokerError> {
        let deliver_policy = match start {
            Start::New => DeliverPolicy::New,
            Start::Earliest => DeliverPolicy::All,
            Start::Sequence(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
            Start::Time(time) => DeliverPolicy::ByStartTime {
                start_time: time.into(),
            },
        };
        let stream = self.jetstream.get_stream_no_info(STREAM).await?;
        let consumer = stream
            .create_consumer(pull::Config {
                filter_subject,
                deliver_policy,
                ack_policy: AckPolicy::None,
                max_deliver: 1,
                // One reader per topic per node, gone with it: a consumer no pull request has
                // asked for within this long is removed by the server.
                inactive_threshold: CONSUMER_INACTIVE,
                num_replicas: 1,
                memory_storage: true,
                ..pull::Config::default()
            })
            .await?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(READ_BATCH)
            .expires(READ_EXPIRES)
            .heartbeat(READ_HEARTBEAT)
            .messages()
            .await?;
        Ok(Subscription {
            messages,
            delivered: 0,
        })
    }
}

/// Messages one pull request asks for.
const READ_BATCH: usize = 500;

/// How long one pull request stays open on the server.
const READ_EXPIRES: Duration = Duration::from_secs(30);

/// While a pull request waits, the server sends a heartbeat this often; two missed ones end
/// the subscription (`MissingHeartbeat`). This bounds how long a reading whose consumer lived
/// on a stopped NATS server stays silent before it subscribes again elsewhere: about twice
/// this. (`async-nats`' ordered consumer waits two 15 s heartbeats and then retries with
/// pauses of up to 10 s: over a minute.)
const READ_HEARTBEAT: Duration = Duration::from_secs(2);

/// How long the server keeps a consumer that nobody reads (one left behind on a failover).
const CONSUMER_INACTIVE: Duration = Duration::from_secs(30);

/// A publish sent and not yet acknowledged.
#[must_use = "the ack says whether the stream stored the message"]
pub struct PendingAck {
    ack: jetstream::context::PublishAckFuture,
}

impl std::fmt::Debug for PendingAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingAck")
    }
}

impl PendingAck {
    /// Waits for the stream's ack (bounded by the request timeout): the stream sequence.
    pub async fn sequence(self) -> Result<u64, BrokerError> {
        Ok(self.ack.await?.sequence)
    }
}

/// One topic's messages in stream order, from where the subscription started. It ends with
/// an error, never by skipping: the owner subscribes again from where it was.
pub struct Subscription {
    messages: pull::Stream,
    /// The consumer sequence of the last message delivered: each next one must follow it.
    delivered: u64,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next message; an error once the subscription broke (consumer gone or silent,
    /// messages skipped), after which it yields nothing useful and is replaced; `None` once
    /// the connection closed for good.
    pub async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        let message = match self.messages.next().await? {
            Ok(message) => message,
            Err(error) => return Some(Err(error.into())),
        };
        let info = match message.info() {
            Ok(info) => info,
            Err(error) => return Some(Err(BrokerError::Metadata(error.to_string()))),
        };
        let expected = self.delivered + 1;
        if info.consumer_sequence != expected {
            return Some(Err(BrokerError::Skipped {
                expected,
                delivered: info.consumer_sequence,
            }));
        }
        self.delivered = expected;
        Some(Ok(Delivery {
            sequence: info.stream_sequence,
            time: info.published.into(),
            payload: message.payload.clone(),
            subject: message.subject.to_string(),
            pending: info.pending,
        }))
    }
}

/// The JetStream stream configuration for `spec`.
fn stream_config(spec: &StreamSpec) -> StreamConfig {
    let limit =
        |value: Option<u64>| value.map_or(-1, |value| i64::try_from(value).unwrap_or(i64::MAX));
    StreamConfig {
        name: STREAM.into(),
        description: Some("wspubsub topics".into()),
        subjects: vec![format!("{}.>", subject::PREFIX)],
        storage: match spec.storage {
            Storage::Memory => StorageType::Memory,
            Storage::File => StorageType::File,
        },
        num_replicas: spec.replicas,
        max_messages_per_subject: limit(spec.messages_per_topic),
        max_bytes: limit(spec.total_bytes),
        max_messages: -1,
        max_age: spec.max_age.unwrap_or(Duration::ZERO),
        discard: DiscardPolicy::Old,
        ..StreamConfig::default()
    }
}
