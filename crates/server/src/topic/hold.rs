//! `--slow-subscriber hold`: the topic actor appends only what forces no subscriber's unread
//! messages out of the backlog ([`Backlog::try_push`]), and otherwise waits, taking nothing
//! from its publishers, until the subscribers holding the backlog make room.
//!
//! Subscribers make room by letting go of what they wrote (at their next read, or at once
//! when the actor waits: [`Hold::waited_for`]) and by leaving; each then calls
//! [`Hold::room_made`], which wakes the actor only if it waits, so that the path of every
//! delivery costs one atomic load. A subscriber whose socket takes no bytes for the write
//! timeout is closed, and leaves: a stalled one holds the topic back for at most that long.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use wspubsub_fanout::Backlog;

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

    /// Runs `try_append` (which appends, in order, what forces nothing out of `backlog`, and
    /// says whether that was everything) until everything is appended, waiting for the
    /// subscribers to make room in between; says how long it waited, if it did.
    pub(super) async fn append(
        &self,
        backlog: &watch::Sender<Backlog>,
        mut try_append: impl FnMut() -> bool,
    ) -> Option<Duration> {
        if try_append() {
            return None;
        }
        let started = Instant::now();
        let mut readers_woken = false;
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            self.waiting.store(true, Ordering::SeqCst);
            if try_append() {
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
