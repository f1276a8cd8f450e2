//! Driving one load test: subscribers first, then publishers, then the verdicts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::task::JoinSet;
use wspubsub_pubclient::{ClientError, ClientOptions, Publisher};
use wspubsub_server::{Options, Server, ServerHandle};
use wspubsub_subclient::{
    DEFAULT_RECEIVE_BUFFER_BYTES, DEFAULT_RECEIVE_BUFFER_MESSAGES, StreamSubscriber, Subscriber,
};
use wspubsub_testdata::DataSet;

use crate::disrupt;
use crate::placement::{NodeSet, Placement, PlacementError};
use crate::progress::Progress;
use crate::proxied::{server_addr, through_proxy};
use crate::report::{Expected, Gap, Report, judge_all};

/// The shape of one load test.
#[derive(Debug, Clone)]
pub struct LoadTest {
    /// Publishers, each sending the whole data set.
    pub publishers: usize,
    /// Subscribers, each of which must receive everything.
    pub subscribers: usize,
    /// Topic (URL path) to use.
    pub topic: String,
    /// Bound on the whole run, from the first connection to the last verdict.
    pub timeout: Duration,
    /// How many times to break every subscriber's connection (`--disrupt`). With 0, the
    /// subscribers are raw (protocol v1) ones, connected straight to the server; with more,
    /// stream-mode ones that reconnect and resume, each behind its own proxy.
    pub disrupt: usize,
    /// The nodes (of the URL list) publishers are spread over, round-robin.
    pub publisher_nodes: NodeSet,
    /// The nodes (of the URL list) subscribers are spread over, round-robin.
    pub subscriber_nodes: NodeSet,
}

impl LoadTest {
    /// Where each client of this test connects, on the nodes at `urls`.
    pub fn placement(&self, urls: &[String]) -> Result<Placement, PlacementError> {
        Placement::new(
            urls,
            (self.publishers, &self.publisher_nodes),
            (self.subscribers, &self.subscriber_nodes),
        )
    }
}

impl Default for LoadTest {
    fn default() -> Self {
        LoadTest {
            publishers: 5,
            subscribers: 5,
            topic: "/loadtest".into(),
            timeout: Duration::from_secs(120),
            disrupt: 0,
            publisher_nodes: NodeSet::all(),
            subscriber_nodes: NodeSet::all(),
        }
    }
}

