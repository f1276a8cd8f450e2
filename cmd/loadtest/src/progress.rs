//! Progress of a run: a bar on a terminal, counters that the binary prints as plain lines
//! elsewhere (CI logs).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

/// Shared progress counters; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    bar: Option<ProgressBar>,
    delivered: AtomicU64,
    total: AtomicU64,
}

impl Progress {
    /// A bar when stderr is a terminal, bare counters otherwise.
    pub fn for_stderr() -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::default();
        }
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} deliveries ({per_sec})",
        ) {
            bar.set_style(style);
        }
        Progress {
            inner: Arc::new(Inner {
                bar: Some(bar),
                ..Inner::default()
            }),
        }
    }

    /// Whether this progress draws a bar (if not, the caller prints lines).
    pub fn has_bar(&self) -> bool {
        self.inner.bar.is_some()
    }

    /// Deliveries so far and in all.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.inner.delivered.load(Ordering::Relaxed),
            self.inner.total.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn start(&self, total: u64) {
        self.inner.total.store(total, Ordering::Relaxed);
        if let Some(bar) = &self.inner.bar {
            bar.set_length(total);
        }
    }

    pub(crate) fn delivered(&self, count: u64) {
        self.inner.delivered.fetch_add(count, Ordering::Relaxed);
        if let Some(bar) = &self.inner.bar {
            bar.inc(count);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.inner.bar {
            bar.finish_and_clear();
        }
    }
}
