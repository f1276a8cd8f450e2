//! The stream-mode subscriber (`wspubsub.v2`): every message with its position, a start
//! position of the subscriber's choosing, and, with a reconnect policy, connections that
//! resume where the last one left off.

mod event;
mod resume;
mod supervise;
mod url;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use wspubsub_protocol::{Role, StartPosition, unix_micros};

pub use self::event::{Event, Message};
use self::resume::Resume;
use self::supervise::supervise;
use self::url::start_url;
use super::Receiving;
use crate::reconnect::Reconnect;
use crate::socket::{self, Mode};
use crate::{ClientError, ClientOptions};

/// Where a stream-mode subscriber starts, and whether it reconnects.
#[derive(Debug, Clone, Default)]
pub struct SubscriberOptions {
    start: StartPosition,
    reconnect: Option<Reconnect>,
}

impl SubscriberOptions {
    /// Where delivery starts: [`StartPosition::Latest`] (the default: what is published
    /// after the subscriber joined), [`StartPosition::Earliest`] (all the history the server
    /// holds), [`StartPosition::Seq`] (a position: one past the last message seen, to resume),
    /// or [`StartPosition::Since`] (a time, in unix microseconds).
    pub fn start(mut self, start: StartPosition) -> Self {
        self.start = start;
        self
    }

    /// Starts with the first message the server took at or after `time`.
    pub fn since(self, time: SystemTime) -> Self {
        self.start(StartPosition::Since(unix_micros(time).unwrap_or(0)))
    }

    /// Connects again after a connection ends for a reason a new connection can fix, and
    /// resumes right after the last message yielded. Without it (the default) the
    /// subscriber ends with its connection.
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.reconnect = Some(policy);
        self
    }
}

/// A stream-mode subscriber of one topic. Dropping it closes the connection (1000).
///
/// As a [`Stream`] it yields, in order, `Ok(`[`Event`]`)`s: every message with its position,
/// each exactly once; a [`Event::Gap`] where messages it asked for will never come (history
/// no longer holds them), so that nothing is skipped silently; with a reconnect policy, a
/// [`Event::Reconnected`] each time a new connection resumed. When the subscriber ends with
/// an error (the server's close, a lost connection the policy does not retry), one last
/// `Err(error)`; then `None`, for good ([`FusedStream`]).
///
/// Messages published while it was disconnected come after a reconnect as long as the
/// server's history still holds them (`--history-*` on the server), else a gap says which
/// are gone.
#[derive(Debug)]
pub struct StreamSubscriber {
    receiving: Receiving<Event>,
}

impl StreamSubscriber {
    /// Connects to `url` (`ws://host:port/topic`, or `wss://`) in stream mode, starting where
    /// `subscriber` says. The URL must not name a start position itself. Fails at once, with
    /// no retry, when this first connection cannot be made
    /// ([`ClientError::NoStreamMode`] for a server that does not speak stream mode).
    pub async fn connect(
        url: &str,
        options: ClientOptions,
        subscriber: SubscriberOptions,
    ) -> Result<StreamSubscriber, ClientError> {
        if let Some(policy) = &subscriber.reconnect {
            policy.validate()?;
        }
        let resume = Resume::new(subscriber.start);
        let first = start_url(url, resume.position())?;
        let socket = socket::connect(&first, Role::Subscriber, Mode::Stream, &options).await?;
        let url = url.to_owned();
        let receiving = Receiving::start(&options.clone(), |outbox, close| {
            supervise(
                socket,
                url,
                resume,
                subscriber.reconnect,
                outbox,
                close,
                options,
            )
        });
        Ok(StreamSubscriber { receiving })
    }

    /// Closes the connection (1000), waits for the end, and says how it ended: `Ok` for a clean
    /// close. Events already received can still be read from the stream.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.receiving.close().await
    }

    /// Waits until the subscriber has ended, however, and says how: `Ok` only after our own
    /// close. The stream's last item says the same.
    pub async fn done(&self) -> Result<(), ClientError> {
        self.receiving.outcome.wait().await
    }

    /// The error that ended the subscriber, if it has ended with one.
    pub fn error(&self) -> Option<ClientError> {
        self.receiving.outcome.error()
    }
}

impl Stream for StreamSubscriber {
    type Item = Result<Event, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().receiving.inbox.poll_next(cx)
    }
}

impl FusedStream for StreamSubscriber {
    fn is_terminated(&self) -> bool {
        self.receiving.inbox.is_terminated()
    }
}
