//! The hub: the map from topic name to running topic actor.
//!
//! A topic is born with its first client and removed with its last, or, when it has history,
//! once that history has expired (a topic with history outlives its last client by the
//! history age, so that a subscriber can still resume from it), or at shutdown. Every client
//! holds a [`Membership`] whose `Drop` leaves the topic, so a topic is cleaned up however its
//! last client went away (close frame, reset, deadline, panic).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wspubsub_fanout::{Form, text_frame};
use wspubsub_protocol::{Control, Start};

use crate::cluster::ClusterNode;
use crate::endpoints::BrokerHealth;
use crate::limits::LimitReached;
use crate::metrics::Metrics;
use crate::options::Options;
use crate::pattern::feed::PatternFeed;
use crate::pattern::registry::{FollowerId, Followers};
use crate::position::now_micros;
use crate::retention::{HistoryGap, HistoryPool, TopicHistory};
use crate::stats::{ClientRecord, TopicCounters, Traffic};
use crate::topic::{Storing, Topic, TopicFeed, TopicPublisher};

/// Why a subscriber cannot join its topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JoinRefused {
    /// A topic limit.
    #[error(transparent)]
    Limit(#[from] LimitReached),
    /// Its start position is not in history.
    #[error(transparent)]
    Gap(#[from] HistoryGap),
    /// Cluster mode: the topic could not start reading the stream.
    #[error("reading the topic from NATS: {0}")]
    Broker(String),
}

/// The topics of one server. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    /// Live topics by name, each with the number of clients it has.
    topics: Mutex<HashMap<Arc<str>, Entry>>,
    /// Pattern subscribers, matched against each topic as it is created. Locked only under
    /// `topics` when both are (a topic is created and its followers attached at once).
    followers: Mutex<Followers>,
    /// Bounds every new topic is created with.
    options: Arc<Options>,
    /// Topic actors are tracked so that shutdown can wait for them.
    tracker: TaskTracker,
    /// Where topics count their waits.
    metrics: Arc<Metrics>,
    /// Every topic's history.
    pool: Arc<HistoryPool>,
    /// The server's shutdown: topics kept for their history end then.
    shutdown: CancellationToken,
    /// This node's link to the cluster's stream, in cluster mode.
    cluster: Option<Arc<ClusterNode>>,
}

#[derive(Debug)]
struct Entry {
    /// The map's key, kept here so members can share it.
    name: Arc<str>,
    topic: Topic,
    members: usize,
    subscribers: usize,
    /// Whether a task waits for this topic's history to expire (one at most, however often
    /// its clients come and go).
    lingering: bool,
    /// Its clients' records, by address of the record.
    clients: HashMap<usize, Arc<ClientRecord>>,
    /// What was written to subscribers that have left.
    retired: Traffic,
}

/// A topic as the admin API sees it: handles taken under the hub's lock, read after.
#[derive(Debug)]
pub(crate) struct TopicView {
    /// The topic's name.
    pub(crate) name: Arc<str>,
    /// What it took.
    pub(crate) counters: Arc<TopicCounters>,
    /// Its history.
    pub(crate) history: Arc<TopicHistory>,
    /// Its clients now.
    pub(crate) clients: Vec<Arc<ClientRecord>>,
    /// What was written to its subscribers that have left.
    pub(crate) retired: Traffic,
}

/// The key of a client's record in its topic's entry.
fn record_key(record: &Arc<ClientRecord>) -> usize {
    Arc::as_ptr(record) as usize
}

impl Hub {
    pub(crate) fn new(
        options: Arc<Options>,
        tracker: TaskTracker,
        metrics: Arc<Metrics>,
        pool: Arc<HistoryPool>,
        shutdown: CancellationToken,
        cluster: Option<Arc<ClusterNode>>,
    ) -> Self {
        Hub {
            inner: Arc::new(HubInner {
                topics: Mutex::default(),
                followers: Mutex::default(),
                options,
                tracker,
                metrics,
                pool,
                shutdown,
                cluster,
            }),
        }
    }

    /// Cluster mode: how the node's link to NATS is now.
    pub(crate) fn broker_health(&self) -> Option<BrokerHealth> {
        self.inner.cluster.as_ref().map(|node| BrokerHealth {
            connected: node.broker.is_connected(),
            trouble: node.trouble(),
        })
    }

    /// Number of live topics.
    pub(crate) fn topic_count(&self) -> usize {
        self.topics().len()
    }

