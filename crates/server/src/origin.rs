//! Which browser origins may connect. Browsers send `Origin` with every WebSocket handshake
//! and let any page open one, so without this check any site a user visits could publish or
//! subscribe in their name. Requests without `Origin` (non-browser clients) always pass.

/// The allowed origins: exact origins (`https://app.example.com`) and host wildcards
/// (`*.example.com`, any scheme and port). Empty allows every origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OriginPolicy {
    exact: Vec<String>,
    /// Host suffixes, with their leading dot (`.example.com`).
    suffixes: Vec<String>,
}

impl OriginPolicy {
    /// The policy for `--allowed-origins`.
    pub(crate) fn new(allowed: &[String]) -> Self {
        let mut policy = OriginPolicy::default();
        for entry in allowed
            .iter()
            .map(|entry| entry.trim().to_ascii_lowercase())
        {
            match entry.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') => policy.suffixes.push(suffix.to_owned()),
                _ if !entry.is_empty() => policy.exact.push(entry.trim_end_matches('/').to_owned()),
                _ => {}
            }
        }
        policy
    }

    /// Whether no origins are configured: every origin may connect.
    pub(crate) fn allows_all(&self) -> bool {
        self.exact.is_empty() && self.suffixes.is_empty()
    }

    /// Whether a request with this `Origin` header value may connect.
    pub(crate) fn allows(&self, origin: &str) -> bool {
        if self.allows_all() {
            return true;
        }
        let origin = origin.trim().to_ascii_lowercase();
        if self.exact.contains(&origin) {
            return true;
        }
        let host = origin
            .split_once("://")
            .map_or(origin.as_str(), |(_, rest)| rest);
        // Drop the port, if any.
        let host = host.rsplit_once(':').map_or(host, |(host, _port)| host);
        self.suffixes
            .iter()
            .any(|suffix| host.ends_with(suffix.as_str()) && host.len() > suffix.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OriginPolicy {
        OriginPolicy::new(&entries.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn empty_policy_allows_everything() {
        assert!(policy(&[]).allows("https://anything.example"));
    }

    #[test]
    fn exact_origins_and_host_wildcards() {
        let policy = policy(&["https://app.example.com", "*.trusted.org"]);
        assert!(policy.allows("https://app.example.com"));
        assert!(policy.allows("HTTPS://APP.EXAMPLE.COM"));
        assert!(
            !policy.allows("http://app.example.com"),
            "the scheme is part of an exact origin"
        );
        assert!(!policy.allows("https://evil.example.com"));
        assert!(policy.allows("https://a.trusted.org"));
        assert!(policy.allows("http://deep.a.trusted.org:8443"));
        assert!(
            !policy.allows("https://trusted.org"),
            "the wildcard needs a subdomain"
        );
        assert!(!policy.allows("https://nottrusted.org"));
        assert!(!policy.allows("https://trusted.org.evil.com"));
        assert!(!policy.allows("null"));
    }
}
