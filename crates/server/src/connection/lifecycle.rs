//! A client's life after admission: its upgrade completes, it joins (counted and reported),
//! its publisher or subscriber task runs, and it departs from its topic before its close
//! handshake, so that whoever sees the departure sees the hub without it.

use std::future::Future;

use futures_util::future::Either;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role as WsRole, WebSocketConfig};
use wspubsub_protocol::Role;

use crate::connection::{self, Connection, SubscriberSocket, run_publisher, run_subscriber};
use crate::event::EventKind;
use crate::feed::Feed;
use crate::http::HandshakePermit;
use crate::hub::Membership;
use crate::limits::Admission;
use crate::options::Options;
use crate::topic::TopicPublisher;

/// Bytes of a publisher's eagerly allocated read buffer; tungstenite grows its message buffer
/// when a larger frame arrives.
const READ_BUFFER_SIZE: usize = 4096;

/// A subscriber only sends control frames: a tiny read buffer keeps idle subscribers cheap. It
/// holds a pong to our empty pings (6 bytes) and any frame's header (14 at most); tungstenite
/// grows it to fit a longer frame when one comes.
const SUBSCRIBER_READ_BUFFER_SIZE: usize = 32;

/// Bytes tungstenite buffers before writing to the socket (pings and close frames only: data
/// frames bypass it).
const WRITE_BUFFER_SIZE: usize = 4096;

/// Cap on tungstenite's write buffer: it only ever holds control frames (at most 131 bytes
/// each), so reaching this means a peer that stopped reading is piling up pongs.
const MAX_WRITE_BUFFER_SIZE: usize = 64 << 10;

/// The WebSocket settings of every client socket (a subscriber's read buffer is smaller).
pub(crate) fn websocket_config(options: &Options) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(WRITE_BUFFER_SIZE)
        .max_write_buffer_size(MAX_WRITE_BUFFER_SIZE)
        .max_message_size(Some(options.max_message_size))
        .max_frame_size(Some(options.max_message_size))
}

/// A client's link to its topic, by role.
pub(crate) enum Attachment {
    /// Queues messages into the topic.
    Publisher(TopicPublisher),
    /// Reads the topic's backlog.
    Subscriber(Feed),
}

/// A client registered with its topic before its 101 answer, so that whatever is published
/// after the client sees the answer reaches it.
pub(crate) struct Client {
    /// What its connection task needs.
    pub(crate) connection: Connection,
    /// Its place under the connection limits, freed when it ends.
    pub(crate) admission: Admission,
    /// Its place in the topic, left when it ends.
    pub(crate) membership: Membership,
    /// Its link to the topic.
    pub(crate) attachment: Attachment,
}

/// Completes the upgrade and runs the client's connection task to its end. `handshake`, the
/// connection's place among those still in their handshake, is given back once the upgrade is
/// done, whatever its outcome: an upgraded client does not count against `max_handshakes`.
///
/// A subscriber's future is what an idle connection costs, so it is built to hold each value
/// once: an `async fn` keeps its arguments beside the locals it moves them into for its whole
/// life, where an `async move` block uses what it captured in place. The publisher's task,
/// rarer, is boxed.
pub(crate) fn serve_client(
    upgrade: OnUpgrade,
    config: WebSocketConfig,
    client: Client,
    handshake: HandshakePermit,
) -> impl Future<Output = ()> + Send + 'static {
    let Client {
        connection,
        admission,
        membership,
        attachment,
    } = client;
    match attachment {
        Attachment::Publisher(publisher) => Either::Left(Box::pin(async move {
            let _admission = admission;
            let Some(io) = upgraded(upgrade, handshake, &connection).await else {
                return;
            };
            serve_publisher(io, config, connection, membership, publisher).await;
        })),
        Attachment::Subscriber(feed) => Either::Right(serve_subscriber(
            upgrade, connection, admission, membership, feed, handshake,
        )),
    }
}

/// The upgraded connection, once hyper hands it over; `None` (reported) if the upgrade failed.
async fn upgraded(
    upgrade: OnUpgrade,
    handshake: HandshakePermit,
    connection: &Connection,
) -> Option<TokioIo<Upgraded>> {
    let upgraded = upgrade.await;
    drop(handshake);
    match upgraded {
        Ok(upgraded) => Some(TokioIo::new(upgraded)),
        Err(error) => {
            connection.events.emit(
                EventKind::UpgradeFailed,
                &connection.topic,
                Some(&connection.id),
                Some(error.to_string()),
            );
            None
        }
    }
}

/// Runs a publisher's task to its end.
async fn serve_publisher(
    io: TokioIo<Upgraded>,
    config: WebSocketConfig,
    connection: Connection,
    membership: Membership,
    publisher: TopicPublisher,
) {
    let mut ws = WebSocketStream::from_raw_socket(io, WsRole::Server, Some(config)).await;
    joined(&connection, Role::Publisher);
    let ending = run_publisher(&mut ws, &connection, &publisher).await;
    drop(publisher);
    depart(&connection, membership, Role::Publisher, &ending);
    let close_deadline = connection.options.close_deadline;
    connection::finish(&mut ws, &ending, close_deadline).await;
}

/// Runs a subscriber's task to its end. What happens once, at the start and at the end (the
/// upgrade, the socket's construction, the close handshake), is boxed, so that it takes no
/// room in the task while the subscriber waits; the WebSocket settings are those of every
/// client (`websocket_config` of the same options), with a subscriber's small read buffer.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice for the subscriber's whole life"
)]
fn serve_subscriber(
    upgrade: OnUpgrade,
    connection: Connection,
    admission: Admission,
    membership: Membership,
    mut feed: Feed,
    handshake: HandshakePermit,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let Some(io) = Box::pin(upgraded(upgrade, handshake, &connection)).await else {
            return;
        };
        let config =
            websocket_config(&connection.options).read_buffer_size(SUBSCRIBER_READ_BUFFER_SIZE);
        let mut socket = Box::pin(SubscriberSocket::new(io, config)).await;
        joined(&connection, Role::Subscriber);
        let ending = run_subscriber(&mut socket, &connection, &mut feed).await;
        drop(feed);
        depart(&connection, membership, Role::Subscriber, &ending);
        let close_deadline = connection.options.close_deadline;
        Box::pin(connection::finish(&mut socket, &ending, close_deadline)).await;
        // Its place under the connection limits is given back once it is gone.
        drop(admission);
    }
}

/// Counts and reports a join.
fn joined(connection: &Connection, role: Role) {
    let (id, topic) = (&connection.id, &connection.topic);
    let kind = EventKind::joined(role);
    connection.metrics.joined(role);
    connection.events.emit(kind, topic, Some(id), None);
    tracing::debug!(client = %id, %topic, "{kind}");
}

/// Leaves the topic, then counts and reports it, so that whoever sees the event sees the hub
/// without this client.
fn depart(
    connection: &Connection,
    membership: Membership,
    role: Role,
    ending: &connection::Ending,
) {
    drop(membership);
    let (id, topic) = (&connection.id, &connection.topic);
    let kind = EventKind::left(role);
    connection.metrics.left(role, ending);
    tracing::debug!(client = %id, %topic, %ending, "{kind}");
    let detail = Some(ending.to_string());
    connection.events.emit(kind, topic, Some(id), detail);
}
