//! A client's life after admission: its upgrade completes, it joins (counted and reported),
//! its publisher or subscriber task runs, and it departs from its topic before its close
//! handshake, so that whoever sees the departure sees the hub without it.

use hyper::upgrade::OnUpgrade;
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

/// A subscriber only sends control frames: a tiny read buffer keeps idle subscribers cheap.
const SUBSCRIBER_READ_BUFFER_SIZE: usize = 128;

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

impl Attachment {
    fn role(&self) -> Role {
        match self {
            Attachment::Publisher(_) => Role::Publisher,
            Attachment::Subscriber(_) => Role::Subscriber,
        }
    }
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
pub(crate) async fn serve_client(
    upgrade: OnUpgrade,
    config: WebSocketConfig,
    client: Client,
    handshake: HandshakePermit,
) {
    let Client {
        connection,
        admission: _admission,
        membership,
        attachment,
    } = client;
    let upgraded = upgrade.await;
    drop(handshake);
    let io = match upgraded {
        Ok(upgraded) => TokioIo::new(upgraded),
        Err(error) => {
            connection.events.emit(
                EventKind::UpgradeFailed,
                &connection.topic,
                Some(&connection.id),
                Some(error.to_string()),
            );
            return;
        }
    };
    let role = attachment.role();
    let close_deadline = connection.options.close_deadline;
    match attachment {
        Attachment::Publisher(publisher) => {
            let mut ws = WebSocketStream::from_raw_socket(io, WsRole::Server, Some(config)).await;
            joined(&connection, role);
            let ending = run_publisher(&mut ws, &connection, &publisher).await;
            drop(publisher);
            depart(&connection, membership, role, &ending);
            connection::finish(&mut ws, &ending, close_deadline).await;
        }
        Attachment::Subscriber(mut feed) => {
            let config = config.read_buffer_size(SUBSCRIBER_READ_BUFFER_SIZE);
            let mut socket = SubscriberSocket::new(io, config).await;
            joined(&connection, role);
            let ending = run_subscriber(&mut socket, &connection, &mut feed).await;
            drop(feed);
            depart(&connection, membership, role, &ending);
            connection::finish(&mut socket, &ending, close_deadline).await;
        }
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
