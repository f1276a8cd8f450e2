//! The `stream` and `sse` scenarios: the saturated fan-out load with subscribers of one mode
//! (stream mode, `wspubsub.v2`, each message enveloped with its seq and checked in order; or
//! Server-Sent Events over HTTP, each message a base64 event whose ids are checked in order),
//! side by side with the same load with raw WebSocket subscribers against the same server
//! build. Each run starts a fresh server per mode, the modes taking turns (each run starting
//! with the next one), so that their figures come from the same minutes of this shared
//! machine; the table shows medians and the mode/raw ratios.

use crate::load::{self, LoadSpec, Measurement};
use crate::mode::Mode;
use crate::process::ServerProcess;
use crate::report::{Figures, VersusRow};
use crate::scenarios::alternate;

/// Runs `spec` (one topic) with raw and with `mode` subscribers `runs` times each, each run on
/// a fresh server from `server`.
pub(crate) async fn configuration(
    server: impl Fn() -> anyhow::Result<ServerProcess>,
    spec: &LoadSpec,
    runs: usize,
    mode: Mode,
) -> anyhow::Result<VersusRow> {
    // The reference (raw) first.
    let modes = [Mode::Raw, mode];
    let measure = async |mode: Mode| {
        let server = server()?;
        let spec = LoadSpec {
            mode,
            ..spec.clone()
        };
        load::run(&server, &spec).await
    };
    let sample = |m: &Measurement| Figures::of(m, spec.payload);
    let (samples, errors): (Vec<Vec<Figures>>, _) =
        alternate(&modes, runs, Mode::name, measure, sample).await?;
    let [raw, compared] = [&samples[0], &samples[1]].map(|runs| Figures::median(runs));
    Ok(VersusRow {
        mode,
        subscribers: spec.subscribers_per_topic,
        payload: spec.payload,
        runs,
        rate_ratio: compared.delivered_per_s / raw.delivered_per_s.max(f64::EPSILON),
        cpu_ratio: compared.cpu_s_per_million / raw.cpu_s_per_million.max(f64::EPSILON),
        raw,
        compared,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use wspubsub_server::Options;

    use super::*;
    use crate::process::in_process;

    #[tokio::test]
    async fn raw_stream_and_sse_subscribers_get_every_message_in_order() -> anyhow::Result<()> {
        let (server, handle) = in_process(Options::default()).await?;
        let url = format!("ws://{}", server.addr());
        let spec = LoadSpec {
            topics: 1,
            subscribers_per_topic: 3,
            payload: 64,
            window: 8,
            warmup: Duration::from_millis(20),
            duration: Duration::from_millis(100),
            rate: None,
            mode: Mode::Raw,
        };
        for mode in [Mode::Stream, Mode::Sse] {
            let row = configuration(|| ServerProcess::external(&url, None), &spec, 1, mode).await?;
            assert_eq!(row.errors, Vec::<String>::new(), "{}", mode.name());
            assert_eq!(row.mode, mode);
            assert!(row.raw.delivered_per_s > 0.0 && row.compared.delivered_per_s > 0.0);
        }
        handle.shutdown();
        Ok(())
    }
}
