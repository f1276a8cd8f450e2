//! The `cluster` scenario: the fan-out load (1 publisher -> N subscribers on one topic) in
//! three layouts, each run on fresh processes, the layouts taking turns run after run (each
//! run starting with the next one), so that their figures come from the same minutes of this
//! shared machine:
//!
//! - `plain`: one wspubsub node alone, in memory: the reference;
//! - `cluster-1`: one node in cluster mode on its own `nats-server -js`: the NATS hop alone;
//! - `cluster-3`: three nodes in cluster mode on one `nats-server -js`, the publisher on node 1
//!   and the subscribers spread over the three, round-robin.
//!
//! CPU is every wspubsub process's plus nats-server's, from `/proc`; the table shows medians,
//! the broker's share of that CPU, and the ratios to plain.

use anyhow::Context;
use wspubsub_testkit::NatsServer;

use crate::ServerKind;
use crate::access::{Access, Security};
use crate::load::{self, LoadSpec, Measurement};
use crate::process::{self, ServerProcess};
use crate::report::{ClusterFigures, ClusterRow, Figures, median};
use crate::scenarios::alternate;
use crate::target::Target;

/// Where the load runs: how many nodes, in cluster mode or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// One node alone, in memory: the reference.
    Plain,
    /// One node in cluster mode.
    Single,
    /// Three nodes in cluster mode on one NATS server.
    Three,
}

impl Layout {
    /// Every layout, the reference (plain) first.
    pub(crate) const ALL: [Layout; 3] = [Layout::Plain, Layout::Single, Layout::Three];

    /// The layout's name in the table and the JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Layout::Plain => "plain",
            Layout::Single => "cluster-1",
            Layout::Three => "cluster-3",
        }
    }

    /// How many wspubsub nodes it runs.
    fn nodes(self) -> usize {
        match self {
            Layout::Plain | Layout::Single => 1,
            Layout::Three => 3,
        }
    }
}

impl serde::Serialize for Layout {
    /// As its name, one spelling for the table and the JSON.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// The processes of one layout: its nodes (at least one) and, in cluster mode, their NATS
/// server; all stopped when this is dropped, the nodes first.
pub(crate) struct Deployment {
    /// The wspubsub nodes; publishers connect to the first.
    nodes: Vec<ServerProcess>,
    /// The NATS server in cluster mode.
    nats: Option<NatsServer>,
}

impl Deployment {
    /// Starts the processes of `layout` and waits until every node serves.
    pub(crate) async fn start(layout: Layout) -> anyhow::Result<Deployment> {
        if layout == Layout::Plain {
            let node = ServerProcess::spawn(ServerKind::Wspubsub, &Security::default())?;
            return Ok(Deployment {
                nodes: vec![node],
                nats: None,
            });
        }
        // A fresh NATS server per run: each run starts on an empty stream.
        let nats = NatsServer::start().await;
        let nodes = (0..layout.nodes())
            .map(|_| ServerProcess::spawn_node(&nats.url()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Deployment {
            nodes,
            nats: Some(nats),
        })
    }

    /// Node `index`, counted round-robin.
    fn node(&self, index: usize) -> &ServerProcess {
        &self.nodes[index % self.nodes.len()]
    }
}

impl Target for Deployment {
    fn publisher_addr(&self) -> std::net::SocketAddr {
        self.node(0).addr()
    }

    fn subscriber_addr(&self, index: usize) -> std::net::SocketAddr {
        self.node(index).addr()
    }

    fn access(&self) -> &Access {
        self.node(0).access()
    }

    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let mut total = self.broker_cpu_seconds()?;
        for node in &self.nodes {
            total += node.cpu_seconds()?;
        }
        Ok(total)
    }

    fn broker_cpu_seconds(&self) -> anyhow::Result<f64> {
        let Some(nats) = &self.nats else {
            return Ok(0.0);
        };
        let pid = nats.pid().context("nats-server is not running")?;
        process::cpu_seconds(i32::try_from(pid).context("nats-server's process id")?)
    }
}

/// What one run of one layout measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// The load's figures (CPU: nodes and broker together).
    figures: Figures,
    /// The broker's share of the CPU, 0 to 1.
    broker_share: f64,
}

impl Sample {
    /// The sample of `measured`, with messages of `payload` bytes.
    fn of(measured: &Measurement, payload: usize) -> Sample {
        Sample {
            figures: Figures::of(measured, payload),
            broker_share: measured.broker_cpu / measured.server_cpu.max(f64::EPSILON),
        }
    }
}

/// Runs `spec` (one topic) in every layout `runs` times, on fresh processes each time, as
/// fast as the window allows; then again with the publisher held at half plain's saturated
/// rate, the same rate for every layout, for latency without queueing.
pub(crate) async fn configuration(spec: &LoadSpec, runs: usize) -> anyhow::Result<ClusterRow> {
    let sample = |m: &Measurement| Sample::of(m, spec.payload);
    let saturated = async |layout: Layout| measure(layout, spec).await;
    let (samples, mut errors): (Vec<Vec<Sample>>, _) =
        alternate(&Layout::ALL, runs, Layout::name, saturated, sample).await?;
    let plain: Vec<Figures> = samples[0].iter().map(|s| s.figures).collect();
    let paced_spec = LoadSpec {
        rate: Some((Figures::median(&plain).published_per_s / 2.0).max(1.0)),
        ..spec.clone()
    };
    let paced = async |layout: Layout| measure(layout, &paced_spec).await;
    let (paced_samples, paced_errors): (Vec<Vec<Sample>>, _) =
        alternate(&Layout::ALL, runs, Layout::name, paced, sample).await?;
    errors.extend(paced_errors.into_iter().map(|e| format!("paced: {e}")));
    Ok(ClusterRow {
        subscribers: spec.subscribers_per_topic,
        payload: spec.payload,
        runs,
        paced_rate: paced_spec.rate.unwrap_or_default(),
        layouts: compare(&samples, &paced_samples),
        errors,
    })
}

