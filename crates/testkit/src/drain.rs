//! A graceful-shutdown scenario shared by the library's and the binary's tests: a publisher
//! sending numbered messages without pause, subscribers that do not read until the shutdown
//! has begun (so that messages are queued in their sockets, their backlog and the topic when
//! it does), and a check that every subscriber then holds every message the server read,
//! in order, with no gap, before its `1001`.

use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use wspubsub_protocol::{CloseCode, Role};

use crate::{RawClient, TIMEOUT, connect, metric, read_until_close, scrape, within};

/// Bytes per message: large enough that the messages sent before the shutdown are more than
/// the loopback socket buffers hold, so that some are still queued in the server.
const MESSAGE: usize = 1024;

/// Messages sent before [`Drain::start`] returns (24 MiB: within the default backlog bound).
const SENT_BEFORE_SHUTDOWN: u32 = 24 << 10;

/// The scenario's clients, from before the shutdown until the check.
#[derive(Debug)]
pub struct Drain {
    subscribers: Vec<RawClient>,
    /// A subscriber of another topic, read only at the very end, so that the server is still
    /// draining (and serving `/metrics`) while the others are checked.
    holdout: RawClient,
    /// The publisher's task; returns the code of the close frame it got.
    publisher: JoinHandle<Option<u16>>,
}

impl Drain {
    /// Connects `subscribers` subscribers and a publisher to `/drain` on the server at
    /// `base_url` (`ws://host:port`), plus one subscriber of the pattern `/*` (which follows
    /// `/drain` and the silent holdout's topic, so it must get exactly what the others get),
    /// and returns once the publisher has sent many messages; it goes on sending until the
    /// server closes it.
    pub async fn start(base_url: &str, subscribers: usize) -> Drain {
        let url = format!("{base_url}/drain");
        let holdout = connect(&format!("{base_url}/holdout"), Role::Subscriber, None).await;
        let mut readers = Vec::new();
        for _ in 0..subscribers {
            readers.push(connect(&url, Role::Subscriber, None).await);
        }
        readers.push(connect(&format!("{base_url}/*"), Role::Subscriber, None).await);
        let publisher = connect(&url, Role::Publisher, None).await;
        let (sent, sent_enough) = oneshot::channel();
        let publisher = tokio::spawn(publish_until_closed(publisher, sent));
        within(TIMEOUT, sent_enough)
            .await
            .expect("the publisher sent its first messages");
        Drain {
            subscribers: readers,
            holdout,
            publisher,
        }
    }

    /// After the shutdown has begun: checks that the publisher and every subscriber got
    /// `1001`, and that every subscriber got exactly messages `0..n` where `n` is what the
    /// server at `metrics` counts as read from publishers; then lets the server finish.
    pub async fn check(self, metrics: SocketAddr) {
        let going_away = Some(CloseCode::GoingAway.code());
        let publisher_close = within(TIMEOUT, self.publisher)
            .await
            .expect("the publisher task");
        assert_eq!(publisher_close, going_away, "the publisher gets 1001");
        let readers = self.subscribers.into_iter().map(|mut subscriber| {
            tokio::spawn(async move { read_until_close(&mut subscriber).await })
        });
        let mut counts = Vec::new();
        for reader in readers {
            let (messages, close) = reader.await.expect("a subscriber task");
            assert_eq!(
                close.map(|(code, _)| code),
                going_away,
                "subscribers get 1001"
            );
            for (n, message) in messages.iter().enumerate() {
                assert_eq!(
                    message,
                    &numbered(n as u32),
                    "message {n}: in order, no gap"
                );
            }
            counts.push(messages.len());
        }
        let read = metric(&scrape(metrics).await, "wspubsub_messages_received_total")
            .expect("the received counter");
        assert!(read > 0.0, "the server read messages");
        for count in counts {
            assert_eq!(
                count as f64, read,
                "each subscriber holds every message the server read"
            );
        }
        let mut holdout = self.holdout;
        let (messages, close) = read_until_close(&mut holdout).await;
        assert!(messages.is_empty());
        assert_eq!(close.map(|(code, _)| code), going_away);
    }
}

/// Message `n`: its number, then filler up to [`MESSAGE`] bytes.
fn numbered(n: u32) -> Bytes {
    let mut message = vec![0; MESSAGE];
    message[..4].copy_from_slice(&n.to_be_bytes());
    Bytes::from(message)
}

/// Sends numbered messages without pause, saying so on `sent` after the first many, until the
/// server closes the connection; returns the close code.
async fn publish_until_closed(client: RawClient, sent: oneshot::Sender<()>) -> Option<u16> {
    let (mut sink, mut stream) = client.split();
    let mut sent = Some(sent);
    let sending = async {
        for n in 0.. {
            if sink.send(Message::Binary(numbered(n))).await.is_err() {
                break;
            }
            if n + 1 == SENT_BEFORE_SHUTDOWN
                && let Some(sent) = sent.take()
            {
                let _ = sent.send(());
            }
        }
        // Sending failed: wait for the close frame all the same.
        std::future::pending::<()>().await;
    };
    let closed = async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|frame| u16::from(frame.code)),
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("publisher connection failed: {error}"),
                None => panic!("publisher connection ended without a close frame"),
            }
        }
    };
    let code = tokio::select! {
        () = sending => None,
        code = closed => code,
    };
    // Reading on sends our echo of the close, which completes the handshake.
    let _ = tokio::time::timeout(TIMEOUT, stream.next()).await;
    code
}
