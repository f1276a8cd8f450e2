//! The `replay` scenario: what subscribers joining with `from=earliest` on a full history
//! cost, against live delivery of the same number of messages.
//!
//! Each run takes a fresh server and fills one topic's history (a stream-mode publisher
//! publishes as many messages as history holds and waits for the server's ack of the last).
//! Then three blocks take turns (each run starting with the next one), each repeating rounds
//! for a fixed time after one warm-up round:
//! - `live`: K raw subscribers join (`from=latest`), a publisher publishes a history's worth
//!   of messages, every subscriber reads them all, all leave. Round time: from the first
//!   publish to the last subscriber's last message.
//! - `replay raw`, `replay stream`: K subscribers join at once with `from=earliest` (raw, or
//!   offering `wspubsub.v2`), read until they have all of history, and leave. Round time:
//!   from the start of their connects to the last subscriber's last message.
//!
//! Every subscriber checks every message: the publisher's sequence numbers, consecutive from
//! the first history should hold, each message its full size; in stream mode also the
//! envelopes' seqs, consecutive, and a `subscribed` frame saying history was full. Server CPU
//! is read from /proc over each block's measured rounds, joins and leaves included in all
//! three, and divided by the messages delivered.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use wspubsub_server::protocol::Control;

use crate::access::Access;
use crate::load::{self, HEADER, Reader, Socket};
use crate::mode::{Frames, Mode};
use crate::process::ServerProcess;
use crate::report::{ReplayFigures, ReplayRow, median};

/// How long one round (or the fill) may take before it counts as a failure.
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);

/// Most messages a publisher writes per flush.
const BURST: u64 = 64;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplaySpec {
    /// Bytes per message (at least [`HEADER`]).
    pub(crate) payload: usize,
    /// Subscribers joining at once (K).
    pub(crate) joiners: usize,
    /// Messages the server's history holds: published to fill it, and per live round.
    pub(crate) history: u64,
    /// Measured time of each block.
    pub(crate) duration: Duration,
}

impl ReplaySpec {
    /// Bytes of every message.
    fn size(&self) -> usize {
        self.payload.max(HEADER)
    }
}

/// One way of getting a history's worth of messages to K subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Block {
    /// Published while they are subscribed (the reference).
    Live,
    /// Replayed from history to subscribers joining with `from=earliest` in this mode.
    Replay(Mode),
}

impl Block {
    /// Every block, the reference (live) first.
    pub(crate) const ALL: [Block; 3] = [
        Block::Live,
        Block::Replay(Mode::Raw),
        Block::Replay(Mode::Stream),
    ];

    /// The block's name in the table and the JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Block::Live => "live",
            Block::Replay(Mode::Raw) => "replay raw",
            Block::Replay(Mode::Stream) => "replay stream",
            // Not one of ALL: this scenario's subscribers are WebSocket clients.
            Block::Replay(Mode::Sse) => "replay sse",
        }
    }
}

impl serde::Serialize for Block {
    /// As its name, one spelling for the table and the JSON.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// What one block measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    /// Median time of a round, in milliseconds.
    pub(crate) round_ms: f64,
    /// Server CPU per delivered message, in microseconds.
    pub(crate) cpu_us_per_message: f64,
    /// Messages delivered per second of the block (joins and leaves included).
    pub(crate) messages_per_s: f64,
}

/// Runs every block of `spec` `runs` times, each run on a fresh server from `server`.
pub(crate) async fn configuration(
    server: impl Fn() -> anyhow::Result<ServerProcess>,
    spec: &ReplaySpec,
    runs: usize,
) -> anyhow::Result<ReplayRow> {
    let mut samples: Vec<Vec<Sample>> = Block::ALL.iter().map(|_| Vec::new()).collect();
    let mut errors = Vec::new();
    for run in 0..runs {
        let server = server()?;
        let mut topic = Topic::new(&server);
        if let Err(error) = topic.fill(spec).await {
            errors.push(format!("fill: {error:#}"));
            continue;
        }
        for turn in 0..Block::ALL.len() {
            let index = (run + turn) % Block::ALL.len();
            let block = Block::ALL[index];
            match topic.block(block, spec).await {
                Ok(sample) => samples[index].push(sample),
                Err(error) => {
                    errors.push(format!("{}: {error:#}", block.name()));
                    break;
                }
            }
        }
    }
    Ok(ReplayRow {
        payload: spec.payload,
        joiners: spec.joiners,
        history: spec.history,
        runs,
        blocks: compare(&samples),
        errors,
    })
}

