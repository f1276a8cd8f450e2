//! When a client connects again after its connection ended: exponential backoff with jitter,
//! up to a maximum delay, for as many attempts as the policy allows.

use std::time::Duration;

use wspubsub_protocol::Role;

use crate::socket::{self, ClientSocket, Mode};
use crate::{ClientError, ClientOptions};

/// Default first delay before connecting again.
pub const DEFAULT_RECONNECT_INITIAL: Duration = Duration::from_millis(100);

/// Default longest delay between two attempts.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(10);

/// How a stream-mode client connects again after its connection ended for a reason a new
/// connection can fix ([`ClientError::is_retryable`]): a network loss, a server restart or
/// shutdown, a cut for being slow (`4000`) or silent (`4001`), a busy server.
///
/// The delay before attempt `n` (from 1) is drawn at random from the upper half of
/// `initial × 2^(n-1)`, capped at `max`, so that clients cut at once do not all come back at
/// once. A connection that got as far as the server's `subscribed` frame (subscribers) or
/// that was accepted (publishers) starts the count again. Errors a retry cannot fix (a bad
/// URL, a refused token, an option the server refuses) end the client at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) max_attempts: Option<u32>,
}

impl Default for Reconnect {
    /// 100 ms, doubling up to 10 s, attempts without end.
    fn default() -> Self {
        Reconnect {
            initial: DEFAULT_RECONNECT_INITIAL,
            max: DEFAULT_RECONNECT_MAX,
            max_attempts: None,
        }
    }
}

impl Reconnect {
    /// Backoff from `initial`, doubling per failed attempt, never longer than `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Reconnect {
            initial,
            max,
            max_attempts: None,
        }
    }

    /// Gives up, with the error of the last attempt, after `attempts` failed attempts in a
    /// row (the default is never to give up).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Refuses a policy that cannot run: a zero or inverted delay range, zero attempts.
    pub(crate) fn validate(&self) -> Result<(), ClientError> {
        if self.initial.is_zero() || self.max < self.initial {
            return Err(ClientError::InvalidOption(format!(
                "reconnect delays must satisfy 0 < initial ({:?}) <= max ({:?})",
                self.initial, self.max
            )));
        }
        if self.max_attempts == Some(0) {
            return Err(ClientError::InvalidOption(
                "reconnect attempts must not be zero".into(),
            ));
        }
        Ok(())
    }
}

/// Attempts made since the last connection that worked, under a [`Reconnect`] policy.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: Reconnect,
    failed: u32,
}

impl Backoff {
    /// A fresh count under `policy`.
    pub(crate) fn new(policy: Reconnect) -> Self {
        Backoff { policy, failed: 0 }
    }

    /// A connection worked: the next failure starts from the initial delay again.
    pub(crate) fn reset(&mut self) {
        self.failed = 0;
    }

    /// The delay before the next attempt, or `None` when the policy's attempts are used up.
    pub(crate) fn next_delay(&mut self) -> Option<Duration> {
        if self
            .policy
            .max_attempts
            .is_some_and(|max| self.failed >= max)
        {
            return None;
        }
        let ceiling = self
            .policy
            .initial
            .saturating_mul(1u32.checked_shl(self.failed.min(31)).unwrap_or(u32::MAX))
            .min(self.policy.max);
        self.failed = self.failed.saturating_add(1);
        // Equal jitter: half fixed, half random, so the delay still grows with each failure.
        let half = ceiling / 2;
        Some(half.saturating_add(half.mul_f64(rand::random::<f64>())))
    }
}

/// Connects to `url` again, waiting the policy's delay before each attempt: the new socket,
/// or the error that ends the client (one a retry cannot fix, or the last one when the
/// attempts ran out).
pub(crate) async fn connect_again(
    url: &str,
    role: Role,
    mode: Mode,
    backoff: &mut Backoff,
    options: &ClientOptions,
) -> Result<ClientSocket, ClientError> {
    let mut last = None;
    while let Some(delay) = backoff.next_delay() {
        tokio::time::sleep(delay).await;
        match socket::connect(url, role, mode, options).await {
            Ok(socket) => return Ok(socket),
            Err(error) if error.is_retryable() => {
                tracing::debug!(%error, "reconnect attempt failed");
                last = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(last.unwrap_or(ClientError::Closed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_up_to_the_maximum() {
        let policy = Reconnect::new(Duration::from_millis(100), Duration::from_millis(800));
        let mut backoff = Backoff::new(policy);
        for ceiling_ms in [100, 200, 400, 800, 800, 800] {
            let delay = backoff.next_delay().expect("no attempt limit");
            let ceiling = Duration::from_millis(ceiling_ms);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        backoff.reset();
        assert!(backoff.next_delay().expect("reset") <= Duration::from_millis(100));
    }

    #[test]
    fn attempts_run_out_and_a_success_restores_them() {
        let mut backoff = Backoff::new(Reconnect::default().max_attempts(2));
        assert!(backoff.next_delay().is_some());
        assert!(backoff.next_delay().is_some());
        assert_eq!(backoff.next_delay(), None);
        backoff.reset();
        assert!(backoff.next_delay().is_some());
    }

    #[test]
    fn many_failures_never_overflow() {
        let mut backoff = Backoff::new(Reconnect::new(Duration::from_secs(1), Duration::MAX));
        for _ in 0..100 {
            assert!(backoff.next_delay().is_some());
        }
    }

    #[test]
    fn unusable_policies_are_refused() {
        assert!(Reconnect::default().validate().is_ok());
        for policy in [
            Reconnect::new(Duration::ZERO, Duration::from_secs(1)),
            Reconnect::new(Duration::from_secs(2), Duration::from_secs(1)),
            Reconnect::default().max_attempts(0),
        ] {
            assert!(
                matches!(policy.validate(), Err(ClientError::InvalidOption(_))),
                "{policy:?}"
            );
        }
    }
}
