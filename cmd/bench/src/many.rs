//! The `many` scenario: many small topics (by default 1000 topics x 5 subscribers, a
//! publisher each), saturated (a small window per publisher) and at a trickle (one message per
//! topic every 100 ms, the publishers' ticks spread evenly), each side by side with the
//! baseline broadcaster ([`pair`]); and beside them the single-topic fan-out of the same
//! payload, so that what spreading deliveries over many topics costs reads as one ratio:
//! saturated many-topics CPU per delivery over single-topic fan-out CPU per delivery.

use std::time::Duration;

use serde::Serialize;

use crate::ServerKind;
use crate::load::LoadSpec;
use crate::pair::{self, PairRow, ratio};
use crate::process::ServerProcess;

/// What the `many` scenario runs.
#[derive(Debug, Clone)]
pub(crate) struct ManySpec {
    /// The saturated many-topics load (its window is the publishers' window).
    pub(crate) saturated: LoadSpec,
    /// Time between two messages of one topic at the trickle.
    pub(crate) trickle_every: Duration,
    /// The single-topic fan-out load the saturated one is compared with.
    pub(crate) fanout: LoadSpec,
    /// Runs of each load on each server.
    pub(crate) runs: usize,
}

impl ManySpec {
    /// The trickle: the saturated load's topics, each publisher holding one message per
    /// `trickle_every`.
    fn trickle(&self) -> LoadSpec {
        LoadSpec {
            rate: Some(1.0 / self.trickle_every.as_secs_f64().max(f64::EPSILON)),
            ..self.saturated.clone()
        }
    }
}

/// The `many` scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ManyRow {
    /// Topics, each with one publisher.
    pub(crate) topics: usize,
    /// Subscribers of each topic.
    pub(crate) subscribers_per_topic: usize,
    /// Bytes per message.
    pub(crate) payload: usize,
    /// Time between two messages of one topic at the trickle, in milliseconds.
    pub(crate) trickle_every_ms: f64,
    /// The saturated many-topics load, baseline and wspubsub.
    pub(crate) saturated: PairRow,
    /// The trickle, baseline and wspubsub.
    pub(crate) trickle: PairRow,
    /// The single-topic fan-out of the same payload, baseline and wspubsub.
    pub(crate) fanout: PairRow,
    /// wspubsub's saturated many-topics CPU per delivery over its single-topic fan-out's.
    pub(crate) saturated_vs_fanout: f64,
    /// The same ratio for the baseline broadcaster.
    pub(crate) baseline_saturated_vs_fanout: f64,
}

impl ManyRow {
    /// The row of the three loads' pair rows.
    fn of(spec: &ManySpec, saturated: PairRow, trickle: PairRow, fanout: PairRow) -> ManyRow {
        ManyRow {
            topics: spec.saturated.topics,
            subscribers_per_topic: spec.saturated.subscribers_per_topic,
            payload: spec.saturated.payload,
            trickle_every_ms: spec.trickle_every.as_secs_f64() * 1e3,
            saturated_vs_fanout: ratio(
                saturated.wspubsub.cpu_s_per_million,
                fanout.wspubsub.cpu_s_per_million,
            ),
            baseline_saturated_vs_fanout: ratio(
                saturated.baseline.cpu_s_per_million,
                fanout.baseline.cpu_s_per_million,
            ),
            saturated,
            trickle,
            fanout,
        }
    }

    /// Its three loads, in the order they ran.
    fn loads(&self) -> [&PairRow; 3] {
        [&self.saturated, &self.trickle, &self.fanout]
    }

    /// Every correctness failure, with the load and server it happened on.
    pub(crate) fn errors(&self) -> Vec<String> {
        self.loads()
            .into_iter()
            .flat_map(|load| load.errors.iter().map(|e| format!("{}: {e}", load.load)))
            .collect()
    }
}

/// Runs the three loads of `spec`, each on fresh servers from `server`.
pub(crate) async fn configuration(
    server: impl Fn(ServerKind) -> anyhow::Result<ServerProcess>,
    spec: &ManySpec,
) -> anyhow::Result<ManyRow> {
    let saturated = pair::measure(&server, "saturated", &spec.saturated, spec.runs).await?;
    let trickle = pair::measure(&server, "trickle", &spec.trickle(), spec.runs).await?;
    let fanout = pair::measure(&server, "fanout", &spec.fanout, spec.runs).await?;
    Ok(ManyRow::of(spec, saturated, trickle, fanout))
}

/// The row as table lines: each load, then the ratio to single-topic fan-out.
pub(crate) fn lines(row: &ManyRow) -> String {
    let mut lines: Vec<String> = row
        .loads()
        .into_iter()
        .map(|load| pair::line("many", load))
        .collect();
    lines.push(format!(
        "many    saturated many-topics CPU per delivery over single-topic fan-out's: \
         wspubsub {:.2}x, baseline {:.2}x",
        row.saturated_vs_fanout, row.baseline_saturated_vs_fanout
    ));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Mode;

    #[test]
    fn the_trickle_is_the_saturated_load_at_one_message_per_interval() {
        let saturated = LoadSpec {
            topics: 1000,
            subscribers_per_topic: 5,
            payload: 64,
            window: 8,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(3),
            rate: None,
            mode: Mode::Raw,
        };
        let spec = ManySpec {
            fanout: LoadSpec {
                topics: 1,
                subscribers_per_topic: 100,
                window: 64,
                ..saturated.clone()
            },
            saturated,
            trickle_every: Duration::from_millis(100),
            runs: 3,
        };
        let trickle = spec.trickle();
        assert_eq!(trickle.rate, Some(10.0));
        assert_eq!(
            (
                trickle.topics,
                trickle.subscribers_per_topic,
                trickle.window
            ),
            (1000, 5, 8)
        );
    }
}