    /// The live topics (only `only`, if given, when it is live), for the admin API.
    pub(crate) fn views(&self, only: Option<&str>) -> Vec<TopicView> {
        let topics = self.topics();
        let view = |entry: &Entry| TopicView {
            name: Arc::clone(&entry.name),
            counters: Arc::clone(entry.topic.counters()),
            history: Arc::clone(entry.topic.history()),
            clients: entry.clients.values().cloned().collect(),
            retired: entry.retired,
        };
        match only {
            Some(name) => topics.get(name).map(view).into_iter().collect(),
            None => topics.values().map(view).collect(),
        }
    }

    /// Joins `name` as the publisher `client`, creating the topic if needed and allowed.
    pub(crate) fn join_publisher(
        &self,
        name: &str,
        form: Form,
        client: Arc<ClientRecord>,
    ) -> Result<(Membership, TopicPublisher), LimitReached> {
        self.join(name, Some(client), |topic| Ok(topic.publisher(form)))
    }

    /// Joins `name` as the subscriber `client` starting at `start`, creating the topic if
    /// needed and allowed. The subscriber gets what history has from `start` on, then every
    /// message the topic appends from this moment on.
    pub(crate) fn join_subscriber(
        &self,
        name: &str,
        start: Start,
        form: Form,
        client: Arc<ClientRecord>,
    ) -> Result<(Membership, TopicFeed), JoinRefused> {
        self.join(name, Some(client), |topic| {
            topic.subscriber(start, form).map_err(JoinRefused::from)
        })
    }

    /// Subscribes the `client` to every topic `pattern` matches, live from now on: those
    /// there are, and each one created while it stays (see [`crate::pattern`]). Its feeds are
    /// in `form`. In cluster mode it reads the stream instead, for the topics of every node;
    /// it returns once that reading exists.
    pub(crate) async fn follow(
        &self,
        pattern: &str,
        form: Form,
        client: Arc<ClientRecord>,
    ) -> Result<(Membership, PatternFeed), JoinRefused> {
        let pattern: Arc<str> = Arc::from(pattern);
        // A stream-mode subscriber learns first that it follows a pattern: no `subscribed`
        // frame may come for a while (until a matching topic has a message).
        let preamble = (form == Form::Named).then(|| {
            let following = Control::Following {
                pattern: pattern.to_string(),
            };
            text_frame(&following.to_json())
        });
        let membership = |id| Membership {
            hub: self.clone(),
            topic: Arc::clone(&pattern),
            client: Some(client),
            follower: Some(id),
        };
        if let Some(node) = &self.inner.cluster {
            let reading = crate::pattern::cluster::read(node, &pattern, form, &self.inner.tracker)
                .await
                .map_err(|error| JoinRefused::Broker(error.to_string()))?;
            let (id, arrivals) = lock(&self.inner.followers).add(Arc::clone(&pattern), form, false);
            let feed = PatternFeed::of_stream(preamble, reading, arrivals);
            return Ok((membership(id), feed));
        }
        let topics = self.topics();
        let (id, arrivals) = lock(&self.inner.followers).add(Arc::clone(&pattern), form, true);
        let existing = topics
            .iter()
            .filter(|(name, entry)| {
                crate::pattern::covers(&pattern, name) && !entry.topic.is_lost()
            })
            .filter_map(|(_, entry)| entry.topic.subscriber(Start::default(), form).ok())
            .collect();
        drop(topics);
        Ok((
            membership(id),
            PatternFeed::new(preamble, existing, arrivals),
        ))
    }

    /// Number of pattern subscribers.
    pub(crate) fn follower_count(&self) -> usize {
        lock(&self.inner.followers).len()
    }

    /// In cluster mode, makes sure topic `name` reads the stream before a subscriber joins
    /// it, so that the join sees where this node's history of it begins, and whatever is
    /// published after the subscriber's 101 reaches it. The membership returned keeps the
    /// topic until the subscriber has joined; `None` in plain mode.
    pub(crate) async fn read_stream(&self, name: &str) -> Result<Option<Membership>, JoinRefused> {
        if self.inner.cluster.is_none() {
            return Ok(None);
        }
        let (membership, reading) =
            self.join(name, None, |topic| Ok::<_, JoinRefused>(topic.reading()))?;
        if let Some(reading) = reading {
            reading
                .ready()
                .await
                .map_err(|error| JoinRefused::Broker(error.to_string()))?;
        }
        Ok(Some(membership))
    }

