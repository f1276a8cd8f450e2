//! Defaults shared by the server and the clients.

use std::time::Duration;

/// How long a peer may stay silent (no pong, no frame) before it is closed.
pub const DEFAULT_PONG_DEADLINE: Duration = Duration::from_secs(5);

/// How long a graceful close may take before the connection is dropped regardless.
pub const DEFAULT_CLOSE_DEADLINE: Duration = Duration::from_secs(5);

/// The largest message the server accepts from a publisher by default (1 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

/// Pings go out at this fraction of the pong deadline, so a pong has time to come back.
pub const PING_INTERVAL_RATIO: f64 = 0.7;

/// The ping interval for a pong deadline.
pub fn ping_interval(pong_deadline: Duration) -> Duration {
    pong_deadline.mul_f64(PING_INTERVAL_RATIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_come_before_the_deadline() {
        assert_eq!(
            ping_interval(Duration::from_secs(10)),
            Duration::from_secs(7)
        );
        assert!(ping_interval(DEFAULT_PONG_DEADLINE) < DEFAULT_PONG_DEADLINE);
    }
}
