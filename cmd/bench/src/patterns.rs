//! The `patterns` scenario: the saturated fan-out load on a server with nothing else, on one
//! holding many idle plain subscribers (of one other topic), and on one holding as many idle
//! pattern subscribers (each following a pattern of its own that no topic of the load
//! matches), side by side. Patterns are matched once per topic as it is created, never per
//! message, so fan-out with the patterns must cost what it costs with as many idle
//! connections of any kind; this measures that promise (and, against the bare server, what
//! holding that many idle connections costs at all). The variants take turns, each run on a
//! fresh server.

use anyhow::Context;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::idle;
use crate::load::{self, LoadSpec};
use crate::process::ServerProcess;
use crate::report::Figures;
use crate::scenarios::alternate;

/// What a `patterns` run holds besides the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Nothing.
    Nothing,
    /// Idle subscribers of one topic the load does not use.
    Subscribers(usize),
    /// Idle subscribers of patterns the load's topic does not match, one each.
    Patterns(usize),
}

impl Held {
    fn name(self) -> &'static str {
        match self {
            Held::Nothing => "nothing held",
            Held::Subscribers(_) => "idle subscribers",
            Held::Patterns(_) => "idle patterns",
        }
    }
}

/// One `patterns` configuration: fan-out alone, beside idle subscribers, beside idle pattern
/// subscribers.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PatternsRow {
    /// Idle (pattern) subscribers held in the second and third variants.
    pub(crate) patterns: usize,
    /// Subscribers of the load's one topic.
    pub(crate) subscribers: usize,
    /// Bytes per message.
    pub(crate) payload: usize,
    /// Runs of each variant.
    pub(crate) runs: usize,
    /// Figures with nothing else held (medians).
    pub(crate) without: Figures,
    /// Figures beside as many idle plain subscribers (medians).
    pub(crate) idle: Figures,
    /// Figures beside the idle pattern subscribers (medians).
    pub(crate) with: Figures,
    /// CPU per million deliveries beside the patterns over beside idle plain subscribers:
    /// what the patterns themselves cost.
    pub(crate) cpu_ratio: f64,
    /// Delivered rate beside the patterns over beside idle plain subscribers.
    pub(crate) rate_ratio: f64,
    /// CPU per million deliveries beside the patterns over with nothing held.
    pub(crate) cpu_ratio_to_nothing: f64,
    /// Correctness failures, with the variant they happened in.
    pub(crate) errors: Vec<String>,
}

/// Runs `spec` `runs` times on fresh servers from `server`: alone, beside `patterns` idle
/// subscribers and beside `patterns` idle pattern subscribers, the three taking turns.
pub(crate) async fn configuration(
    server: impl Fn() -> anyhow::Result<ServerProcess>,
    spec: &LoadSpec,
    runs: usize,
    patterns: usize,
) -> anyhow::Result<PatternsRow> {
    let variants = [
        Held::Nothing,
        Held::Subscribers(patterns),
        Held::Patterns(patterns),
    ];
    let measure = async |held: Held| {
        let server = server()?;
        let idle = hold(&server, held).await?;
        let measured = load::run(&server, spec).await;
        drop(idle);
        measured
    };
    let sample = |m: &load::Measurement| Figures::of(m, spec.payload);
    let (samples, errors) = alternate(&variants, runs, Held::name, measure, sample).await?;
    let [without, idle, with] =
        [&samples[0], &samples[1], &samples[2]].map(|runs| Figures::median(runs));
    Ok(PatternsRow {
        patterns,
        subscribers: spec.subscribers_per_topic,
        payload: spec.payload,
        runs,
        without,
        idle,
        with,
        cpu_ratio: with.cpu_s_per_million / idle.cpu_s_per_million.max(f64::EPSILON),
        rate_ratio: with.delivered_per_s / idle.delivered_per_s.max(f64::EPSILON),
        cpu_ratio_to_nothing: with.cpu_s_per_million / without.cpu_s_per_million.max(f64::EPSILON),
        errors,
    })
}

/// Connects the idle subscribers `held` names: of one topic no load uses (`/idle-topic`), or
/// of a pattern each that no load topic matches (`/idle-patterns/<i>/*`); each answers pings
/// until the returned set is dropped.
async fn hold(server: &ServerProcess, held: Held) -> anyhow::Result<JoinSet<()>> {
    let (count, pattern) = match held {
        Held::Nothing => (0, false),
        Held::Subscribers(count) => (count, false),
        Held::Patterns(count) => (count, true),
    };
    let path = |index| {
        if pattern {
            format!("/idle-patterns/{index}/*")
        } else {
            "/idle-topic".to_owned()
        }
    };
    let mut connects = idle::connect_subscribers(server, count, path);
    let mut held = JoinSet::new();
    while let Some(connected) = connects.join_next().await {
        let (_, mut ws) = connected.context("connect task")??;
        held.spawn(async move {
            // Reading answers the server's pings; an idle pattern never gets a message.
            while let Some(Ok(frame)) = ws.next().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        });
    }
    Ok(held)
}

/// A `patterns` row as a table line.
pub(crate) fn lines(row: &PatternsRow) -> String {
    let (a, i, b) = (&row.without, &row.idle, &row.with);
    format!(
        "patterns N={:<5} {:>5} B | alone {:>8.0} deliveries/s {:>6.3} CPU-s/M | \
         beside {n} idle subscribers {:>8.0}/s {:>6.3} CPU-s/M | \
         beside {n} idle patterns {:>8.0}/s {:>6.3} CPU-s/M | \
         patterns vs subscribers: rate {:>4.0}%, CPU {:.2}x (vs alone {:.2}x)",
        row.subscribers,
        row.payload,
        a.delivered_per_s,
        a.cpu_s_per_million,
        i.delivered_per_s,
        i.cpu_s_per_million,
        b.delivered_per_s,
        b.cpu_s_per_million,
        row.rate_ratio * 100.0,
        row.cpu_ratio,
        row.cpu_ratio_to_nothing,
        n = row.patterns,
    )
}
