//! The load of the `fanout` and `many` scenarios: publishers that keep a window of messages in
//! flight (or hold a fixed rate), and subscribers that check every message and time it.
//!
//! Each message carries its sequence number and its send time; every subscriber must see
//! 0, 1, 2, ... of its topic's publisher with no gap, then an end marker, so a run that lost,
//! duplicated or reordered anything ends in an error instead of a figure. Subscribers speak
//! raw or stream mode ([`Mode`]), or are Server-Sent Events subscribers over HTTP; in stream
//! mode the envelopes are checked too, over SSE the events' ids and base64.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::access::Access;
use crate::mode::{Frames, Mode};
use crate::sse::EventStream;
use crate::target::Target;

/// Sequence number of the end marker.
const END: u64 = u64::MAX;

/// Bytes of a message's header: sequence number and send time.
pub(crate) const HEADER: usize = 16;

/// Most messages a publisher writes per flush.
const BURST: u64 = 64;

/// How long a publisher waits for the server to answer its close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the drain after a run may take before it counts as a failure.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct LoadSpec {
    /// Topics, each with one publisher.
    pub(crate) topics: usize,
    /// Subscribers of each topic.
    pub(crate) subscribers_per_topic: usize,
    /// Bytes per message (at least [`HEADER`]).
    pub(crate) payload: usize,
    /// Messages a publisher may have in flight (sent, not yet received by all subscribers):
    /// with 1, each message is sent once every subscriber has the one before.
    pub(crate) window: usize,
    /// Time before measuring.
    pub(crate) warmup: Duration,
    /// Time measured.
    pub(crate) duration: Duration,
    /// Fixed rate per publisher (messages/s), or as fast as the window allows.
    pub(crate) rate: Option<f64>,
    /// What the subscribers speak (publishers are raw WebSocket clients).
    pub(crate) mode: Mode,
}

/// A client's WebSocket, over TLS or not.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What one run measured.
#[derive(Debug)]
pub(crate) struct Measurement {
    /// Deliveries (message x subscriber) during the measured time.
    pub(crate) delivered: u64,
    /// Messages published during the measured time.
    pub(crate) published: u64,
    /// The measured time.
    pub(crate) seconds: f64,
    /// Server CPU seconds during the measured time (every node's and the broker's).
    pub(crate) server_cpu: f64,
    /// The broker's part of `server_cpu` (0 without one).
    pub(crate) broker_cpu: f64,
    /// Publish-to-receive latency of the measured deliveries, in nanoseconds.
    pub(crate) latency: Histogram<u64>,
    /// Correctness failures (lost, reordered or duplicated messages, early ends).
    pub(crate) errors: Vec<String>,
    /// Time to connect all subscribers, one after another (TCP, TLS, WebSocket handshake).
    pub(crate) connect_seconds: f64,
    /// Server CPU seconds meanwhile.
    pub(crate) connect_server_cpu: f64,
}

/// State shared by a run's tasks.
struct Run {
    start: Instant,
    measuring: AtomicU8,
    stop: AtomicBool,
    published: AtomicU64,
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const DONE: u8 = 2;

/// One topic's delivery progress, which paces its publisher.
struct Progress {
    /// Deliveries so far, over all the topic's subscribers.
    delivered: AtomicU64,
    /// Told each time a message has reached as many subscribers as the topic has (the only
    /// moments its publisher's window can open).
    notify: Notify,
    /// Subscribers of the topic (at least 1).
    subscribers: u64,
}

impl Progress {
    fn new(subscribers: usize) -> Progress {
        Progress {
            delivered: AtomicU64::new(0),
            notify: Notify::new(),
            subscribers: subscribers.max(1) as u64,
        }
    }

    /// Counts one delivery; wakes the publisher when a message's worth is complete.
    fn delivered_one(&self) {
        let delivered = self.delivered.fetch_add(1, Ordering::Release) + 1;
        if delivered.is_multiple_of(self.subscribers) {
            self.notify.notify_one();
        }
    }

