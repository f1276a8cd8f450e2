//! wspubsub server: an in-memory WebSocket publish/subscribe server where every URL path is
//! a topic.
//!
//! How the pieces fit:
//!
//! - [`Server`] (`server`) binds the listeners and runs the accept loop; `http` serves each
//!   connection: TLS (rustls) when [`Options::tls`] is set, then HTTP/1.1 (hyper). Each request
//!   is an endpoint, or goes to `admission`, whose `admit` runs every rule in order (a valid
//!   RFC 6455 handshake, not draining, `origin`, role and name from `upgrade`, `auth`, then
//!   `limits` and the topic's own) and either refuses it with a status and a one-line body or
//!   registers it with its topic. `connection::lifecycle` then completes the upgrade, runs
//!   the client's task and reports its join and departure (with an id from `client_id`).
//! - The `hub` maps each path to its topic actor, born with the topic's first client and
//!   removed with its last (a client's `Membership` leaves on drop, however it ended), or,
//!   for a topic with history, once that history has expired.
//! - The `topic` actor is the single owner of a topic's order: publishers queue messages to it
//!   (bounded, so they are pushed back), it encodes each batch once into frames and appends
//!   them to the topic's backlog (the `wspubsub-fanout` crate), a bounded window every
//!   subscriber reads from its own cursor. A message is stored once, whatever the
//!   number of subscribers. A full window holds the publishers back until its slowest
//!   subscriber takes more ([`SlowSubscriber::Hold`], the default; `topic::hold`), or cuts
//!   that subscriber with 4000 ([`SlowSubscriber::Close`]); a subscriber whose socket takes no
//!   bytes for the write timeout is closed with 4000 either way.
//! - Every message a topic takes gets a sequence number and a time (`position`); the topic
//!   keeps the recent ones after delivery in its history (`retention`, within per-topic and
//!   process-wide bounds), so a subscriber may start from a past position (`?from=`,
//!   `?since=`): it replays history, then reads the backlog, joined at the same instant.
//! - The `connection` tasks own one socket each: publishers read frames into the topic,
//!   subscribers write batches out and flush once per batch; both ping at 0.7x the pong
//!   deadline and close a silent peer.
//! - `endpoints`: plain `GET /healthz`, `/readyz` and `/metrics` (Prometheus, from
//!   `metrics`) on the main listener, or on their own with `admin_addr` (topics are WebSocket
//!   requests, so they never collide); `assets`: the browser client module at
//!   `GET /wspubsub.js`, on both listeners;
//!   `limits` refuse clients past the connection and topic limits, `origin` browsers from
//!   other sites, and `auth` requests without a valid token for their topic, all before the
//!   upgrade.
//! - [`ServerHandle::shutdown`] starts a drain: `/readyz` says 503, new clients are refused
//!   with 503, publishers stop being read, subscribers get every message the server already
//!   took, then every client is closed with 1001; [`Server::run`] returns when all are done or
//!   the close deadline has passed.
//! - Cluster mode ([`Options::nats_url`], `cluster` and `topic::broker`): publishers write
//!   to a NATS JetStream stream shared by every node, and a topic with local subscribers
//!   reads its subject back (one reading per topic per node) into its actor, which then
//!   numbers messages with the stream's positions instead of its own.
//! - `sse`: the same topics over plain HTTP. A `GET` accepting `text/event-stream` is a
//!   Server-Sent Events subscriber (admitted by the same rules, reading the topic's
//!   stream-mode chunks, its events made once per chunk and shared; the response `body`
//!   streams them), a `POST` publishes its body as one message and answers with its seq once
//!   stored, and `OPTIONS` answers CORS preflights.
//! - `admin`: the JSON admin API (`/api/...`) and the dashboard (`/ui`), on the admin
//!   listener, or on the main one with [`Options::admin_token`]; it reads the per-client
//!   records and per-topic counters of `stats`, which the hub and topic actors keep.
//! - [`Event`]s (joins, departures, refusals) stream to whoever asks [`ServerHandle::events`].
//! - With the cargo feature `fuzzing` (off by default), `fuzzing` exposes the admission
//!   decision and the token and query parsing to fuzz targets, without I/O.
//! - [`ServerHandle::reload_tls`] and [`ServerHandle::reload_auth`] swap in a renewed
//!   certificate or a rotated token key for new connections, without a restart.
//!
//! ```no_run
//! # async fn example() -> Result<(), wspubsub_server::ServerError> {
//! let server = wspubsub_server::Server::bind("127.0.0.1:8080", Default::default()).await?;
//! let handle = server.handle();
//! tokio::spawn(async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     handle.shutdown();
//! });
//! server.run().await;
//! # Ok(())
//! # }
//! ```

mod admin;
mod admission;
mod assets;
mod auth;
mod body;
mod client_id;
mod cluster;
mod connection;
mod endpoints;
mod event;
mod feed;
mod forwarded;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod http;
mod hub;
mod limits;
mod metrics;
mod options;
mod origin;
mod pattern;
mod position;
mod reloadable;
mod retention;
mod server;
mod sse;
mod stats;
mod tls;
mod topic;
mod upgrade;

pub use auth::{AuthKey, BadKey};
pub use cluster::ClusterError;
pub use event::{Event, EventKind};
/// Networks of trusted proxies ([`Options::trusted_proxies`]).
pub use ipnet::IpNet;
pub use options::{
    AdminToken, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_HISTORY_AGE, DEFAULT_HISTORY_BYTES,
    DEFAULT_HISTORY_MESSAGES, DEFAULT_HISTORY_TOTAL_BYTES, DEFAULT_MAX_HANDSHAKES,
    DEFAULT_MAX_HEADER_SIZE, DEFAULT_SUBSCRIBER_QUEUE_BYTES, DEFAULT_SUBSCRIBER_QUEUE_MESSAGES,
    DEFAULT_TOPIC_QUEUE, DEFAULT_TOPIC_QUEUE_BYTES, DEFAULT_WRITE_TIMEOUT, InvalidOption,
    MAX_NATS_REPLICAS, MIN_MAX_HEADER_SIZE, Options, SlowSubscriber,
};
pub use server::{Server, ServerError, ServerHandle};
pub use tls::{BadTls, TlsIdentity};
/// How a cluster-mode node authenticates to NATS ([`Options::nats_credentials`]) and where
/// its stream keeps messages ([`Options::nats_storage`]).
pub use wspubsub_cluster::{Credentials as NatsCredentials, Storage as NatsStorage};
pub use wspubsub_protocol as protocol;
