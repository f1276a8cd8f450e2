//! The `secure` scenario: the fan-out load against wspubsub plain, with token auth, with TLS,
//! and with both, each on a fresh server, the variants taking turns run after run (each run
//! starting with the next one), so that their figures come from the same minutes of this
//! shared machine; the table shows medians and their ratios to plain. Auth and TLS cost mostly
//! at connect, so the time and server CPU to connect all subscribers are reported too.

use crate::ServerKind;
use crate::access::{Credentials, Variant};
use crate::load::{self, LoadSpec, Measurement};
use crate::process::ServerProcess;
use crate::report::{Figures, SecureFigures, SecureRow, median};
use crate::scenarios::alternate;

/// What one run of one variant measured.
struct Sample {
    /// The load's figures.
    figures: Figures,
    /// Time to connect all subscribers, in milliseconds.
    connect_ms: f64,
    /// Server CPU meanwhile, in milliseconds.
    connect_server_cpu_ms: f64,
}

impl Sample {
    /// The sample of `measured`, with messages of `payload` bytes.
    fn of(measured: &Measurement, payload: usize) -> Sample {
        Sample {
            figures: Figures::of(measured, payload),
            connect_ms: measured.connect_seconds * 1e3,
            connect_server_cpu_ms: measured.connect_server_cpu * 1e3,
        }
    }
}

/// Runs `spec` (one topic) against every variant `runs` times, with `credentials`.
pub(crate) async fn configuration(
    credentials: &Credentials,
    spec: &LoadSpec,
    runs: usize,
) -> anyhow::Result<SecureRow> {
    let measure = async |variant: Variant| {
        let server = ServerProcess::spawn(ServerKind::Wspubsub, &credentials.security(variant))?;
        load::run(&server, spec).await
    };
    let sample = |m: &Measurement| Sample::of(m, spec.payload);
    let (samples, errors): (Vec<Vec<Sample>>, _) =
        alternate(&Variant::ALL, runs, Variant::name, measure, sample).await?;
    Ok(SecureRow {
        subscribers: spec.subscribers_per_topic,
        payload: spec.payload,
        runs,
        variants: compare(&samples),
        errors,
    })
}

/// Each variant's medians (`samples` in the order of [`Variant::ALL`]), with ratios to the
/// first, plain.
fn compare(samples: &[Vec<Sample>]) -> Vec<SecureFigures> {
    let medians: Vec<(Figures, f64, f64)> = samples
        .iter()
        .map(|runs| {
            let figures: Vec<Figures> = runs.iter().map(|s| s.figures).collect();
            (
                Figures::median(&figures),
                median(runs.iter().map(|s| s.connect_ms).collect()),
                median(runs.iter().map(|s| s.connect_server_cpu_ms).collect()),
            )
        })
        .collect();
    let Some(&(plain, plain_connect_ms, _)) = medians.first() else {
        return Vec::new();
    };
    let ratio = |value: f64, reference: f64| value / reference.max(f64::EPSILON);
    Variant::ALL
        .iter()
        .zip(medians)
        .map(
            |(&variant, (figures, connect_ms, connect_server_cpu_ms))| SecureFigures {
                variant,
                wspubsub: figures,
                connect_ms,
                connect_server_cpu_ms,
                rate_ratio: ratio(figures.delivered_per_s, plain.delivered_per_s),
                cpu_ratio: ratio(figures.cpu_s_per_million, plain.cpu_s_per_million),
                connect_ratio: ratio(connect_ms, plain_connect_ms),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample delivering `rate` per second at `cpu` CPU-s per million, connecting in
    /// `connect_ms`.
    fn sample(rate: f64, cpu: f64, connect_ms: f64) -> Sample {
        Sample {
            figures: Figures {
                delivered_per_s: rate,
                cpu_s_per_million: cpu,
                ..Figures::default()
            },
            connect_ms,
            connect_server_cpu_ms: connect_ms / 2.0,
        }
    }

    #[test]
    fn medians_and_ratios_to_plain() {
        let samples = vec![
            vec![sample(100.0, 1.0, 10.0), sample(300.0, 3.0, 30.0)],
            vec![sample(90.0, 1.1, 20.0), sample(90.0, 1.1, 20.0)],
            vec![sample(50.0, 2.0, 40.0)],
            vec![sample(40.0, 2.4, 60.0)],
        ];
        let compared = compare(&samples);
        let names: Vec<&str> = compared.iter().map(|v| v.variant.name()).collect();
        assert_eq!(names, ["plain", "auth", "tls", "tls+auth"]);
        assert_eq!(compared[0].wspubsub.delivered_per_s, 200.0);
        assert_eq!(compared[0].rate_ratio, 1.0);
        assert_eq!(compared[1].rate_ratio, 0.45);
        assert_eq!(compared[2].cpu_ratio, 1.0);
        assert_eq!(compared[3].connect_ratio, 3.0);
        assert_eq!(compared[3].connect_server_cpu_ms, 30.0);
    }
}
