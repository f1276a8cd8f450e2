//! Keeping a wspubsub peer honest, the same way on the server and in the clients: pings at
//! [`wspubsub_protocol::ping_interval`] (0.7x the pong deadline), and a deadline that ends a
//! connection whose peer was heard nothing from (no pong, no frame) within the pong deadline,
//! from the first moment of the connection.
//!
//! The protocol crate says what both sides agree on (the deadline, the ratio); this crate is
//! the one home of the timers that enforce it, so that the protocol crate needs no clock.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The ping schedule and the silence deadline of one connection, on one timer: a server holds
/// one of these per idle connection, so it is kept small (one timer entry, not two).
#[derive(Debug)]
pub struct Liveness {
    deadline: Duration,
    every: Duration,
    last_heard: Instant,
    next_ping: Instant,
    /// Fires at the earlier of the next ping and `last_heard + deadline` as it stood when last
    /// armed; re-armed lazily, so that hearing from the peer costs a store, not a timer
    /// update, on the hot path.
    timer: Pin<Box<Sleep>>,
}

/// What a liveness timer said when it fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Time to send a ping.
    Ping,
    /// The peer was heard from in time; nothing to do.
    Alive,
    /// Nothing heard within the deadline: close the peer.
    Expired,
}

impl Liveness {
    /// Starts the clocks now: the first ping is due at 0.7x `pong_deadline`, and the peer
    /// must be heard from within `pong_deadline`.
    pub fn new(pong_deadline: Duration) -> Self {
        let now = Instant::now();
        let every = wspubsub_protocol::ping_interval(pong_deadline);
        let next_ping = now + every;
        Liveness {
            deadline: pong_deadline,
            every,
            last_heard: now,
            next_ping,
            timer: Box::pin(tokio::time::sleep_until(next_ping.min(now + pong_deadline))),
        }
    }

    /// Records that the peer just showed signs of life (or that a pause was ours, not the
    /// peer's silence).
    pub fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// Waits for the next ping time or deadline check. Cancel-safe: the timer is only re-armed
    /// once it fired, in the same poll that reports it.
    pub async fn tick(&mut self) -> Tick {
        self.timer.as_mut().await;
        let now = Instant::now();
        let expiry = self.last_heard + self.deadline;
        if expiry <= now {
            return Tick::Expired;
        }
        let tick = if self.next_ping <= now {
            // A late ping moves the schedule on from now, not from when it was due.
            self.next_ping = now + self.every;
            Tick::Ping
        } else {
            Tick::Alive
        };
        self.timer.as_mut().reset(self.next_ping.min(expiry));
        tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn silent_peer_expires_at_the_deadline() {
        let start = Instant::now();
        let mut liveness = Liveness::new(Duration::from_secs(5));
        assert_eq!(liveness.tick().await, Tick::Ping);
        assert_eq!(start.elapsed(), Duration::from_millis(3500));
        assert_eq!(liveness.tick().await, Tick::Expired);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn hearing_from_the_peer_moves_the_deadline() {
        let start = Instant::now();
        let mut liveness = Liveness::new(Duration::from_secs(5));
        assert_eq!(liveness.tick().await, Tick::Ping);
        liveness.heard(); // at 3.5 s: the deadline moves to 8.5 s
        assert_eq!(liveness.tick().await, Tick::Alive);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(liveness.tick().await, Tick::Ping);
        assert_eq!(start.elapsed(), Duration::from_secs(7));
        assert_eq!(liveness.tick().await, Tick::Expired);
        assert_eq!(start.elapsed(), Duration::from_millis(8500));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answering_peer_is_pinged_every_interval_and_never_expires() {
        let start = Instant::now();
        let mut liveness = Liveness::new(Duration::from_secs(5));
        let mut pings = Vec::new();
        while pings.len() < 8 {
            match liveness.tick().await {
                Tick::Ping => {
                    pings.push(start.elapsed());
                    liveness.heard(); // the pong comes at once
                }
                Tick::Alive => {}
                Tick::Expired => panic!("expired at {:?}", start.elapsed()),
            }
        }
        let expected: Vec<_> = (1..=8).map(|n| Duration::from_millis(3500 * n)).collect();
        assert_eq!(pings, expected);
    }
}