/// Each block's medians (`samples` in the order of [`Block::ALL`]), with ratios to the first,
/// live.
fn compare(samples: &[Vec<Sample>]) -> Vec<ReplayFigures> {
    let medians: Vec<Sample> = samples
        .iter()
        .map(|runs| {
            let of = |field: fn(&Sample) -> f64| median(runs.iter().map(field).collect());
            Sample {
                round_ms: of(|s| s.round_ms),
                cpu_us_per_message: of(|s| s.cpu_us_per_message),
                messages_per_s: of(|s| s.messages_per_s),
            }
        })
        .collect();
    let Some(&live) = medians.first() else {
        return Vec::new();
    };
    let ratio = |value: f64, reference: f64| value / reference.max(f64::EPSILON);
    Block::ALL
        .iter()
        .zip(medians)
        .map(|(&block, sample)| ReplayFigures {
            block,
            round_ms: sample.round_ms,
            cpu_us_per_message: sample.cpu_us_per_message,
            messages_per_s: sample.messages_per_s,
            time_ratio: ratio(sample.round_ms, live.round_ms),
            cpu_ratio: ratio(sample.cpu_us_per_message, live.cpu_us_per_message),
        })
        .collect()
}

/// The topic under test on one server, and how many messages have been published to it.
struct Topic<'a> {
    server: &'a ServerProcess,
    /// Its path, unique per run (a server at `--url` keeps its topics between runs).
    path: String,
    /// Messages published so far; history holds the last `history` of them.
    published: u64,
}

impl<'a> Topic<'a> {
    /// A new topic on `server`.
    fn new(server: &'a ServerProcess) -> Self {
        Topic {
            server,
            path: format!("/replay/{:016x}", rand::random::<u64>()),
            published: 0,
        }
    }

    /// Connects a client speaking `mode` in `role`, with `query`.
    async fn connect(&self, mode: Mode, role: &'static str, query: &str) -> anyhow::Result<Socket> {
        let path = format!("{}{query}", self.path);
        let (addr, access) = (self.server.addr(), self.server.access());
        load::connect_as(mode, addr, access, &path, role, None).await
    }

    /// Fills history: publishes `history` messages in stream mode and waits until the
    /// server acknowledges the last one (stored, so in history).
    async fn fill(&mut self, spec: &ReplaySpec) -> anyhow::Result<()> {
        let mut ws = self.connect(Mode::Stream, "publisher", "").await?;
        publish(&mut ws, self.published, spec).await?;
        self.published += spec.history;
        tokio::time::timeout(ROUND_TIMEOUT, acked(&mut ws, spec.history))
            .await
            .context("no ack of the history's last message in time")??;
        load::close(&mut ws).await;
        Ok(())
    }

    /// One warm-up round, then rounds of `block` for the spec's duration, measured.
    async fn block(&mut self, block: Block, spec: &ReplaySpec) -> anyhow::Result<Sample> {
        // The live rounds' publisher, connected outside the measurement.
        let mut publisher = match block {
            Block::Live => Some(self.connect(Mode::Raw, "publisher", "").await?),
            Block::Replay(_) => None,
        };
        self.round(block, spec, publisher.as_mut()).await?;
        let (started, cpu_0) = (Instant::now(), self.server.cpu_seconds()?);
        let mut rounds = Vec::new();
        while rounds.is_empty() || started.elapsed() < spec.duration {
            let round = self.round(block, spec, publisher.as_mut()).await?;
            rounds.push(round.as_secs_f64() * 1e3);
        }
        let (seconds, cpu) = (
            started.elapsed().as_secs_f64(),
            self.server.cpu_seconds()? - cpu_0,
        );
        if let Some(publisher) = &mut publisher {
            load::close(publisher).await;
        }
        let messages = (rounds.len() * spec.joiners) as f64 * spec.history as f64;
        Ok(Sample {
            round_ms: median(rounds),
            cpu_us_per_message: cpu * 1e6 / messages,
            messages_per_s: messages / seconds,
        })
    }

