//! Topic patterns: a path with a segment exactly `*` (any one segment) or, as its last
//! segment, `**` (whatever follows, nothing included). A subscriber of a pattern follows every
//! matching topic, those that exist and those yet to come ([`registry`], [`feed`]); token
//! claims are patterns too. Segments are compared as they appear in the URL, so `%2A` is a
//! literal star, never a wildcard.
//!
//! One rule serves both: a pattern *covers* another when every topic the second can reach is
//! one the first reaches ([`covers`]); a topic is a pattern without wildcards, so "matches"
//! is "covers a topic".

pub(crate) mod cluster;
pub(crate) mod feed;
pub(crate) mod registry;

/// One path segment that matches any one segment.
const ANY_SEGMENT: &str = "*";

/// A last path segment that matches whatever follows (nothing included).
const ANY_REST: &str = "**";

/// A path that names a pattern, not a topic, yet is not a valid one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadPattern {
    /// `**` stands for the rest of the path, so nothing may follow it.
    #[error("`**` may only be the last segment of a pattern")]
    RestNotLast,
}

/// Whether `path` is a pattern: a segment is exactly `*` or `**`.
pub(crate) fn is_pattern(path: &str) -> bool {
    path.split('/')
        .any(|segment| segment == ANY_SEGMENT || segment == ANY_REST)
}

/// Checks a pattern path: `**` only at the end.
pub(crate) fn check(pattern: &str) -> Result<(), BadPattern> {
    let mut segments = pattern.split('/').peekable();
    while let Some(segment) = segments.next() {
        if segment == ANY_REST && segments.peek().is_some() {
            return Err(BadPattern::RestNotLast);
        }
    }
    Ok(())
}

/// Whether every topic `narrower` reaches is one `wider` reaches: a claim covering a
/// subscription, or (with a plain topic as `narrower`) a pattern matching a topic.
pub(crate) fn covers(wider: &str, narrower: &str) -> bool {
    let mut narrower = narrower.split('/');
    for expected in wider.split('/') {
        if expected == ANY_REST {
            return true;
        }
        match narrower.next() {
            // `**` reaches any depth, which nothing short of `**` covers.
            Some(ANY_REST) | None => return false,
            Some(ANY_SEGMENT) if expected != ANY_SEGMENT => return false,
            Some(segment) if expected == ANY_SEGMENT || expected == segment => {}
            Some(_) => return false,
        }
    }
    narrower.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_topics_segment_by_segment() {
        assert!(covers("/chat/room1", "/chat/room1"));
        assert!(!covers("/chat/room1", "/chat/room2"));
        assert!(covers("/chat/*", "/chat/room1"));
        assert!(!covers("/chat/*", "/chat/room1/history"));
        assert!(!covers("/chat/*", "/chat"));
        assert!(covers("/chat/**", "/chat/room1/history"));
        assert!(covers("/chat/**", "/chat/"));
        assert!(covers("/chat/**", "/chat"), "`**` includes nothing");
        assert!(covers("/**", "/anything/at/all"));
        assert!(covers("/*/status", "/sensor-1/status"));
        assert!(!covers("/*/status", "/sensor-1/config"));
        assert!(
            covers("/chat/*", "/chat/%2A"),
            "a literal star is a segment"
        );
        assert!(
            !covers("/chat/%2A", "/chat/room1"),
            "and matches only itself"
        );
    }

    #[test]
    fn a_claim_covers_a_pattern_only_if_it_reaches_everything_the_pattern_does() {
        assert!(covers("/chat/*", "/chat/*"));
        assert!(covers("/chat/**", "/chat/*"));
        assert!(covers("/chat/**", "/chat/**"));
        assert!(covers("/**", "/chat/*/log"));
        assert!(covers("/*/*", "/chat/*"));
        assert!(
            !covers("/chat/room1", "/chat/*"),
            "a topic claim is narrower"
        );
        assert!(
            !covers("/chat/*", "/chat/**"),
            "one level is narrower than any depth"
        );
        assert!(!covers("/chat/*/log", "/chat/**"));
        assert!(
            !covers("/chat/*", "/*/room1"),
            "the pattern reaches other first segments"
        );
        assert!(
            !covers("/a/*/**", "/a/**"),
            "the pattern reaches /a, the claim does not"
        );
    }

    #[test]
    fn only_exact_star_segments_make_a_pattern() {
        assert!(is_pattern("/chat/*"));
        assert!(is_pattern("/sensors/**"));
        assert!(is_pattern("/*/status"));
        assert!(!is_pattern("/chat/%2A"));
        assert!(!is_pattern("/chat/a*"));
        assert!(!is_pattern("/chat/***"));
        assert_eq!(check("/sensors/**"), Ok(()));
        assert_eq!(check("/**/status"), Err(BadPattern::RestNotLast));
    }
}