/// Why a load test could not be run at all (as opposed to running and failing).
#[derive(Debug, thiserror::Error)]
pub enum LoadTestError {
    /// The clients cannot be placed on the nodes given.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// A client could not connect.
    #[error("{role} {index} could not connect to {url}: {source}")]
    Connect {
        /// `publisher` or `subscriber`.
        role: &'static str,
        /// Which one.
        index: usize,
        /// The topic's URL on its node.
        url: String,
        /// Why.
        source: ClientError,
    },
    /// A publisher failed while sending.
    #[error("publisher {index} failed: {source}")]
    Publish {
        /// Which one.
        index: usize,
        /// Why.
        source: ClientError,
    },
    /// `--disrupt` cannot put a proxy in front of this URL.
    #[error("cannot disrupt {url}: {why}")]
    DisruptUrl {
        /// The topic's URL.
        url: String,
        /// Why not.
        why: String,
    },
    /// The server behind the URL cannot be reached (to put a proxy in front of it).
    #[error("cannot reach the server of {url}: {source}")]
    Unreachable {
        /// The topic's URL.
        url: String,
        /// Why.
        source: std::io::Error,
    },
    /// A subscriber's proxy could not start.
    #[error("cannot start a proxy: {0}")]
    Proxy(std::io::Error),
    /// The run did not finish within its timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The in-process server could not start.
    #[error("in-process server: {0}")]
    Server(#[from] wspubsub_server::ServerError),
    /// A task of the load test panicked or was cancelled.
    #[error("load test task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs `test` with `data` against the servers (nodes) at `base_urls` (`ws://host:port`
/// each), its clients placed on them as [`LoadTest::placement`] says.
pub async fn run(
    base_urls: &[String],
    data: &DataSet,
    test: &LoadTest,
    progress: &Progress,
) -> Result<Report, LoadTestError> {
    let started = Instant::now();
    match tokio::time::timeout(
        test.timeout,
        run_unbounded(base_urls, data, test, progress, started),
    )
    .await
    {
        Ok(report) => report,
        Err(_) => Err(LoadTestError::Timeout(test.timeout)),
    }
}

async fn run_unbounded(
    base_urls: &[String],
    data: &DataSet,
    test: &LoadTest,
    progress: &Progress,
    started: Instant,
) -> Result<Report, LoadTestError> {
    let placement = test.placement(base_urls)?;
    let urls: Vec<String> = base_urls
        .iter()
        .map(|base_url| format!("{}{}", base_url.trim_end_matches('/'), test.topic))
        .collect();
    let per_subscriber = test.publishers * data.len();
    progress.start((per_subscriber * test.subscribers) as u64);

    // Subscribers first: each is registered by the time its connect returns. A disrupted
    // one's proxy leads to the server of its own node.
    let mut servers = vec![None; urls.len()];
    if test.disrupt > 0 {
        for index in 0..test.subscribers {
            let node = placement.subscriber(index);
            if servers[node].is_none() {
                servers[node] = Some(server_addr(&urls[node]).await?);
            }
        }
    }
    // Each subscriber keeps every message to hash them at the end anyway, so its receive
    // buffer may hold the whole run: the load test measures the server, and a consumer
    // (this process, hashing on a busy machine) slower than the socket must not cut itself.
    let run_bytes = usize::try_from(data.total_bytes())
        .unwrap_or(usize::MAX)
        .saturating_mul(test.publishers);
    let receive_buffer = (
        DEFAULT_RECEIVE_BUFFER_MESSAGES.max(per_subscriber),
        DEFAULT_RECEIVE_BUFFER_BYTES.max(run_bytes),
    );
    let mut subscribers = JoinSet::new();
    for index in 0..test.subscribers {
        let node = placement.subscriber(index);
        let url = &urls[node];
        let options = ClientOptions::default()
            .name(format!("loadtest-sub-{index}"))
            .receive_buffer(receive_buffer.0, receive_buffer.1);
        let connect_error = |source| LoadTestError::Connect {
            role: "subscriber",
            index,
            url: url.clone(),
            source,
        };
        let progress = progress.clone();
        let Some(server) = servers[node] else {
            let subscriber = Subscriber::connect(url, options)
                .await
                .map_err(connect_error)?;
            subscribers.spawn(async move {
                let received = collect(subscriber, per_subscriber, &progress).await;
                (index, node, received)
            });
            continue;
        };
        let (proxy, proxied) = through_proxy(url, server).await?;
        let subscriber =
            StreamSubscriber::connect(&proxied, options, disrupt::subscriber_options())
                .await
                .map_err(connect_error)?;
        let points = disrupt::reset_points(test.disrupt, per_subscriber);
        subscribers.spawn(async move {
            let received =
                disrupt::collect(subscriber, proxy, points, per_subscriber, &progress).await;
            (index, node, received)
        });
    }

    let publishing = Instant::now();
    let messages: Arc<[Bytes]> = data.messages().into();
    let mut publishers = JoinSet::new();
    for index in 0..test.publishers {
        let options = ClientOptions::default().name(format!("loadtest-pub-{index}"));
        let url = &urls[placement.publisher(index)];
        let publisher =
            Publisher::connect(url, options)
                .await
                .map_err(|source| LoadTestError::Connect {
                    role: "publisher",
                    index,
                    url: url.clone(),
                    source,
                })?;
        let messages = Arc::clone(&messages);
        publishers.spawn(async move {
            for message in messages.iter() {
                publisher
                    .publish(message.clone())
                    .await
                    .map_err(|source| (index, source))?;
            }
            publisher.close().await.map_err(|source| (index, source))
        });
    }
    while let Some(published) = publishers.join_next().await {
        published?.map_err(|(index, source)| LoadTestError::Publish { index, source })?;
    }

    // Delivery is timed to the last subscriber's last message; hashing comes after.
    let mut collected = Vec::with_capacity(test.subscribers);
    while let Some(joined) = subscribers.join_next().await {
        collected.push(joined?);
    }
    let delivered_at = collected
        .iter()
        .filter_map(|(_, _, received)| received.completed_at)
        .max();
    let elapsed = delivered_at
        .unwrap_or_else(Instant::now)
        .saturating_duration_since(publishing);
    let expected = Expected {
        messages: per_subscriber,
        digest: data.expected_digest(test.publishers),
        reconnects: test.disrupt,
    };
    let verdicts = judge_all(collected, expected);
    progress.finish();
    Ok(Report {
        verdicts,
        expected: expected.digest,
        expected_messages: per_subscriber,
        expected_reconnects: test.disrupt,
        nodes: placement.nodes(),
        message_bytes: data.total_bytes() * test.publishers as u64,
        elapsed,
        total_elapsed: started.elapsed(),
    })
}

/// What one subscriber received, and how its connection ended if it ended early.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) messages: Vec<Bytes>,
    pub(crate) ended_early: Option<String>,
    /// When the last expected message arrived (`None` if it never did).
    pub(crate) completed_at: Option<Instant>,
    /// Times a stream-mode subscriber connected again.
    pub(crate) reconnects: usize,
    /// Why each reconnect that no reset of the run caused happened.
    pub(crate) unplanned: Vec<String>,
    /// Gaps announced to a stream-mode subscriber.
    pub(crate) gaps: Vec<Gap>,
}

impl Received {
    /// Nothing yet, with room for `wanted` messages.
    pub(crate) fn new(wanted: usize) -> Received {
        Received {
            messages: Vec::with_capacity(wanted),
            ended_early: None,
            completed_at: None,
            reconnects: 0,
            unplanned: Vec::new(),
            gaps: Vec::new(),
        }
    }
}

/// How a subscriber's stream ended before it had everything: its last item, an error, or
/// its bare end (a close).
pub(crate) fn ended_early<T, E: std::fmt::Display>(ended: Option<Result<T, E>>) -> String {
    match ended {
        Some(Err(error)) => error.to_string(),
        _ => "connection closed".to_owned(),
    }
}

/// Reads `wanted` messages (one more is an error the verdict reports) and closes.
async fn collect(mut subscriber: Subscriber, wanted: usize, progress: &Progress) -> Received {
    let mut received = Received::new(wanted);
    while received.messages.len() < wanted {
        match subscriber.next().await {
            Some(Ok(message)) => {
                received.messages.push(message);
                progress.delivered(1);
            }
            ended => {
                received.ended_early = Some(ended_early(ended));
                return received;
            }
        }
    }
    received.completed_at = Some(Instant::now());
    // Every expected message is in; anything more that arrives before our close is a duplicate.
    let _ = subscriber.close().await;
    while let Some(Ok(extra)) = subscriber.next().await {
        received.messages.push(extra);
    }
    received
}

/// A wspubsub server on 127.0.0.1 with a free port, for runs without `--url`.
#[derive(Debug)]
pub struct InProcessServer {
    url: String,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<()>,
}

impl InProcessServer {
    /// Starts a server with default options.
    pub async fn start() -> Result<InProcessServer, LoadTestError> {
        InProcessServer::start_with(Options::default()).await
    }

    /// Starts a server with `options` (its address is chosen here).
    pub async fn start_with(options: Options) -> Result<InProcessServer, LoadTestError> {
        let server = Server::bind("127.0.0.1:0", options).await?;
        let addr = server
            .local_addr()
            .map_err(wspubsub_server::ServerError::Bind)?;
        let handle = server.handle();
        let task = tokio::spawn(server.run());
        Ok(InProcessServer {
            url: format!("ws://{addr}"),
            handle,
            task,
        })
    }

    /// The server's base URL, `ws://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) -> Result<(), LoadTestError> {
        self.handle.shutdown();
        self.task.await?;
        Ok(())
    }
}