/// Runs `spec` once on fresh processes of `layout`.
async fn measure(layout: Layout, spec: &LoadSpec) -> anyhow::Result<Measurement> {
    let deployment = Deployment::start(layout).await?;
    load::run(&deployment, spec).await
}

/// Each layout's medians (`samples` and `paced`, the paced runs' samples, in the order of
/// [`Layout::ALL`]), with ratios to the first, plain.
fn compare(samples: &[Vec<Sample>], paced: &[Vec<Sample>]) -> Vec<ClusterFigures> {
    let medians: Vec<(Figures, f64)> = samples
        .iter()
        .map(|runs| {
            let figures: Vec<Figures> = runs.iter().map(|s| s.figures).collect();
            let shares = runs.iter().map(|s| s.broker_share).collect();
            (Figures::median(&figures), median(shares))
        })
        .collect();
    let Some(&(plain, _)) = medians.first() else {
        return Vec::new();
    };
    let ratio = |value: f64, reference: f64| value / reference.max(f64::EPSILON);
    let paced_latency = paced.iter().map(|runs| {
        let figures: Vec<Figures> = runs.iter().map(|s| s.figures).collect();
        Figures::median(&figures).latency
    });
    Layout::ALL
        .iter()
        .zip(medians)
        .zip(paced_latency)
        .map(
            |((&layout, (figures, broker_share)), paced_latency)| ClusterFigures {
                layout,
                nodes: layout.nodes(),
                wspubsub: figures,
                broker_share,
                paced_latency,
                rate_ratio: ratio(figures.delivered_per_s, plain.delivered_per_s),
                cpu_ratio: ratio(figures.cpu_s_per_million, plain.cpu_s_per_million),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::mode::Mode;

    /// A sample delivering `rate` per second at `cpu` CPU-s per million, `share` of it the
    /// broker's.
    fn sample(rate: f64, cpu: f64, share: f64) -> Sample {
        Sample {
            figures: Figures {
                delivered_per_s: rate,
                cpu_s_per_million: cpu,
                latency: crate::report::Latency {
                    p50_us: cpu * 1000.0,
                    ..Default::default()
                },
                ..Figures::default()
            },
            broker_share: share,
        }
    }

    #[test]
    fn medians_and_ratios_to_plain() {
        let samples = vec![
            vec![sample(100.0, 1.0, 0.0), sample(300.0, 3.0, 0.0)],
            vec![sample(100.0, 3.0, 0.4), sample(100.0, 3.0, 0.2)],
            vec![sample(50.0, 5.0, 0.5)],
        ];
        let paced: Vec<Vec<Sample>> = (1..=3)
            .map(|layout| vec![sample(1.0, f64::from(layout), 0.0)])
            .collect();
        let compared = compare(&samples, &paced);
        let names: Vec<&str> = compared.iter().map(|c| c.layout.name()).collect();
        assert_eq!(names, ["plain", "cluster-1", "cluster-3"]);
        assert_eq!(compared[0].wspubsub.delivered_per_s, 200.0);
        assert_eq!(compared[0].cpu_ratio, 1.0);
        assert_eq!(compared[1].rate_ratio, 0.5);
        assert_eq!(compared[1].cpu_ratio, 1.5);
        assert!((compared[1].broker_share - 0.3).abs() < 1e-9);
        assert_eq!(compared[2].nodes, 3);
        assert_eq!(compared[2].cpu_ratio, 2.5);
        let paced_p50: Vec<f64> = compared.iter().map(|c| c.paced_latency.p50_us).collect();
        assert_eq!(paced_p50, [1000.0, 2000.0, 3000.0]);
    }

    /// Three nodes in cluster mode on one nats-server (in this process, so their CPU is not
    /// known; the broker's is): the publisher on node 1, subscribers on every node, each of
    /// which must get every message in order.
    #[tokio::test]
    async fn subscribers_spread_over_cluster_nodes_get_every_message_in_order() -> anyhow::Result<()>
    {
        let nats = NatsServer::start().await;
        let mut handles = Vec::new();
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let options = wspubsub_server::Options {
                nats_url: Some(nats.url()),
                ..wspubsub_server::Options::default()
            };
            let (node, handle) = process::in_process(options).await?;
            nodes.push(node);
            handles.push(handle);
        }
        let addrs: Vec<_> = nodes.iter().map(ServerProcess::addr).collect();
        let deployment = Deployment {
            nodes,
            nats: Some(nats),
        };
        assert_eq!(deployment.publisher_addr(), addrs[0]);
        let spread: Vec<_> = (0..4).map(|i| deployment.subscriber_addr(i)).collect();
        assert_eq!(spread, [addrs[0], addrs[1], addrs[2], addrs[0]]);
        let spec = LoadSpec {
            topics: 1,
            subscribers_per_topic: 3,
            payload: 64,
            window: 8,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(200),
            rate: None,
            mode: Mode::Raw,
        };
        let measured = load::run(&deployment, &spec).await?;
        assert_eq!(measured.errors, Vec::<String>::new());
        assert!(measured.delivered > 0, "nothing delivered");
        assert!(
            measured.broker_cpu >= 0.0 && deployment.broker_cpu_seconds()? > 0.0,
            "the broker's CPU time is read"
        );
        for handle in handles {
            handle.shutdown();
        }
        Ok(())
    }
}
