//! The hub: the map from topic name to running topic actor.
//!
//! A topic is born with its first client and removed with its last. Every client holds a
//! [`Membership`] whose `Drop` leaves the topic, so a topic is cleaned up however its last
//! client went away (close frame, reset, deadline, panic).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio_util::task::TaskTracker;

use crate::options::Options;
use crate::topic::{Topic, TopicFeed, TopicPublisher};

/// The topics of one server. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    /// Live topics by name, each with the number of clients it has.
    topics: Mutex<HashMap<Arc<str>, Entry>>,
    /// Bounds every new topic is created with.
    options: Arc<Options>,
    /// Topic actors are tracked so that shutdown can wait for them.
    tracker: TaskTracker,
}

#[derive(Debug)]
struct Entry {
    topic: Topic,
    members: usize,
}

impl Hub {
    pub(crate) fn new(options: Arc<Options>, tracker: TaskTracker) -> Self {
        Hub {
            inner: Arc::new(HubInner {
                topics: Mutex::default(),
                options,
                tracker,
            }),
        }
    }

    /// Number of live topics.
    pub(crate) fn topic_count(&self) -> usize {
        self.topics().len()
    }

    /// Joins `name` as a publisher, creating the topic if needed.
    pub(crate) fn join_publisher(&self, name: &str) -> (Membership, TopicPublisher) {
        self.join(name, Topic::publisher)
    }

    /// Joins `name` as a subscriber, creating the topic if needed. The subscriber gets every
    /// message the topic appends from this moment on.
    pub(crate) fn join_subscriber(&self, name: &str) -> (Membership, TopicFeed) {
        self.join(name, Topic::subscriber)
    }

    fn join<T>(&self, name: &str, attach: impl FnOnce(&Topic) -> T) -> (Membership, T) {
        let name: Arc<str> = Arc::from(name);
        let mut topics = self.topics();
        let entry = topics.entry(Arc::clone(&name)).or_insert_with(|| Entry {
            topic: Topic::spawn(Arc::clone(&name), &self.inner.options, &self.inner.tracker),
            members: 0,
        });
        entry.members += 1;
        let attached = attach(&entry.topic);
        (
            Membership {
                hub: self.clone(),
                topic: name,
            },
            attached,
        )
    }

    fn leave(&self, name: &str) {
        let mut topics = self.topics();
        if let Some(entry) = topics.get_mut(name) {
            entry.members -= 1;
            if entry.members == 0 {
                topics.remove(name);
            }
        }
    }

    fn topics(&self) -> MutexGuard<'_, HashMap<Arc<str>, Entry>> {
        // No code panics while holding this lock; if one ever did, the map is still consistent.
        self.inner
            .topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A client's place in a topic; dropping it leaves the topic.
#[derive(Debug)]
pub(crate) struct Membership {
    hub: Hub,
    topic: Arc<str>,
}

impl Membership {
    /// The topic's name.
    pub(crate) fn topic(&self) -> &Arc<str> {
        &self.topic
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(&self.topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub::new(Arc::new(Options::default()), TaskTracker::new())
    }

    #[tokio::test]
    async fn topic_lives_as_long_as_its_members() {
        let hub = hub();
        let (publisher, _) = hub.join_publisher("/a");
        let (subscriber, _) = hub.join_subscriber("/a");
        let (other, _) = hub.join_subscriber("/b");
        assert_eq!(hub.topic_count(), 2);
        drop(publisher);
        assert_eq!(hub.topic_count(), 2);
        drop(subscriber);
        assert_eq!(hub.topic_count(), 1);
        drop(other);
        assert_eq!(hub.topic_count(), 0);
    }

    #[tokio::test]
    async fn a_topic_reborn_after_its_end_is_a_new_topic() {
        let hub = hub();
        let (first, _) = hub.join_subscriber("/a");
        drop(first);
        let (second, _) = hub.join_subscriber("/a");
        assert_eq!(second.topic().as_ref(), "/a");
        assert_eq!(hub.topic_count(), 1);
    }
}