    fn join<T, E: From<LimitReached>>(
        &self,
        name: &str,
        client: Option<Arc<ClientRecord>>,
        attach: impl FnOnce(&Topic) -> Result<T, E>,
    ) -> Result<(Membership, T), E> {
        let subscriber = client.as_ref().is_some_and(|client| client.is_subscriber());
        let options = &self.inner.options;
        let mut topics = self.topics();
        let topic_count = topics.len();
        let entry = match topics.get_mut(name) {
            Some(entry) => {
                if entry.topic.is_lost() {
                    // Its reading of the cluster's stream ended on lost messages and its
                    // subscribers are being closed (4002): whoever comes now gets a fresh
                    // topic that loads the stream again. Its members still count here.
                    entry.topic = self.spawn_topic(&entry.name);
                }
                entry
            }
            None if options.max_topics != 0 && topic_count >= options.max_topics => {
                return Err(LimitReached::Topics(options.max_topics).into());
            }
            None => {
                let name: Arc<str> = Arc::from(name);
                let topic = self.spawn_topic(&name);
                topics.entry(Arc::clone(&name)).or_insert(Entry {
                    name,
                    topic,
                    members: 0,
                    subscribers: 0,
                    lingering: false,
                    clients: HashMap::new(),
                    retired: Traffic::default(),
                })
            }
        };
        let max_subscribers = options.max_subscribers_per_topic;
        if subscriber && max_subscribers != 0 && entry.subscribers >= max_subscribers {
            // A topic is only ever created for a client it admits, so this entry has members
            // (or history, which keeps it).
            return Err(LimitReached::SubscribersPerTopic(max_subscribers).into());
        }
        let attached = match attach(&entry.topic) {
            Ok(attached) => attached,
            Err(refused) => {
                if entry.members == 0 && !entry.topic.history().expire() {
                    // Created for this client, or kept for a history that has just expired.
                    topics.remove(name);
                }
                return Err(refused);
            }
        };
        entry.members += 1;
        entry.subscribers += usize::from(subscriber);
        if let Some(client) = &client {
            entry.clients.insert(record_key(client), Arc::clone(client));
        }
        let topic = Arc::clone(&entry.name);
        Ok((
            Membership {
                hub: self.clone(),
                topic,
                client,
                follower: None,
            },
            attached,
        ))
    }

    /// Starts topic `name`'s actor, with every pattern subscriber that matches it as a
    /// reader from its first message on. Called under the topics' lock.
    fn spawn_topic(&self, name: &Arc<str>) -> Topic {
        let topic = Topic::spawn(
            Arc::clone(name),
            &self.inner.options,
            &self.inner.tracker,
            &self.inner.metrics,
            &self.inner.pool,
            self.inner.cluster.as_ref(),
        );
        lock(&self.inner.followers)
            .attach(name, |form| topic.subscriber(Start::default(), form).ok());
        topic
    }

    fn leave(&self, name: &str, client: Option<&Arc<ClientRecord>>) {
        let mut topics = self.topics();
        if let Some(entry) = topics.get_mut(name) {
            entry.members -= 1;
            if let Some(client) = client {
                entry.clients.remove(&record_key(client));
                if client.is_subscriber() {
                    entry.subscribers -= 1;
                    entry.retired += client.delivered();
                }
            }
            if entry.members == 0 {
                // Messages still on their way into history keep the topic too: its last
                // publisher may have left a moment after sending them.
                // In cluster mode a topic kept without clients would go on reading the
                // stream: it ends with its last client.
                let keep = self.inner.pool.enabled()
                    && self.inner.cluster.is_none()
                    && !self.inner.shutdown.is_cancelled()
                    && (entry.topic.storing() || entry.topic.history().expire());
                if !keep {
                    topics.remove(name);
                } else if !std::mem::replace(&mut entry.lingering, true) {
                    tokio::spawn(linger(Arc::downgrade(&self.inner), Arc::clone(&entry.name)));
                }
            }
        }
    }

    /// Removes topic `name` if it has no client and its history has expired; otherwise says
    /// what to wait for before looking again (`None`: nothing left to wait for).
    fn remove_if_expired(&self, name: &str) -> Option<Wait> {
        let mut topics = self.topics();
        let entry = topics.get_mut(name)?;
        if entry.members > 0 {
            entry.lingering = false;
            return None;
        }
        if !self.inner.shutdown.is_cancelled() && entry.topic.storing() {
            // Look again once the actor has stored them (it does so at once, no client
            // holding it back).
            return Some(Wait::Storing(entry.topic.storing_signal()));
        }
        let history = entry.topic.history();
        if self.inner.shutdown.is_cancelled() || !history.expire() {
            topics.remove(name);
            return None;
        }
        let expires = history
            .newest_time()?
            .saturating_add(age_micros(&self.inner.options));
        let wait = Duration::from_micros(expires.saturating_sub(now_micros()));
        // A little past the newest message's expiry, so that it has expired by then.
        Some(Wait::Expiry(wait + Duration::from_millis(1)))
    }

