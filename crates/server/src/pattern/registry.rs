//! The hub's pattern subscribers ("followers"): matched once against each topic when the
//! topic is created, never per message. A follower of a matching topic becomes one more
//! reader of that topic's backlog, like any subscriber, so the message path does not know
//! patterns exist.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use wspubsub_fanout::Form;

use crate::topic::TopicFeed;

/// Where a follower gets its reading of each topic it comes to follow: bounded by the number
/// of topics, not by traffic, and empty (no allocation) while idle, which a pattern
/// subscriber mostly is.
#[derive(Debug, Default)]
pub(crate) struct Arrivals {
    feeds: Mutex<Vec<TopicFeed>>,
    /// Keeps a wake-up for a follower that is not waiting yet.
    arrived: Notify,
}

impl Arrivals {
    fn send(&self, feed: TopicFeed) {
        self.lock().push(feed);
        self.arrived.notify_one();
    }

    /// The readings that arrived since the last look.
    pub(crate) fn take(&self) -> Vec<TopicFeed> {
        std::mem::take(&mut *self.lock())
    }

    /// Waits until readings may have arrived since the last [`Self::take`].
    pub(crate) async fn arrived(&self) {
        self.arrived.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<TopicFeed>> {
        // Pushing and taking cannot panic halfway: a poisoned lock still holds a whole list.
        self.feeds.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A follower's identity in the registry, to leave it by.
pub(crate) type FollowerId = u64;

/// One pattern subscriber.
#[derive(Debug)]
struct Follower {
    pattern: Arc<str>,
    /// The form it reads topics in.
    form: Form,
    /// Whether it reads this node's topics (in cluster mode it reads the stream instead).
    local: bool,
    /// Where new topics' readings go.
    arrivals: Arc<Arrivals>,
}

/// Every pattern subscriber of the server.
#[derive(Debug, Default)]
pub(crate) struct Followers {
    followers: HashMap<FollowerId, Follower>,
    next_id: FollowerId,
}

impl Followers {
    /// Registers a follower of `pattern` reading in `form`; if `local`, it gets each of this
    /// node's topics' reading from the returned arrivals.
    pub(crate) fn add(
        &mut self,
        pattern: Arc<str>,
        form: Form,
        local: bool,
    ) -> (FollowerId, Arc<Arrivals>) {
        let arrivals = Arc::new(Arrivals::default());
        let receiver = Arc::clone(&arrivals);
        let id = self.next_id;
        self.next_id += 1;
        let follower = Follower {
            pattern,
            form,
            local,
            arrivals,
        };
        self.followers.insert(id, follower);
        (id, receiver)
    }

    /// Unregisters follower `id`.
    pub(crate) fn remove(&mut self, id: FollowerId) {
        self.followers.remove(&id);
    }

    /// Number of followers.
    pub(crate) fn len(&self) -> usize {
        self.followers.len()
    }

    /// Hands every follower whose pattern matches `topic` its reading of it, made by `join`
    /// in the follower's form.
    pub(crate) fn attach(&self, topic: &str, mut join: impl FnMut(Form) -> Option<TopicFeed>) {
        for follower in self.followers.values() {
            if follower.local
                && super::covers(&follower.pattern, topic)
                && let Some(feed) = join(follower.form)
            {
                follower.arrivals.send(feed);
            }
        }
    }
}
