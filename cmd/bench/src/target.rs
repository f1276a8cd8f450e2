//! What a load runs against: where its clients connect and whose CPU time it counts. One
//! server ([`ServerProcess`]) takes every client; a cluster (`cluster::Deployment`) spreads
//! them over its nodes and counts its NATS server's CPU time too.

use std::net::SocketAddr;

use crate::access::Access;
use crate::process::ServerProcess;

/// The servers a load runs against.
pub(crate) trait Target {
    /// Where publishers connect.
    fn publisher_addr(&self) -> SocketAddr;

    /// Where the subscriber numbered `index` (within its topic) connects.
    fn subscriber_addr(&self, index: usize) -> SocketAddr;

    /// What clients need to get in (TLS, a token).
    fn access(&self) -> &Access;

    /// CPU seconds (user + system) every process serving the load has used so far, the
    /// broker's included; NaN when a process is not known.
    fn cpu_seconds(&self) -> anyhow::Result<f64>;

    /// The part of [`Target::cpu_seconds`] a message broker (nats-server) used; 0 without one.
    fn broker_cpu_seconds(&self) -> anyhow::Result<f64> {
        Ok(0.0)
    }
}

impl Target for ServerProcess {
    fn publisher_addr(&self) -> SocketAddr {
        self.addr()
    }

    fn subscriber_addr(&self, _index: usize) -> SocketAddr {
        self.addr()
    }

    fn access(&self) -> &Access {
        ServerProcess::access(self)
    }

    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        ServerProcess::cpu_seconds(self)
    }
}
