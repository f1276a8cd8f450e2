//! The client's address behind trusted proxies. A load balancer connects on its clients'
//! behalf and names each client in `X-Forwarded-For`; only proxies the operator trusts may
//! do so, or any client could claim any address and slip past the per-address limit.

use std::net::IpAddr;

use hyper::HeaderMap;
use ipnet::IpNet;

/// The header proxies name the client in (each hop appends the address it received from).
const FORWARDED_FOR: &str = "x-forwarded-for";

/// The proxies whose `X-Forwarded-For` is believed. Empty (the default) believes no one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// Trusts the proxies in `networks`.
    pub(crate) fn new(networks: &[IpNet]) -> Self {
        TrustedProxies {
            networks: networks.to_vec(),
        }
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.networks
            .iter()
            .any(|network| network.contains(&address))
    }

    /// The address a request comes from: `peer`, unless `peer` is a trusted proxy; then the
    /// nearest hop in `X-Forwarded-For` that is not a trusted proxy (read from the right, where
    /// the trusted hops appended; anything left of the first untrusted hop is the client's
    /// own claim and ignored).
    pub(crate) fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops = headers
            .get_all(FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','));
        for hop in hops.rev() {
            // A hop that is not an address ends what can be believed.
            let Ok(address) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = address.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                FORWARDED_FOR,
                HeaderValue::from_str(value).expect("a header"),
            );
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn proxies(networks: &[&str]) -> TrustedProxies {
        let networks: Vec<IpNet> = networks
            .iter()
            .map(|network| network.parse().expect("a network"))
            .collect();
        TrustedProxies::new(&networks)
    }

    #[test]
    fn untrusted_peers_are_who_they_are_whatever_they_claim() {
        let none = TrustedProxies::default();
        let claim = headers(&["203.0.113.9"]);
        assert_eq!(
            none.client_address(ip("198.51.100.1"), &claim),
            ip("198.51.100.1")
        );
        let lb = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            lb.client_address(ip("198.51.100.1"), &claim),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_spoofed_hops_are_ignored() {
        let lb = proxies(&["10.0.0.0/8", "fd00::/8"]);
        let peer = ip("10.1.2.3");
        assert_eq!(
            lb.client_address(peer, &headers(&["203.0.113.9"])),
            ip("203.0.113.9")
        );
        // The client claimed 1.2.3.4 itself; the trusted hops appended the rest.
        let chain = headers(&["1.2.3.4, 203.0.113.9", "10.9.9.9"]);
        assert_eq!(lb.client_address(peer, &chain), ip("203.0.113.9"));
        // Garbage stops the walk at the last believable hop.
        let garbage = headers(&["203.0.113.9, not-an-address, 10.9.9.9"]);
        assert_eq!(lb.client_address(peer, &garbage), ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(lb.client_address(peer, &HeaderMap::new()), peer);
        // IPv4 clients of a dual-stack listener arrive as ::ffff:a.b.c.d.
        assert_eq!(
            lb.client_address(ip("::ffff:10.1.2.3"), &headers(&["2001:db8::7"])),
            ip("2001:db8::7")
        );
    }
}