    /// Messages the publisher may send now, having sent `sent`, with `window` in flight at
    /// most: a message counts as in flight until every subscriber has it.
    fn room(&self, sent: u64, window: usize) -> u64 {
        let limit = window.max(1) as u64 * self.subscribers;
        let in_flight =
            (sent * self.subscribers).saturating_sub(self.delivered.load(Ordering::Acquire));
        limit.saturating_sub(in_flight) / self.subscribers
    }
}

/// Runs `spec` against `server` and measures it.
pub(crate) async fn run(server: &impl Target, spec: &LoadSpec) -> anyhow::Result<Measurement> {
    let access = server.access();
    let run = Arc::new(Run {
        start: Instant::now(),
        measuring: AtomicU8::new(WARMUP),
        stop: AtomicBool::new(false),
        published: AtomicU64::new(0),
    });
    let mut progress = Vec::with_capacity(spec.topics);
    let mut subscribers = JoinSet::new();
    let (connecting, connect_cpu_0) = (Instant::now(), server.cpu_seconds()?);
    for topic in 0..spec.topics {
        let topic_progress = Arc::new(Progress::new(spec.subscribers_per_topic));
        for index in 0..spec.subscribers_per_topic {
            let path = format!("/bench/{topic}");
            let addr = server.subscriber_addr(index);
            let connection = connect_subscriber(spec.mode, addr, access, &path).await?;
            let (run, topic_progress) = (Arc::clone(&run), Arc::clone(&topic_progress));
            let reader = Reader {
                frames: Frames::new(spec.mode),
                size: spec.payload.max(HEADER),
            };
            subscribers.spawn(async move {
                (
                    topic,
                    subscribe(connection, reader, &run, &topic_progress).await,
                )
            });
        }
        progress.push(topic_progress);
    }
    let connect_seconds = connecting.elapsed().as_secs_f64();
    let connect_server_cpu = server.cpu_seconds()? - connect_cpu_0;
    let mut publishers = JoinSet::new();
    for (topic, topic_progress) in progress.iter().enumerate() {
        let addr = server.publisher_addr();
        let ws = connect(addr, access, &format!("/bench/{topic}"), "publisher", None).await?;
        let (run, topic_progress, spec) =
            (Arc::clone(&run), Arc::clone(topic_progress), spec.clone());
        // Paced publishers spread their ticks evenly over one period, not all at once.
        let phase = topic as f64 / spec.topics as f64;
        publishers.spawn(async move {
            let sent = publish(ws, &run, &topic_progress, &spec, phase).await;
            (topic, sent)
        });
    }

    tokio::time::sleep(spec.warmup).await;
    let delivered = || {
        progress
            .iter()
            .map(|p| p.delivered.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let (delivered_0, published_0, cpu_0, broker_0) = (
        delivered(),
        run.published.load(Ordering::Relaxed),
        server.cpu_seconds()?,
        server.broker_cpu_seconds()?,
    );
    let started = Instant::now();
    run.measuring.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(spec.duration).await;
    let (delivered_1, published_1, cpu_1, broker_1) = (
        delivered(),
        run.published.load(Ordering::Relaxed),
        server.cpu_seconds()?,
        server.broker_cpu_seconds()?,
    );
    let seconds = started.elapsed().as_secs_f64();
    run.measuring.store(DONE, Ordering::Relaxed);
    run.stop.store(true, Ordering::Relaxed);

    let mut errors = Vec::new();
    let mut sent = vec![0u64; spec.topics];
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Some(joined) = publishers.join_next().await {
            match joined.context("publisher task")? {
                (topic, Ok(count)) => sent[topic] = count,
                (topic, Err(error)) => errors.push(format!("publisher of topic {topic}: {error}")),
            }
        }
        let mut latency = histogram();
        while let Some(joined) = subscribers.join_next().await {
            let (topic, outcome) = joined.context("subscriber task")?;
            match outcome {
                Ok((received, histogram)) => {
                    if received != sent[topic] {
                        errors.push(format!(
                            "a subscriber of topic {topic} got {received} of {} messages",
                            sent[topic]
                        ));
                    }
                    latency.add(histogram).context("merge latency")?;
                }
                Err(error) => errors.push(format!("a subscriber of topic {topic}: {error}")),
            }
        }
        anyhow::Ok(latency)
    })
    .await;
    let latency = match drained {
        Ok(latency) => latency?,
        Err(_) => {
            errors.push(format!("the run did not drain within {DRAIN_TIMEOUT:?}"));
            histogram()
        }
    };
    Ok(Measurement {
        delivered: delivered_1 - delivered_0,
        published: published_1 - published_0,
        seconds,
        server_cpu: cpu_1 - cpu_0,
        broker_cpu: broker_1 - broker_0,
        latency,
        errors,
        connect_seconds,
        connect_server_cpu,
    })
}

/// A latency histogram: 1 ns to 1 h, three significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("constant, valid bounds")
}

