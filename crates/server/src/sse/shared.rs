//! Events made once and shared: the events of one buffer of stream-mode frames, in one
//! encoding, are what every EventSource subscriber of the topic sends for it.
//!
//! The topic envelops each chunk once for all its stream-mode readers, and every EventSource
//! subscriber reads that same buffer (`Bytes` sharing one allocation). The first subscriber to
//! read a buffer turns it into events; the others find them here, by the buffer's identity,
//! and send the same bytes. Each entry keeps its source buffer alive, so an address found
//! here can never be a newer buffer's. The cache holds the most recent buffers only, within
//! [`ENTRIES`] and [`BYTES`]; what misses (a replay, made for one subscriber) is simply made
//! again.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

use super::event::{self, Format};

/// Most buffers whose events are kept.
const ENTRIES: usize = 64;

/// Most bytes (sources and their events) kept.
const BYTES: usize = 16 << 20;

/// One buffer of frames and its events in one format. A buffer is one topic's, so its
/// events are the same for every subscriber that asks in that format.
#[derive(Debug)]
struct Entry {
    source: Bytes,
    format: Format,
    events: Bytes,
}

impl Entry {
    fn size(&self) -> usize {
        self.source.len() + self.events.len()
    }
}

/// The recent buffers' events, shared by every EventSource subscriber of the server.
#[derive(Debug, Default)]
pub(crate) struct SharedEvents {
    entries: Mutex<VecDeque<Entry>>,
}

impl SharedEvents {
    /// The events of `source` (whole stream-mode frames of `topic`, or of the topics they
    /// name) in `format`: made by the first subscriber that asks, shared with the others.
    pub(crate) fn events(&self, source: &Bytes, topic: &str, format: Format) -> Bytes {
        // A panic cannot leave the queue half-changed: a poisoned lock still holds it whole.
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let found = entries.iter().find(|entry| {
            entry.format == format
                && entry.source.as_ptr() == source.as_ptr()
                && entry.source.len() == source.len()
        });
        if let Some(entry) = found {
            return entry.events.clone();
        }
        // Made under the lock: subscribers asking for the same buffer wait instead of making
        // it again.
        let events = event::events_of(source, topic, format);
        entries.push_back(Entry {
            source: source.clone(),
            format,
            events: events.clone(),
        });
        let mut size: usize = entries.iter().map(Entry::size).sum();
        while entries.len() > ENTRIES || (size > BYTES && entries.len() > 1) {
            if let Some(evicted) = entries.pop_front() {
                size -= evicted.size();
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use wspubsub_fanout::RecordBuilder;

    use super::*;
    use crate::sse::event::Encoding;

    const BASE64: Format = Format {
        encoding: Encoding::Base64,
        json: false,
        ids: true,
    };

    /// The stream-mode frames of one message, `payload`, at `seq`.
    fn frames(seq: u64, payload: &[u8]) -> Bytes {
        let mut builder = RecordBuilder::new(usize::MAX);
        let _ = builder.push(payload, std::time::Instant::now(), seq, 0);
        let mut record = builder.finish().expect("a record");
        record.envelop();
        record.chunk.enveloped.expect("enveloped")
    }

    #[test]
    fn the_same_buffer_gets_the_same_events_without_making_them_again() {
        let shared = SharedEvents::default();
        let source = frames(1, b"payload");
        let first = shared.events(&source, "/t", BASE64);
        let second = shared.events(&source.clone(), "/t", BASE64);
        assert_eq!(first.as_ptr(), second.as_ptr(), "shared, not made again");
        assert_eq!(first, event::events_of(&source, "/t", BASE64));
        let text = shared.events(&source, "/t", Format::from(Encoding::Text));
        assert_ne!(text, first, "each encoding has its own events");
        // An equal buffer elsewhere in memory is another buffer: made afresh, equal bytes.
        let copy = Bytes::copy_from_slice(&source);
        let again = shared.events(&copy, "/t", BASE64);
        assert_ne!(again.as_ptr(), first.as_ptr());
        assert_eq!(again, first);
    }

    #[test]
    fn only_the_most_recent_buffers_are_kept() {
        let shared = SharedEvents::default();
        let sources: Vec<Bytes> = (0..ENTRIES as u64 + 1)
            .map(|seq| frames(seq, b"x"))
            .collect();
        let oldest = shared.events(&sources[0], "/t", BASE64);
        for source in &sources[1..] {
            shared.events(source, "/t", BASE64);
        }
        let held = shared.entries.lock().expect("not poisoned").len();
        assert_eq!(held, ENTRIES);
        let remade = shared.events(&sources[0], "/t", BASE64);
        assert_ne!(remade.as_ptr(), oldest.as_ptr(), "evicted, so made again");
    }
}