    fn topics(&self) -> MutexGuard<'_, HashMap<Arc<str>, Entry>> {
        lock(&self.inner.topics)
    }
}

/// Locks one of the hub's maps. No code panics while holding one; if one ever did, the map
/// is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a topic kept without clients waits for before the hub looks at it again.
enum Wait {
    /// Messages its last publishers queued are still on their way into its history.
    Storing(Storing),
    /// Its newest message expires after this long.
    Expiry(Duration),
}

impl Wait {
    /// Completes when what it waits for is over.
    async fn over(self) {
        match self {
            Wait::Storing(storing) => storing.done().await,
            Wait::Expiry(wait) => tokio::time::sleep(wait).await,
        }
    }
}

fn age_micros(options: &Options) -> u64 {
    u64::try_from(options.history_age.as_micros()).unwrap_or(u64::MAX)
}

/// Keeps a topic without clients until its history has expired (or the server shuts down),
/// then removes it, unless a client joined meanwhile.
async fn linger(hub: Weak<HubInner>, name: Arc<str>) {
    let Some(shutdown) = hub.upgrade().map(|inner| inner.shutdown.clone()) else {
        return;
    };
    loop {
        let Some(wait) = hub
            .upgrade()
            .and_then(|inner| Hub { inner }.remove_if_expired(&name))
        else {
            return;
        };
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = wait.over() => {}
        }
    }
}

/// A client's place in a topic, or among the followers of a pattern; dropping it leaves.
#[derive(Debug)]
pub(crate) struct Membership {
    hub: Hub,
    /// The topic's name, or the pattern.
    topic: Arc<str>,
    /// The client's record; `None` for a topic kept for a moment by the server itself.
    client: Option<Arc<ClientRecord>>,
    /// A pattern subscriber's place among the followers.
    follower: Option<FollowerId>,
}