/// Connects a raw WebSocket client to `path` in `role`, from `source` if given, with what
/// `access` says the server needs (TLS, a token).
pub(crate) async fn connect(
    addr: SocketAddr,
    access: &Access,
    path: &str,
    role: &'static str,
    source: Option<IpAddr>,
) -> anyhow::Result<Socket> {
    connect_as(Mode::Raw, addr, access, path, role, source).await
}

/// Connects a WebSocket client speaking `mode` to `path` (with its query) in `role`, as
/// [`connect`] does.
pub(crate) async fn connect_as(
    mode: Mode,
    addr: SocketAddr,
    access: &Access,
    path: &str,
    role: &'static str,
    source: Option<IpAddr>,
) -> anyhow::Result<Socket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(source) = source {
        socket
            .bind(SocketAddr::new(source, 0))
            .with_context(|| format!("bind {source}"))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let mut request = format!("{}://{addr}{path}", access.scheme()).into_client_request()?;
    request
        .headers_mut()
        .insert("pubsub", HeaderValue::from_static(role));
    access.authorize(&mut request);
    mode.offer(&mut request);
    // Small read buffers: thousands of these live in this one process.
    let config = WebSocketConfig::default().read_buffer_size(16 << 10);
    let (ws, _) = tokio_tungstenite::client_async_tls_with_config(
        request,
        stream,
        Some(config),
        Some(access.connector()),
    )
    .await?;
    Ok(ws)
}

/// A subscriber's connection: a WebSocket (raw or stream mode) or an event stream.
enum Connection {
    /// Raw or stream mode (boxed: a WebSocket is much larger than an event stream).
    WebSocket(Box<Socket>),
    /// Server-Sent Events.
    Events(EventStream),
}

/// Connects a subscriber of `path` speaking `mode`; an SSE subscriber needs a server without
/// TLS and auth.
async fn connect_subscriber(
    mode: Mode,
    addr: SocketAddr,
    access: &Access,
    path: &str,
) -> anyhow::Result<Connection> {
    if mode == Mode::Sse {
        anyhow::ensure!(
            access.is_plain(),
            "the bench's SSE subscribers speak plain HTTP without a token"
        );
        return Ok(Connection::Events(EventStream::open(addr, path).await?));
    }
    let ws = connect_as(mode, addr, access, path, "subscriber", None).await?;
    Ok(Connection::WebSocket(Box::new(ws)))
}

/// Publishes numbered, timestamped messages until told to stop, then the end marker;
/// returns how many it sent. A paced publisher starts its ticks `phase` (0 to 1) of a
/// period late.
async fn publish(
    mut ws: Socket,
    run: &Run,
    progress: &Progress,
    spec: &LoadSpec,
    phase: f64,
) -> anyhow::Result<u64> {
    let mut payload = vec![0u8; spec.payload.max(HEADER)];
    let mut pacer = spec.rate.map(|rate| Pacer::new(rate, phase));
    let mut sent = 0u64;
    while !run.stop.load(Ordering::Relaxed) {
        let room = progress.room(sent, spec.window);
        if room == 0 {
            // The bound only lets a lost wake-up cost 10 ms; the stop flag is seen as soon.
            let _ =
                tokio::time::timeout(Duration::from_millis(10), progress.notify.notified()).await;
            continue;
        }
        let mut burst = room.min(BURST);
        if let Some(pacer) = &mut pacer {
            burst = burst.min(pacer.due().await);
            if burst == 0 {
                continue;
            }
        }
        for _ in 0..burst {
            stamp(&mut payload, sent, run.start.elapsed().as_nanos() as u64);
            ws.feed(Message::Binary(Bytes::copy_from_slice(&payload)))
                .await?;
            sent += 1;
        }
        ws.flush().await?;
        run.published.fetch_add(burst, Ordering::Relaxed);
    }
    stamp(&mut payload, END, 0);
    ws.send(Message::Binary(Bytes::copy_from_slice(&payload)))
        .await?;
    close(&mut ws).await;
    Ok(sent)
}