    /// One round: K subscribers join, get a history's worth of messages, checked, and leave;
    /// returns the time they took (see the module's doc).
    async fn round(
        &mut self,
        block: Block,
        spec: &ReplaySpec,
        publisher: Option<&mut Socket>,
    ) -> anyhow::Result<Duration> {
        let mut readers = JoinSet::new();
        let started = match (block, publisher) {
            (Block::Live, Some(publisher)) => {
                let first = self.published;
                let joins = (0..spec.joiners).map(|_| self.connect(Mode::Raw, "subscriber", ""));
                let sockets = futures_util::future::try_join_all(joins).await?;
                let started = Instant::now();
                for ws in sockets {
                    readers.spawn(read_all(ws, Mode::Raw, first, *spec));
                }
                publish(publisher, first, spec).await?;
                self.published += spec.history;
                started
            }
            (Block::Replay(mode), None) => {
                let first = self.published.saturating_sub(spec.history);
                let started = Instant::now();
                for _ in 0..spec.joiners {
                    let (addr, access) = (self.server.addr(), self.server.access().clone());
                    let path = format!("{}?from=earliest", self.path);
                    readers.spawn(join_and_read(addr, access, path, mode, first, *spec));
                }
                started
            }
            _ => bail!("a live round needs its publisher, a replay round none"),
        };
        let (last, mut sockets) = tokio::time::timeout(ROUND_TIMEOUT, finish(&mut readers))
            .await
            .context("the round did not finish in time")??;
        futures_util::future::join_all(sockets.iter_mut().map(load::close)).await;
        Ok(last - started)
    }
}

/// Waits for every reader; returns when the last one finished, and their sockets.
async fn finish(
    readers: &mut JoinSet<anyhow::Result<(Instant, Socket)>>,
) -> anyhow::Result<(Instant, Vec<Socket>)> {
    let mut last = None;
    let mut sockets = Vec::new();
    while let Some(joined) = readers.join_next().await {
        let (done, ws) = joined.context("subscriber task")??;
        last = last.max(Some(done));
        sockets.push(ws);
    }
    Ok((last.context("no subscribers")?, sockets))
}

/// Publishes the spec's `history` messages numbered from `first`.
async fn publish(ws: &mut Socket, first: u64, spec: &ReplaySpec) -> anyhow::Result<()> {
    let mut payload = vec![0u8; spec.size()];
    for sequence in first..first + spec.history {
        load::stamp(&mut payload, sequence, 0);
        ws.feed(Message::Binary(Bytes::copy_from_slice(&payload)))
            .await?;
        if (sequence - first) % BURST == BURST - 1 {
            ws.flush().await?;
        }
    }
    ws.flush().await?;
    Ok(())
}

/// Reads a stream-mode publisher's acks until one covers its first `count` messages.
async fn acked(ws: &mut Socket, count: u64) -> anyhow::Result<()> {
    while let Some(message) = ws.next().await {
        if let Message::Text(text) = message? {
            let control = Control::from_json(text.as_str())
                .with_context(|| format!("control frame {}", text.as_str()))?;
            if matches!(control, Control::Ack { count: acked, .. } if acked >= count) {
                return Ok(());
            }
        }
    }
    bail!("the connection ended before the ack of message {count}")
}

/// Joins with the query in `path`, then [`read_all`].
async fn join_and_read(
    addr: std::net::SocketAddr,
    access: Access,
    path: String,
    mode: Mode,
    first: u64,
    spec: ReplaySpec,
) -> anyhow::Result<(Instant, Socket)> {
    let ws = load::connect_as(mode, addr, &access, &path, "subscriber", None).await?;
    read_all(ws, mode, first, spec).await
}

