//! Cluster mode: a pattern subscriber reads the cluster's stream itself, through the NATS
//! subject wildcards its pattern maps to ([`wspubsub_cluster::filters_for`]), so that it gets
//! the matching topics' messages whichever node took them, including topics this node has
//! no client of. It does not read this node's topics as well (they read the same stream:
//! that would deliver twice).
//!
//! It starts right after the newest message the stream holds when it subscribes (live only,
//! as in plain mode), numbers each message as every node does (its stream sequence in the
//! stream's incarnation), and keeps each topic's order (the stream's). A reading that breaks
//! (a NATS server lost, a consumer gone) subscribes again from the message after the last
//! one it read; if the stream no longer holds that one, the subscriber is told it lost
//! messages (closed with 4002), never left to skip them silently.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wspubsub_cluster::broker::{Start, Subscription};
use wspubsub_cluster::{BrokerError, Delivery, filters_for, topic_for};
use wspubsub_fanout::{Form, RecordBuilder, text_frame};
use wspubsub_protocol::{Control, unix_micros};

use crate::cluster::{Backoff, ClusterNode};

/// Frames a reading may have ready before it waits for its subscriber.
const READY_FRAMES: usize = 256;

/// The longest pause between attempts to subscribe again.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Frames for the subscriber, made from one message of the stream.
#[derive(Debug)]
pub(crate) struct Frames {
    /// The frames (a `subscribed` frame before a topic's first message in stream mode).
    pub(crate) bytes: Bytes,
    /// When the node read the message: where its latency is counted from.
    pub(crate) since: Instant,
}

/// A pattern subscriber's reading of the stream.
#[derive(Debug)]
pub(crate) struct StreamReading {
    /// Its frames, message by message.
    pub(crate) frames: mpsc::Receiver<Frames>,
    /// Cancelled when the reading lost messages (the subscriber is closed with 4002).
    pub(crate) lost: CancellationToken,
}

/// Subscribes to every topic `pattern` matches, from the next message the stream stores on;
/// returns once every subscription exists, so that whatever is published after the
/// subscriber's answer reaches it. Its readings run on `tracker` until the returned reading
/// is dropped.
pub(crate) async fn read(
    node: &Arc<ClusterNode>,
    pattern: &str,
    form: Form,
    tracker: &TaskTracker,
) -> Result<StreamReading, BrokerError> {
    let filters = filters_for(pattern)?;
    let next = node.broker.stream_state().await?.last_sequence + 1;
    let (sender, frames) = mpsc::channel(READY_FRAMES);
    let lost = CancellationToken::new();
    for filter in filters {
        let subscription = node
            .broker
            .subscribe_filter(filter.clone(), Start::Sequence(next))
            .await?;
        let reading = Reading {
            node: Arc::clone(node),
            filter,
            form,
            subscription,
            next,
            announced: HashSet::new(),
            out: sender.clone(),
            lost: lost.clone(),
        };
        tracker.spawn(reading.run());
    }
    Ok(StreamReading { frames, lost })
}

/// One filter's reading.
struct Reading {
    node: Arc<ClusterNode>,
    filter: String,
    form: Form,
    subscription: Subscription,
    /// The stream sequence of the next message wanted.
    next: u64,
    /// Topics whose `subscribed` frame was sent (stream mode).
    announced: HashSet<String>,
    out: mpsc::Sender<Frames>,
    lost: CancellationToken,
}

impl Reading {
    /// Reads until the subscriber is gone, or the reading lost messages.
    async fn run(mut self) {
        loop {
            let delivery = tokio::select! {
                () = self.out.closed() => return,
                delivery = self.subscription.next() => delivery,
            };
            match delivery {
                Some(Ok(delivery)) => {
                    self.next = delivery.sequence + 1;
                    let Some(frames) = self.frames_of(&delivery) else {
                        continue;
                    };
                    if self.out.send(frames).await.is_err() {
                        return;
                    }
                }
                Some(Err(error)) => {
                    tracing::debug!(filter = %self.filter, %error, "pattern reading broke; subscribing again");
                    if !self.subscribe_again().await {
                        return;
                    }
                }
                None => {
                    self.lost.cancel();
                    return;
                }
            }
        }
    }

    /// The subscriber's frames of `delivery` (none for a subject that names no topic).
    fn frames_of(&mut self, delivery: &Delivery) -> Option<Frames> {
        let topic = topic_for(&delivery.subject).ok()?;
        let seq = self.node.incarnation().position(delivery.sequence);
        let time = unix_micros(delivery.time).unwrap_or(0);
        let since = Instant::now();
        let mut builder = RecordBuilder::new(usize::MAX);
        let _ = builder.push(&delivery.payload, since, seq, time);
        let mut record = builder.finish()?;
        if self.form == Form::Raw {
            return Some(Frames {
                bytes: record.chunk.frames,
                since,
            });
        }
        record.name(&topic);
        let named = record.chunk.frames_in(Form::Named).clone();
        if self.announced.contains(&topic) {
            return Some(Frames {
                bytes: named,
                since,
            });
        }
        // A topic's first message here: its `subscribed` frame first, delivery beginning
        // at this message (the node knows no more of that topic's history than that).
        let subscribed = Control::Subscribed {
            topic: topic.clone(),
            from: seq,
            head: seq,
            earliest: seq,
        };
        self.announced.insert(topic);
        let mut bytes = text_frame(&subscribed.to_json()).to_vec();
        bytes.extend_from_slice(&named);
        Some(Frames {
            bytes: Bytes::from(bytes),
            since,
        })
    }

    /// Subscribes again from the next message wanted, retrying while NATS refuses; says
    /// whether it did (`false`: the subscriber is gone, or the stream no longer holds that
    /// message, which the subscriber is told).
    async fn subscribe_again(&mut self) -> bool {
        let mut backoff = Backoff::new(Duration::from_millis(100), RETRY_MAX);
        loop {
            let attempt = async {
                let broker = &self.node.broker;
                let state = broker.stream_state().await?;
                if state.first_sequence > self.next {
                    return Ok(None);
                }
                let start = Start::Sequence(self.next);
                broker
                    .subscribe_filter(self.filter.clone(), start)
                    .await
                    .map(Some)
            };
            let attempted: Result<Option<Subscription>, BrokerError> = tokio::select! {
                () = self.out.closed() => return false,
                attempted = attempt => attempted,
            };
            match attempted {
                Ok(Some(subscription)) => {
                    self.subscription = subscription;
                    return true;
                }
                Ok(None) => {
                    self.lost.cancel();
                    return false;
                }
                Err(error) => {
                    tracing::warn!(filter = %self.filter, %error, "pattern reading could not subscribe again; retrying");
                }
            }
            tokio::select! {
                () = self.out.closed() => return false,
                () = backoff.pause() => {}
            }
        }
    }
}
