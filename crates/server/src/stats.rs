//! What the admin API reports on, gathered where it costs the message path nothing but a
//! relaxed atomic per batch: each client's record (who, from where, since when, what it has
//! been sent), and each topic's counts of what it took.
//!
//! The hub keeps every client's [`ClientRecord`] beside its topic; the topic actor counts what
//! it takes into its [`TopicCounters`]; a subscriber's task adds what it writes to its own
//! record (one writer per record, so no cache line is fought over).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::position::now_micros;

/// Declares [`SubscriberKind`] from `Variant => "name"` pairs: a new kind of subscriber is
/// one line here.
macro_rules! subscriber_kinds {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// How a subscriber reads its topic (the admin API counts subscribers by kind).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum SubscriberKind {
            $($(#[$doc])* $variant,)*
        }

        impl SubscriberKind {
            /// Every kind, in the order the admin API lists them.
            pub(crate) const ALL: &[SubscriberKind] = &[$(SubscriberKind::$variant,)*];

            /// The kind's name in the admin API (as the metrics' `role` label spells it).
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $(SubscriberKind::$variant => $name,)*
                }
            }
        }
    };
}

subscriber_kinds! {
    /// A raw WebSocket subscriber (`?pubsub=subscriber`).
    Subscriber => "subscriber",
    /// A stream-mode (`wspubsub.v2`) WebSocket subscriber.
    Stream => "stream",
    /// A Server-Sent Events subscriber (`GET` accepting `text/event-stream`).
    Sse => "sse",
}

/// A client's role, as the admin API lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientKind {
    /// Sends messages into its topic.
    Publisher,
    /// Reads its topic, in this way.
    Subscriber(SubscriberKind),
}

impl ClientKind {
    /// The role's name in the admin API.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ClientKind::Publisher => "publisher",
            ClientKind::Subscriber(kind) => kind.as_str(),
        }
    }
}

/// One connected client, as the hub keeps it beside its topic. Small on purpose: every idle
/// connection has one.
#[derive(Debug)]
pub(crate) struct ClientRecord {
    /// The client's id (shared with its connection task).
    pub(crate) id: Arc<str>,
    /// Its role.
    pub(crate) kind: ClientKind,
    /// The address its TCP connection came from.
    pub(crate) peer: SocketAddr,
    /// When it was admitted (unix µs).
    pub(crate) since: u64,
    /// Bytes of frames it was handed and has not written to its socket yet (subscribers).
    pending: AtomicU64,
    /// Messages written to it (subscribers).
    messages_out: AtomicU64,
    /// Bytes of frames written to it, WebSocket framing included (subscribers).
    bytes_out: AtomicU64,
}

impl ClientRecord {
    /// The record of a client admitted now.
    pub(crate) fn new(id: Arc<str>, kind: ClientKind, peer: SocketAddr) -> Self {
        ClientRecord {
            id,
            kind,
            peer,
            since: now_micros(),
            pending: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }

    /// Whether it is a subscriber (of any kind).
    pub(crate) fn is_subscriber(&self) -> bool {
        matches!(self.kind, ClientKind::Subscriber(_))
    }

    /// A batch of `bytes` is about to be written.
    pub(crate) fn writing(&self, bytes: usize) {
        self.pending.store(bytes as u64, Ordering::Relaxed);
    }

    /// The batch being written (`messages`, `bytes`) is out. Only the client's own task
    /// calls it.
    pub(crate) fn written(&self, messages: u64, bytes: usize) {
        self.pending.store(0, Ordering::Relaxed);
        add(&self.messages_out, messages);
        add(&self.bytes_out, bytes as u64);
    }

    /// Bytes handed to it and not written yet.
    pub(crate) fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// What has been written to it so far.
    pub(crate) fn delivered(&self) -> Traffic {
        Traffic {
            messages: self.messages_out.load(Ordering::Relaxed),
            bytes: self.bytes_out.load(Ordering::Relaxed),
        }
    }
}

/// Messages and bytes, counted together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Traffic {
    /// Messages.
    pub(crate) messages: u64,
    /// Bytes.
    pub(crate) bytes: u64,
}

impl std::ops::AddAssign for Traffic {
    fn add_assign(&mut self, other: Traffic) {
        self.messages = self.messages.saturating_add(other.messages);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// What a topic took from its publishers (or, in cluster mode, from the stream); written by
/// its actor alone, once per batch.
#[derive(Debug)]
pub(crate) struct TopicCounters {
    /// When this incarnation of the topic started (a topic reborn under the same name counts
    /// from zero again).
    pub(crate) started: Instant,
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
}

impl Default for TopicCounters {
    fn default() -> Self {
        TopicCounters {
            started: Instant::now(),
            messages_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
        }
    }
}

impl TopicCounters {
    /// The actor took a batch of `messages` of `bytes` payload bytes. Only the actor calls it.
    pub(crate) fn took(&self, messages: usize, bytes: usize) {
        add(&self.messages_in, messages as u64);
        add(&self.bytes_in, bytes as u64);
    }

    /// What the topic took so far.
    pub(crate) fn taken(&self) -> Traffic {
        Traffic {
            messages: self.messages_in.load(Ordering::Relaxed),
            bytes: self.bytes_in.load(Ordering::Relaxed),
        }
    }
}

/// Adds to a counter that has a single writer: a load and a store, without the locked
/// read-modify-write a shared counter would need; readers see one value or the next.
fn add(counter: &AtomicU64, amount: u64) {
    let sum = counter.load(Ordering::Relaxed).wrapping_add(amount);
    counter.store(sum, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_counts_what_is_written_and_what_is_pending() {
        let peer: SocketAddr = "127.0.0.1:9".parse().expect("address");
        let kind = ClientKind::Subscriber(SubscriberKind::Stream);
        let record = ClientRecord::new("x-1".into(), kind, peer);
        assert!(record.is_subscriber());
        assert_eq!(record.kind.as_str(), "stream");
        record.writing(100);
        assert_eq!(record.pending(), 100);
        record.written(2, 100);
        record.written(1, 7);
        assert_eq!(record.pending(), 0);
        assert_eq!(
            record.delivered(),
            Traffic {
                messages: 3,
                bytes: 107
            }
        );
        // Every idle connection has one: keep it small (issue 12's idle-memory budget).
        assert!(std::mem::size_of::<ClientRecord>() <= 96);
        let names: Vec<_> = SubscriberKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, ["subscriber", "stream"]);
        assert_eq!(ClientKind::Publisher.as_str(), "publisher");
    }
}