/// Reads a history's worth of messages, numbered from `first`, checking each; in stream mode
/// also that history was full when it joined. Returns when it had the last, and the socket.
async fn read_all(
    mut ws: Socket,
    mode: Mode,
    first: u64,
    spec: ReplaySpec,
) -> anyhow::Result<(Instant, Socket)> {
    let mut reader = Reader {
        frames: Frames::new(mode),
        size: spec.size(),
    };
    for expected in first..first + spec.history {
        let stamp = reader
            .next(&mut ws)
            .await
            .with_context(|| format!("the connection ended before message {expected}"))??;
        ensure!(
            stamp.sequence == expected,
            "expected message {expected}, got {}",
            stamp.sequence
        );
    }
    let done = Instant::now();
    if let Some(joined) = reader.frames.joined() {
        ensure!(
            joined.from == joined.earliest
                && joined.head.saturating_sub(joined.earliest) == spec.history,
            "history was not full at the join: {joined:?}, expected {} messages",
            spec.history
        );
    }
    Ok((done, ws))
}

#[cfg(test)]
mod tests {
    use wspubsub_server::{Options, ServerHandle};

    use super::*;
    use crate::process::in_process;

    /// A wspubsub server in this process whose history holds `history` messages.
    async fn serve(history: usize) -> anyhow::Result<(ServerProcess, ServerHandle)> {
        in_process(Options {
            history_messages: history,
            ..Options::default()
        })
        .await
    }

    /// One measured round per block.
    fn spec(history: u64) -> ReplaySpec {
        ReplaySpec {
            payload: 64,
            joiners: 2,
            history,
            duration: Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn every_block_delivers_a_full_history() -> anyhow::Result<()> {
        let (server, handle) = serve(20).await?;
        let mut topic = Topic::new(&server);
        topic.fill(&spec(20)).await?;
        for block in Block::ALL {
            let sample = topic.block(block, &spec(20)).await?;
            assert!(sample.round_ms > 0.0 && sample.messages_per_s > 0.0);
        }
        // The fill and the live block's two rounds (warm-up and measured).
        assert_eq!(topic.published, 60);
        handle.shutdown();
        Ok(())
    }

    #[tokio::test]
    async fn a_history_shorter_than_expected_fails_in_both_modes() -> anyhow::Result<()> {
        let (server, handle) = serve(10).await?;
        let mut topic = Topic::new(&server);
        topic.fill(&spec(20)).await?;
        for mode in [Mode::Raw, Mode::Stream] {
            let error = topic
                .block(Block::Replay(mode), &spec(20))
                .await
                .expect_err("history holds 10 of 20");
            assert!(
                format!("{error:#}").contains("expected message 0, got 10"),
                "{mode:?}: {error:#}"
            );
        }
        handle.shutdown();
        Ok(())
    }

    #[tokio::test]
    async fn a_stream_replay_checks_that_history_was_full() -> anyhow::Result<()> {
        let (server, handle) = serve(30).await?;
        let mut topic = Topic::new(&server);
        topic.fill(&spec(30)).await?;
        // Reading 20 of history's 30, from its earliest: the messages are in order, but the
        // subscribed frame says history held 30, not the 20 expected.
        let mut ws = topic
            .connect(Mode::Stream, "subscriber", "?from=earliest")
            .await?;
        let error = read_all(ws, Mode::Stream, 0, spec(20))
            .await
            .expect_err("history held more than expected");
        assert!(
            format!("{error:#}").contains("history was not full"),
            "{error:#}"
        );
        ws = topic
            .connect(Mode::Raw, "subscriber", "?from=earliest")
            .await?;
        read_all(ws, Mode::Raw, 0, spec(20)).await?;
        handle.shutdown();
        Ok(())
    }

    #[test]
    fn medians_and_ratios_to_live() {
        let sample = |round_ms, cpu_us_per_message| Sample {
            round_ms,
            cpu_us_per_message,
            messages_per_s: 1.0,
        };
        let samples = vec![
            vec![sample(10.0, 2.0), sample(30.0, 4.0), sample(20.0, 3.0)],
            vec![sample(5.0, 1.5)],
            vec![sample(40.0, 6.0), sample(40.0, 6.0)],
        ];
        let compared = compare(&samples);
        let names: Vec<&str> = compared.iter().map(|f| f.block.name()).collect();
        assert_eq!(names, ["live", "replay raw", "replay stream"]);
        assert_eq!(compared[0].round_ms, 20.0);
        assert_eq!(compared[0].time_ratio, 1.0);
        assert_eq!(compared[1].time_ratio, 0.25);
        assert_eq!(compared[1].cpu_ratio, 0.5);
        assert_eq!(compared[2].cpu_ratio, 2.0);
    }
}
