//! Limits on clients and topics, checked before the upgrade so that a refusal is an HTTP
//! status with a one-line body, never a connection that opens and then closes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hyper::StatusCode;

/// Why a client was refused by a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LimitReached {
    #[error("server is at its connection limit ({0}); try again later")]
    Connections(usize),
    #[error("too many connections from this address (limit {0})")]
    ConnectionsPerAddress(usize),
    #[error("server is at its topic limit ({0}); this topic cannot be created now")]
    Topics(usize),
    #[error("topic is at its subscriber limit ({0})")]
    SubscribersPerTopic(usize),
}

impl LimitReached {
    /// The option that set the limit, as the metrics label the refusal.
    pub(crate) fn rule(self) -> &'static str {
        match self {
            LimitReached::Connections(_) => "max_connections",
            LimitReached::ConnectionsPerAddress(_) => "max_connections_per_ip",
            LimitReached::Topics(_) => "max_topics",
            LimitReached::SubscribersPerTopic(_) => "max_subscribers_per_topic",
        }
    }

    /// The HTTP status that says it: 429 for a client's own excess, 503 for the server's.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            LimitReached::ConnectionsPerAddress(_) => StatusCode::TOO_MANY_REQUESTS,
            LimitReached::Connections(_)
            | LimitReached::Topics(_)
            | LimitReached::SubscribersPerTopic(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The connection limits and the live counts they apply to. 0 means no limit.
#[derive(Debug)]
pub(crate) struct ConnectionLimits {
    max_total: usize,
    max_per_address: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl ConnectionLimits {
    pub(crate) fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_total,
            max_per_address,
            counts: Mutex::default(),
        })
    }

    /// Counts a new client from `address`, or says which limit it would cross.
    pub(crate) fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Admission, LimitReached> {
        let mut counts = self.counts();
        if self.max_total != 0 && counts.total >= self.max_total {
            return Err(LimitReached::Connections(self.max_total));
        }
        let from_address = counts.per_address.get(&address).copied().unwrap_or(0);
        if self.max_per_address != 0 && from_address >= self.max_per_address {
            return Err(LimitReached::ConnectionsPerAddress(self.max_per_address));
        }
        counts.total += 1;
        *counts.per_address.entry(address).or_insert(0) += 1;
        Ok(Admission {
            limits: Arc::clone(self),
            address,
        })
    }

    /// Live clients.
    pub(crate) fn connections(&self) -> usize {
        self.counts().total
    }

    fn release(&self, address: IpAddr) {
        let mut counts = self.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.per_address.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                counts.per_address.remove(&address);
            }
        }
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Nothing panics while holding this lock; if something did, the counts still hold.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A counted client; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: Arc<ConnectionLimits>,
    address: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.limits.release(self.address);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn total_and_per_address_limits_free_up_on_drop() {
        let limits = ConnectionLimits::new(3, 2);
        let a1 = limits.admit(A).expect("first");
        let _a2 = limits.admit(A).expect("second from A");
        assert_eq!(
            limits.admit(A).err(),
            Some(LimitReached::ConnectionsPerAddress(2))
        );
        let _b1 = limits.admit(B).expect("B has its own count");
        assert_eq!(limits.admit(B).err(), Some(LimitReached::Connections(3)));
        drop(a1);
        assert_eq!(limits.connections(), 2);
        assert!(limits.admit(B).is_ok());
    }

    #[test]
    fn zero_means_no_limit_and_statuses_say_whose_excess() {
        let limits = ConnectionLimits::new(0, 0);
        let admitted: Vec<_> = (0..100)
            .map(|_| limits.admit(A).expect("no limit"))
            .collect();
        assert_eq!(limits.connections(), admitted.len());
        assert_eq!(
            LimitReached::ConnectionsPerAddress(1).status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            LimitReached::Topics(1).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
