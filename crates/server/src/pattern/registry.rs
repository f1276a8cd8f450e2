//! The hub's pattern subscribers ("followers"): matched once against each topic when the
//! topic is created, never per message. A follower of a matching topic becomes one more
//! reader of that topic's backlog, like any subscriber, so the message path does not know
//! patterns exist.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use wspubsub_fanout::Form;

use crate::topic::TopicFeed;

/// Where a follower gets its reading of each topic it comes to follow.
pub(crate) type Arrivals = mpsc::UnboundedReceiver<TopicFeed>;

/// A follower's identity in the registry, to leave it by.
pub(crate) type FollowerId = u64;

/// One pattern subscriber.
#[derive(Debug)]
struct Follower {
    pattern: Arc<str>,
    /// The form it reads topics in.
    form: Form,
    /// Where new topics' readings go; bounded by the number of topics, not by traffic.
    arrivals: mpsc::UnboundedSender<TopicFeed>,
}

/// Every pattern subscriber of the server.
#[derive(Debug, Default)]
pub(crate) struct Followers {
    followers: HashMap<FollowerId, Follower>,
    next_id: FollowerId,
}

impl Followers {
    /// Registers a follower of `pattern` reading in `form`; it gets each topic's reading
    /// from the returned receiver.
    pub(crate) fn add(&mut self, pattern: Arc<str>, form: Form) -> (FollowerId, Arrivals) {
        let (arrivals, receiver) = mpsc::unbounded_channel();
        let id = self.next_id;
        self.next_id += 1;
        let follower = Follower {
            pattern,
            form,
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
            if super::covers(&follower.pattern, topic)
                && let Some(feed) = join(follower.form)
            {
                // A follower that is leaving drops the reading with its receiver.
                let _ = follower.arrivals.send(feed);
            }
        }
    }
}