impl Membership {
    /// The topic's name (a pattern subscriber's pattern).
    pub(crate) fn topic(&self) -> &Arc<str> {
        &self.topic
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        match self.follower {
            Some(id) => lock(&self.hub.inner.followers).remove(id),
            None => self.hub.leave(&self.topic, self.client.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{ClientKind, SubscriberKind};

    fn hub_with(options: Options) -> Hub {
        let pool = HistoryPool::new(&options, crate::retention::HistoryMetrics::default());
        Hub::new(
            Arc::new(options),
            TaskTracker::new(),
            Arc::new(Metrics::new()),
            Arc::new(pool),
            CancellationToken::new(),
            None,
        )
    }

    fn hub() -> Hub {
        hub_with(Options::default())
    }

    fn record(kind: ClientKind) -> Arc<ClientRecord> {
        let peer = "127.0.0.1:1".parse().expect("address");
        Arc::new(ClientRecord::new("test".into(), kind, peer))
    }

    /// A raw subscriber's record.
    fn reader() -> Arc<ClientRecord> {
        record(ClientKind::Subscriber(SubscriberKind::Subscriber))
    }

    /// A publisher's record.
    fn writer() -> Arc<ClientRecord> {
        record(ClientKind::Publisher)
    }

    #[tokio::test]
    async fn topic_and_subscriber_limits_refuse_and_free_up() {
        let options = Options {
            max_topics: 1,
            max_subscribers_per_topic: 1,
            ..Options::default()
        };
        let hub = hub_with(options);
        let (subscriber, _) = hub
            .join_subscriber("/a", Start::default(), Form::Raw, reader())
            .expect("first topic");
        assert_eq!(
            hub.join_subscriber("/b", Start::default(), Form::Raw, reader())
                .err(),
            Some(LimitReached::Topics(1).into())
        );
        assert_eq!(
            hub.join_subscriber("/a", Start::default(), Form::Raw, reader())
                .err(),
            Some(LimitReached::SubscribersPerTopic(1).into())
        );
        let (publisher, _) = hub
            .join_publisher("/a", Form::Raw, writer())
            .expect("publishers are not subscribers");
        drop(subscriber);
        let (again, _) = hub
            .join_subscriber("/a", Start::default(), Form::Raw, reader())
            .expect("the place is free again");
        drop((publisher, again));
        assert_eq!(hub.topic_count(), 0);
        assert!(
            hub.join_publisher("/b", Form::Raw, writer()).is_ok(),
            "the topic place is free again"
        );
    }

    #[tokio::test]
    async fn topic_lives_as_long_as_its_members() {
        let hub = hub();
        let (publisher, _) = hub
            .join_publisher("/a", Form::Raw, writer())
            .expect("no limits");
        let (subscriber, _) = hub
            .join_subscriber("/a", Start::default(), Form::Raw, reader())
            .expect("no limits");
        let (other, _) = hub
            .join_subscriber("/b", Start::default(), Form::Raw, reader())
            .expect("no limits");
        assert_eq!(hub.topic_count(), 2);
        drop(publisher);
        assert_eq!(hub.topic_count(), 2);
        drop(subscriber);
        assert_eq!(hub.topic_count(), 1);
        drop(other);
        assert_eq!(hub.topic_count(), 0);
    }

    #[tokio::test]
    async fn a_topic_with_history_is_kept_by_one_task_however_often_clients_come_and_go() {
        let hub = hub();
        let (publisher, topic) = hub
            .join_publisher("/kept", Form::Raw, writer())
            .expect("no limits");
        let (subscriber, mut feed) = hub
            .join_subscriber("/kept", Start::default(), Form::Raw, reader())
            .expect("no limits");
        topic
            .publish(bytes::Bytes::from_static(b"m"), std::time::Instant::now())
            .await
            .expect("topic alive");
        let mut out = wspubsub_fanout::FrameQueue::default();
        while out.is_empty() {
            feed.changed().await;
            feed.next_batch(&mut out, usize::MAX).expect("not lagged");
        }
        drop((publisher, topic, subscriber, feed));
        assert_eq!(hub.topic_count(), 1, "kept for its history");
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        for _ in 0..20 {
            let (again, _) = hub
                .join_subscriber("/kept", Start::default(), Form::Raw, reader())
                .expect("no limits");
            drop(again);
        }
        assert_eq!(hub.topic_count(), 1);
        assert_eq!(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            tasks,
            "no task more than the one that waits for the history to expire"
        );
    }

    #[tokio::test]
    async fn a_topic_reborn_after_its_end_is_a_new_topic() {
        let hub = hub();
        let (first, _) = hub
            .join_subscriber("/a", Start::default(), Form::Raw, reader())
            .expect("no limits");
        drop(first);
        let (second, _) = hub
            .join_subscriber("/a", Start::default(), Form::Raw, reader())
            .expect("no limits");
        assert_eq!(second.topic().as_ref(), "/a");
        assert_eq!(hub.topic_count(), 1);
    }

    #[tokio::test]
    async fn a_publisher_that_sent_and_left_at_once_leaves_its_messages_in_history() {
        use futures_util::FutureExt;

        let hub = hub();
        let (membership, publisher) = hub
            .join_publisher("/left", Form::Raw, writer())
            .expect("no limits");
        // Queued without yielding: the actor has not stored it when the publisher leaves.
        let queued = publisher.publish(
            bytes::Bytes::from_static(b"last words"),
            std::time::Instant::now(),
        );
        assert!(matches!(queued.now_or_never(), Some(Ok(()))), "room left");
        drop((membership, publisher));
        assert_eq!(hub.topic_count(), 1, "kept while its message is stored");
        // Once it is stored, a subscriber can only get it from history, not live.
        let storing = hub.topics()["/left"].topic.storing_signal();
        tokio::time::timeout(Duration::from_secs(10), storing.done())
            .await
            .expect("the actor stores it");
        let earliest = Start {
            position: wspubsub_protocol::StartPosition::Earliest,
            gap_ok: false,
        };
        let (_subscriber, mut feed) = hub
            .join_subscriber("/left", earliest, Form::Raw, reader())
            .expect("no limits");
        let mut out = wspubsub_fanout::FrameQueue::default();
        loop {
            let batch = feed.next_batch(&mut out, usize::MAX).expect("not lagged");
            if bytes::Buf::remaining(&out) >= 12 {
                break;
            }
            if !batch.more_pending {
                feed.changed().await;
            }
        }
        let frames = bytes::Buf::copy_to_bytes(&mut out, 12);
        assert_eq!(&frames[2..], b"last words");
    }
}
