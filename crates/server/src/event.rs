//! Events: what happened to which client on which topic, for library users and logs.

use std::fmt;

use tokio::sync::broadcast;
use wspubsub_protocol::Role;

/// What kind of thing happened. The first six mirror the Go server's event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A publisher completed its handshake and joined its topic.
    PublisherJoined,
    /// A publisher left its topic, however it left.
    PublisherLeft,
    /// A subscriber completed its handshake and joined its topic.
    SubscriberJoined,
    /// A subscriber left its topic, however it left.
    SubscriberLeft,
    /// A request asked for a WebSocket but the upgrade could not be done.
    UpgradeFailed,
    /// A request had a missing or bad role or name header.
    BadHeaders,
}

impl EventKind {
    /// The join event of a client in `role`.
    pub const fn joined(role: Role) -> Self {
        match role {
            Role::Publisher => EventKind::PublisherJoined,
            Role::Subscriber => EventKind::SubscriberJoined,
        }
    }

    /// The departure event of a client in `role`.
    pub const fn left(role: Role) -> Self {
        match role {
            Role::Publisher => EventKind::PublisherLeft,
            Role::Subscriber => EventKind::SubscriberLeft,
        }
    }

    /// A short snake_case name for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::PublisherJoined => "publisher_joined",
            EventKind::PublisherLeft => "publisher_left",
            EventKind::SubscriberJoined => "subscriber_joined",
            EventKind::SubscriberLeft => "subscriber_left",
            EventKind::UpgradeFailed => "upgrade_failed",
            EventKind::BadHeaders => "bad_headers",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event, with the client and topic it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The topic (URL path) concerned.
    pub topic: String,
    /// The client's id (`<name>-<uuid>`), once one was given.
    pub client_id: Option<String>,
    /// Why: the close code and reason for a departure, the error for a refusal.
    pub detail: Option<String>,
}

/// Capacity of the event channel; a reader that falls further behind is told how many events
/// it missed (`RecvError::Lagged`) instead of slowing the server down.
pub(crate) const EVENT_CAPACITY: usize = 4096;

/// Where connection tasks report events; cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub(crate) struct EventSink {
    sender: broadcast::Sender<Event>,
}

impl EventSink {
    pub(crate) fn new() -> Self {
        EventSink {
            sender: broadcast::channel(EVENT_CAPACITY).0,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Reports an event; with nobody listening it is simply dropped.
    pub(crate) fn emit(
        &self,
        kind: EventKind,
        topic: &str,
        client_id: Option<&str>,
        detail: Option<String>,
    ) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        let _no_receivers = self.sender.send(Event {
            kind,
            topic: topic.to_owned(),
            client_id: client_id.map(str::to_owned),
            detail,
        });
    }
}
