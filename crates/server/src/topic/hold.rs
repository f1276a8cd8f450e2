//! `--slow-subscriber hold`: the topic actor appends only what forces no subscriber's unread
//! messages out of the backlog ([`Backlog::try_push`]), and otherwise waits, taking nothing
//! from its publishers, until the subscribers holding the backlog make room.
//!
//! Subscribers make room by letting go of what they wrote (at their next read, or at once
//! when the actor waits: [`Hold::waited_for`]) and by leaving; each then calls
//! [`Hold::room_made`], which wakes the actor only if it waits, so that the path of every
//! delivery costs one atomic load. A subscriber whose socket takes no bytes for the write
//! timeout is closed, and leaves: a stalled one holds the topic back for at most that long.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use wspubsub_fanout::{Backlog, Chunk};

/// The signal between a held topic actor and its subscribers.
#[derive(Debug, Default)]
pub(super) struct Hold {
    /// Whether the actor waits for room. SeqCst, as the backlog's counts of readers: either
    /// the actor sees a subscriber's let-go, or the subscriber sees this flag and wakes it.
    waiting: AtomicBool,
    /// Wakes the actor.
    room: Notify,
}

impl Hold {
    /// Whether the actor waits for room: a subscriber that has written everything then lets
    /// go of it at once instead of at its next read.
    pub(super) fn waited_for(&self) -> bool {
        self.waiting.load(Ordering::SeqCst)
    }

    /// A subscriber let go of chunks or left: wakes the actor if it waits.
    pub(super) fn room_made(&self) {
        if self.waited_for() {
            self.room.notify_one();
        }
    }

    /// Appends `chunks` to `backlog` in order, each once it forces nothing out, waiting for
    /// the subscribers to make room; says how long it waited, if it did.
    pub(super) async fn append(
        &self,
        backlog: &watch::Sender<Backlog>,
        chunks: &mut VecDeque<Chunk>,
    ) -> Option<Duration> {
        if try_append(backlog, chunks) {
            return None;
        }
        let started = Instant::now();
        let mut readers_woken = false;
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            self.waiting.store(true, Ordering::SeqCst);
            if try_append(backlog, chunks) {
                break;
            }
            if !readers_woken {
                // A subscriber idle on a batch it wrote before the flag was set still holds
                // it: wake every subscriber once, so that each lets go. Those still writing
                // see the flag when they are done.
                backlog.send_modify(|_| {});
                readers_woken = true;
            }
            room.await;
        }
        self.waiting.store(false, Ordering::SeqCst);
        Some(started.elapsed())
    }
}

/// Appends the chunks that fit, in order; says whether all did. Wakes the subscribers only
/// if it appended something.
fn try_append(backlog: &watch::Sender<Backlog>, chunks: &mut VecDeque<Chunk>) -> bool {
    backlog.send_if_modified(|backlog| {
        let mut appended = false;
        while let Some(chunk) = chunks.pop_front() {
            if let Err(refused) = backlog.try_push(chunk) {
                chunks.push_front(refused);
                break;
            }
            appended = true;
        }
        appended
    });
    chunks.is_empty()
}
