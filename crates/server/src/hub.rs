//! The hub: the map from topic name to running topic actor.
//!
//! A topic is born with its first client and removed with its last. Every client holds a
//! [`Membership`] whose `Drop` leaves the topic, so a topic is cleaned up however its last
//! client went away (close frame, reset, deadline, panic).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio_util::task::TaskTracker;

use crate::limits::LimitReached;
use crate::metrics::Metrics;
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
    /// Where topics count their waits.
    metrics: Arc<Metrics>,
}

#[derive(Debug)]
struct Entry {
    /// The map's key, kept here so members can share it.
    name: Arc<str>,
    topic: Topic,
    members: usize,
    subscribers: usize,
}

impl Hub {
    pub(crate) fn new(options: Arc<Options>, tracker: TaskTracker, metrics: Arc<Metrics>) -> Self {
        Hub {
            inner: Arc::new(HubInner {
                topics: Mutex::default(),
                options,
                tracker,
                metrics,
            }),
        }
    }

    /// Number of live topics.
    pub(crate) fn topic_count(&self) -> usize {
        self.topics().len()
    }

    /// Joins `name` as a publisher, creating the topic if needed and allowed.
    pub(crate) fn join_publisher(
        &self,
        name: &str,
    ) -> Result<(Membership, TopicPublisher), LimitReached> {
        self.join(name, false, Topic::publisher)
    }

    /// Joins `name` as a subscriber, creating the topic if needed and allowed. The subscriber
    /// gets every message the topic appends from this moment on.
    pub(crate) fn join_subscriber(
        &self,
        name: &str,
    ) -> Result<(Membership, TopicFeed), LimitReached> {
        self.join(name, true, Topic::subscriber)
    }

    fn join<T>(
        &self,
        name: &str,
        subscriber: bool,
        attach: impl FnOnce(&Topic) -> T,
    ) -> Result<(Membership, T), LimitReached> {
        let options = &self.inner.options;
        let mut topics = self.topics();
        let topic_count = topics.len();
        let entry = match topics.get_mut(name) {
            Some(entry) => entry,
            None if options.max_topics != 0 && topic_count >= options.max_topics => {
                return Err(LimitReached::Topics(options.max_topics));
            }
            None => {
                let name: Arc<str> = Arc::from(name);
                let topic = Topic::spawn(
                    Arc::clone(&name),
                    options,
                    &self.inner.tracker,
                    &self.inner.metrics,
                );
                topics.entry(Arc::clone(&name)).or_insert(Entry {
                    name,
                    topic,
                    members: 0,
                    subscribers: 0,
                })
            }
        };
        let max_subscribers = options.max_subscribers_per_topic;
        if subscriber && max_subscribers != 0 && entry.subscribers >= max_subscribers {
            // A topic is only ever created for a client it admits, so this entry has members.
            return Err(LimitReached::SubscribersPerTopic(max_subscribers));
        }
        entry.members += 1;
        entry.subscribers += usize::from(subscriber);
        let attached = attach(&entry.topic);
        let topic = Arc::clone(&entry.name);
        Ok((
            Membership {
                hub: self.clone(),
                topic,
                subscriber,
            },
            attached,
        ))
    }

    fn leave(&self, name: &str, subscriber: bool) {
        let mut topics = self.topics();
        if let Some(entry) = topics.get_mut(name) {
            entry.members -= 1;
            entry.subscribers -= usize::from(subscriber);
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
    subscriber: bool,
}

impl Membership {
    /// The topic's name.
    pub(crate) fn topic(&self) -> &Arc<str> {
        &self.topic
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(&self.topic, self.subscriber);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub::new(
            Arc::new(Options::default()),
            TaskTracker::new(),
            Arc::new(Metrics::new()),
        )
    }

    #[tokio::test]
    async fn topic_and_subscriber_limits_refuse_and_free_up() {
        let options = Options {
            max_topics: 1,
            max_subscribers_per_topic: 1,
            ..Options::default()
        };
        let hub = Hub::new(
            Arc::new(options),
            TaskTracker::new(),
            Arc::new(Metrics::new()),
        );
        let (subscriber, _) = hub.join_subscriber("/a").expect("first topic");
        assert_eq!(
            hub.join_subscriber("/b").err(),
            Some(LimitReached::Topics(1))
        );
        assert_eq!(
            hub.join_subscriber("/a").err(),
            Some(LimitReached::SubscribersPerTopic(1))
        );
        let (publisher, _) = hub
            .join_publisher("/a")
            .expect("publishers are not subscribers");
        drop(subscriber);
        let (again, _) = hub.join_subscriber("/a").expect("the place is free again");
        drop((publisher, again));
        assert_eq!(hub.topic_count(), 0);
        assert!(
            hub.join_publisher("/b").is_ok(),
            "the topic place is free again"
        );
    }

    #[tokio::test]
    async fn topic_lives_as_long_as_its_members() {
        let hub = hub();
        let (publisher, _) = hub.join_publisher("/a").expect("no limits");
        let (subscriber, _) = hub.join_subscriber("/a").expect("no limits");
        let (other, _) = hub.join_subscriber("/b").expect("no limits");
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
        let (first, _) = hub.join_subscriber("/a").expect("no limits");
        drop(first);
        let (second, _) = hub.join_subscriber("/a").expect("no limits");
        assert_eq!(second.topic().as_ref(), "/a");
        assert_eq!(hub.topic_count(), 1);
    }
}
