//! Log setup: lines on stderr, filtered by `RUST_LOG` (default `info`); human-readable
//! (colored only on a terminal, so that piped logs stay greppable) or one JSON object per line
//! for log collectors.
//!
//! While a cluster-mode server starts, the NATS client's own lines are off by default
//! ([`Logging::quiet_nats_client`]): a start that fails (wrong credentials, say) is one
//! `wspubsub: ...` line on stderr, not that line plus the client's report of the same thing.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The filter when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "info";

/// [`DEFAULT_FILTER`] without the NATS client's lines.
const QUIET_NATS_FILTER: &str = "info,async_nats=off";

/// Replaces the installed subscriber's filter.
type SetFilter = Box<dyn Fn(EnvFilter) + Send + Sync>;

/// The installed subscriber, whose default filter the start narrows for a while.
pub(crate) struct Logging {
    /// Sets the filter; `None` when `RUST_LOG` chose it, which is then left alone.
    set_filter: Option<SetFilter>,
}

/// Keeps the NATS client's lines off until [`QuietNats::end`]: never, when the start fails,
/// so that the client's report of closing its connection on the way out is not printed
/// either.
#[must_use = "end() turns the NATS client's lines back on"]
pub(crate) struct QuietNats<'a>(&'a Logging);

impl QuietNats<'_> {
    /// Turns the NATS client's lines back on: the server started.
    pub(crate) fn end(self) {
        self.0.set(DEFAULT_FILTER);
    }
}

impl Logging {
    /// Turns the NATS client's own lines off until [`QuietNats::end`], unless `RUST_LOG`
    /// says otherwise.
    pub(crate) fn quiet_nats_client(&self) -> QuietNats<'_> {
        self.set(QUIET_NATS_FILTER);
        QuietNats(self)
    }

    fn set(&self, directives: &str) {
        if let Some(set_filter) = &self.set_filter {
            set_filter(EnvFilter::new(directives));
        }
    }
}

/// Installs the global subscriber.
pub(crate) fn init(format: LogFormat) -> Logging {
    let (filter, chosen) = match EnvFilter::try_from_default_env() {
        Ok(filter) => (filter, true),
        Err(_) => (EnvFilter::new(DEFAULT_FILTER), false),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let set_filter: SetFilter = match format {
        LogFormat::Pretty => {
            let builder = builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            // Fails only once the subscriber is gone, when there is nothing left to filter.
            Box::new(move |filter| drop(handle.reload(filter)))
        }
        LogFormat::Json => {
            let builder = builder.json().with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            Box::new(move |filter| drop(handle.reload(filter)))
        }
    };
    Logging {
        set_filter: (!chosen).then_some(set_filter),
    }
}