/// Closes `ws` and reads until the server's close answer (or [`CLOSE_TIMEOUT`]): a socket
/// dropped with unread data (the server's pings, which arrive every few seconds) is reset,
/// and the reset discards whatever the server has not read yet. When this returns, the server
/// has also seen the close.
pub(crate) async fn close(ws: &mut Socket) {
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Writes a message's header: its sequence number and send time.
pub(crate) fn stamp(payload: &mut [u8], sequence: u64, sent_at: u64) {
    payload[..8].copy_from_slice(&sequence.to_be_bytes());
    payload[8..16].copy_from_slice(&sent_at.to_be_bytes());
}

/// A subscriber's view of its messages: how its frames become payloads, and the size every
/// payload must have.
#[derive(Debug)]
pub(crate) struct Reader {
    /// The frames, raw or enveloped.
    pub(crate) frames: Frames,
    /// Bytes of every message (header included).
    pub(crate) size: usize,
}

impl Reader {
    /// The header of the next message from `ws`, after checking its frame and its size;
    /// `None` when the connection ended.
    pub(crate) async fn next(&mut self, ws: &mut Socket) -> Option<anyhow::Result<Stamp>> {
        loop {
            let message = match ws.next().await? {
                Ok(Message::Close(frame)) => return Some(Err(closed(frame.as_ref()))),
                Ok(message) => message,
                Err(error) => return Some(Err(error.into())),
            };
            return match self.frames.payload(&message) {
                Ok(Some(payload)) => Some(self.stamp(payload)),
                Ok(None) => continue,
                Err(error) => Some(Err(error)),
            };
        }
    }

    /// The header of the next message on `connection`, as [`Reader::next`] reads it from a
    /// WebSocket; an event stream's events are checked as they are parsed.
    async fn next_on(&mut self, connection: &mut Connection) -> Option<anyhow::Result<Stamp>> {
        match connection {
            Connection::WebSocket(ws) => self.next(ws).await,
            Connection::Events(events) => Some(events.next().await?.and_then(|p| self.stamp(p))),
        }
    }

    /// The header of `payload`, which must be `size` bytes long.
    fn stamp(&self, payload: &[u8]) -> anyhow::Result<Stamp> {
        anyhow::ensure!(
            payload.len() == self.size,
            "a message of {} bytes, expected {}",
            payload.len(),
            self.size
        );
        Ok(Stamp {
            sequence: u64::from_be_bytes(payload[..8].try_into()?),
            sent_at: u64::from_be_bytes(payload[8..16].try_into()?),
        })
    }
}

/// The error of a server's close before the end marker: its code and reason say why (a
/// slow subscriber, a missed pong, ...).
fn closed(frame: Option<&CloseFrame>) -> anyhow::Error {
    match frame {
        Some(frame) => anyhow::anyhow!(
            "the server closed the connection with {} {:?}",
            u16::from(frame.code),
            frame.reason.as_str()
        ),
        None => anyhow::anyhow!("the server closed the connection without a code"),
    }
}

/// A message's header, as its publisher wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The publisher's count of messages before this one, or [`END`].
    pub(crate) sequence: u64,
    /// When it was sent, in nanoseconds since the run started.
    pub(crate) sent_at: u64,
}

/// Reads until the end marker, checking order; returns the count and the latencies.
async fn subscribe(
    mut connection: Connection,
    mut reader: Reader,
    run: &Run,
    progress: &Progress,
) -> anyhow::Result<(u64, Histogram<u64>)> {
    let mut expected = 0u64;
    let mut latency = histogram();
    loop {
        match reader.next_on(&mut connection).await {
            Some(Ok(Stamp { sequence, sent_at })) => {
                if sequence == END {
                    return Ok((expected, latency));
                }
                anyhow::ensure!(
                    sequence == expected,
                    "expected message {expected}, got {sequence}"
                );
                expected += 1;
                if run.measuring.load(Ordering::Relaxed) == MEASURE {
                    let now = run.start.elapsed().as_nanos() as u64;
                    latency.saturating_record(now.saturating_sub(sent_at).max(1));
                }
                progress.delivered_one();
            }
            Some(Err(error)) => anyhow::bail!("after {expected} messages: {error}"),
            None => {
                anyhow::bail!("connection ended after {expected} messages without the end marker")
            }
        }
    }
}

/// Holds a fixed rate: below 1,000 messages/s one tick per message (a trickle costs the
/// load one wake-up per message, not one per millisecond), above it 1 ms ticks, each owing
/// its share of messages.
struct Pacer {
    per_tick: f64,
    owed: f64,
    ticks: tokio::time::Interval,
}

/// The shortest tick of a [`Pacer`].
const MIN_TICK: Duration = Duration::from_millis(1);

/// The longest tick of a [`Pacer`] (a rate below one message an hour is no rate).
const MAX_TICK: Duration = Duration::from_secs(3600);

impl Pacer {
    /// A pacer of `rate` messages/s whose first tick comes `phase` (0 to 1) of a tick late.
    fn new(rate: f64, phase: f64) -> Self {
        let tick = Pacer::tick(rate);
        let first = Instant::now() + tick.mul_f64(phase.clamp(0.0, 1.0));
        let mut ticks = tokio::time::interval_at(first, tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Pacer {
            per_tick: rate * tick.as_secs_f64(),
            owed: 0.0,
            ticks,
        }
    }

    /// The tick for `rate` messages/s: one message's time, within [`MIN_TICK`]..[`MAX_TICK`].
    fn tick(rate: f64) -> Duration {
        let seconds = 1.0 / rate.max(f64::MIN_POSITIVE);
        Duration::from_secs_f64(seconds.clamp(MIN_TICK.as_secs_f64(), MAX_TICK.as_secs_f64()))
    }

    /// Waits for the next tick; returns how many messages are due.
    async fn due(&mut self) -> u64 {
        self.ticks.tick().await;
        self.owed += self.per_tick;
        let due = self.owed.floor();
        self.owed -= due;
        due as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_must_have_its_full_size() -> anyhow::Result<()> {
        let reader = Reader {
            frames: Frames::new(Mode::Raw),
            size: 20,
        };
        let mut payload = [0u8; 20];
        stamp(&mut payload, 7, 9);
        let read = reader.stamp(&payload)?;
        assert_eq!(
            read,
            Stamp {
                sequence: 7,
                sent_at: 9
            }
        );
        assert!(reader.stamp(&payload[..19]).is_err(), "one byte short");
        assert!(reader.stamp(&[0u8; 21]).is_err(), "one byte long");
        Ok(())
    }

    #[test]
    fn a_close_before_the_end_marker_says_why() {
        let frame = CloseFrame {
            code: 4001.into(),
            reason: "slow subscriber".into(),
        };
        let error = closed(Some(&frame)).to_string();
        assert!(
            error.contains("4001") && error.contains("slow subscriber"),
            "{error}"
        );
        assert!(closed(None).to_string().contains("without a code"));
    }

    #[test]
    fn a_message_is_in_flight_until_every_subscriber_has_it() {
        let progress = Progress::new(3);
        assert_eq!(progress.room(0, 1), 1);
        assert_eq!(progress.room(1, 1), 0, "nobody has message 0 yet");
        for _ in 0..2 {
            progress.delivered_one();
        }
        assert_eq!(progress.room(1, 1), 0, "two of three subscribers have it");
        progress.delivered_one();
        assert_eq!(progress.room(1, 1), 1, "all three have it");
        assert_eq!(progress.room(1, 8), 8);
        assert_eq!(progress.room(5, 8), 4);
    }

    #[tokio::test]
    async fn the_publisher_is_woken_when_a_whole_message_is_delivered() {
        let progress = Progress::new(2);
        progress.delivered_one();
        let early = tokio::time::timeout(Duration::from_millis(50), progress.notify.notified());
        assert!(early.await.is_err(), "woken after half a message");
        progress.delivered_one();
        let woken = tokio::time::timeout(Duration::from_secs(10), progress.notify.notified());
        assert!(woken.await.is_ok(), "not woken after a whole message");
    }

    #[test]
    fn a_slow_rate_ticks_once_per_message_a_fast_one_every_millisecond() {
        assert_eq!(Pacer::tick(10.0), Duration::from_millis(100));
        assert_eq!(Pacer::tick(500.0), Duration::from_millis(2));
        assert_eq!(Pacer::tick(50_000.0), MIN_TICK);
        assert_eq!(Pacer::tick(0.0), MAX_TICK);
    }
}
