//! Where a subscriber's delivery begins: the `from`, `since` and `gap` query parameters.
//!
//! Parsed in one place so that the server, the clients and the README agree on the spelling.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Query parameter naming the first message wanted: `latest`, `earliest` or a sequence number.
pub const FROM_QUERY: &str = "from";

/// Query parameter naming the time of the first message wanted (RFC 3339 or unix milliseconds).
pub const SINCE_QUERY: &str = "since";

/// Query parameter that accepts a gap (`gap=ok`) instead of a refusal.
pub const GAP_QUERY: &str = "gap";

/// Largest sequence number: below 2^53, so that JavaScript reads every one exactly.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// Where delivery begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartPosition {
    /// Only what is published after the subscriber joined (the default, as in protocol v1).
    #[default]
    Latest,
    /// The oldest message history holds.
    Earliest,
    /// The message with this sequence number (the first one wanted).
    Seq(u64),
    /// The first message the server took at or after this time, in unix microseconds.
    Since(u64),
}

/// A subscriber's start position and whether it accepts a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Start {
    /// Where delivery begins.
    pub position: StartPosition,
    /// Whether a position history no longer covers is accepted (`gap=ok`): delivery then
    /// begins with what history has.
    pub gap_ok: bool,
}

/// A start position the server cannot read (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadStart {
    /// `from` is none of `latest`, `earliest`, a sequence number below 2^53.
    #[error("invalid from={0:?}: expected latest, earliest or a sequence number below 2^53")]
    From(String),
    /// `since` is neither an RFC 3339 time nor unix milliseconds.
    #[error("invalid since={0:?}: expected an RFC 3339 time or unix milliseconds")]
    Since(String),
    /// Both `from` and `since` were given.
    #[error("give from= or since=, not both")]
    Both,
    /// `gap` is not `ok`.
    #[error("invalid gap={0:?}: the only value is ok")]
    Gap(String),
}

impl Start {
    /// Reads the values of the `from`, `since` and `gap` query parameters (each `None` when
    /// absent).
    ///
    /// ```
    /// use wspubsub_protocol::{Start, StartPosition};
    /// let start = Start::parse(Some("42"), None, Some("ok")).unwrap();
    /// assert_eq!(start, Start { position: StartPosition::Seq(42), gap_ok: true });
    /// ```
    pub fn parse(
        from: Option<&str>,
        since: Option<&str>,
        gap: Option<&str>,
    ) -> Result<Start, BadStart> {
        let position = match (from, since) {
            (Some(_), Some(_)) => return Err(BadStart::Both),
            (None, None) => StartPosition::Latest,
            (Some(from), None) => parse_from(from)?,
            (None, Some(since)) => StartPosition::Since(parse_since(since)?),
        };
        let gap_ok = match gap {
            None => false,
            Some("ok") => true,
            Some(other) => return Err(BadStart::Gap(other.to_owned())),
        };
        Ok(Start { position, gap_ok })
    }
}

fn parse_from(from: &str) -> Result<StartPosition, BadStart> {
    match from {
        "latest" => Ok(StartPosition::Latest),
        "earliest" => Ok(StartPosition::Earliest),
        digits => digits
            .parse::<u64>()
            .ok()
            .filter(|seq| *seq <= MAX_SEQ && digits.bytes().all(|b| b.is_ascii_digit()))
            .map(StartPosition::Seq)
            .ok_or_else(|| BadStart::From(from.to_owned())),
    }
}

fn parse_since(since: &str) -> Result<u64, BadStart> {
    let bad = || BadStart::Since(since.to_owned());
    let time = if since.bytes().all(|b| b.is_ascii_digit()) {
        let millis = since.parse::<u64>().map_err(|_| bad())?;
        UNIX_EPOCH.checked_add(Duration::from_millis(millis))
    } else {
        humantime::parse_rfc3339_weak(since).ok()
    }
    .ok_or_else(bad)?;
    unix_micros(time).ok_or_else(bad)
}

/// A time as unix microseconds: `None` before 1970 or past the year 287396.
pub fn unix_micros(time: SystemTime) -> Option<u64> {
    let since_epoch = time.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since_epoch.as_micros()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(from: Option<&str>, since: Option<&str>) -> Result<StartPosition, BadStart> {
        Start::parse(from, since, None).map(|start| start.position)
    }

    #[test]
    fn from_values() {
        assert_eq!(position(None, None), Ok(StartPosition::Latest));
        assert_eq!(position(Some("latest"), None), Ok(StartPosition::Latest));
        assert_eq!(
            position(Some("earliest"), None),
            Ok(StartPosition::Earliest)
        );
        assert_eq!(position(Some("0"), None), Ok(StartPosition::Seq(0)));
        assert_eq!(
            position(Some("9007199254740991"), None),
            Ok(StartPosition::Seq(MAX_SEQ))
        );
        for bad in ["9007199254740992", "-1", "+5", "", "Latest", "1.5"] {
            assert_eq!(
                position(Some(bad), None),
                Err(BadStart::From(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn since_values() {
        assert_eq!(
            position(None, Some("1500")),
            Ok(StartPosition::Since(1_500_000))
        );
        assert_eq!(
            position(None, Some("2026-12-01T10:00:00Z")),
            Ok(StartPosition::Since(1_796_119_200_000_000))
        );
        assert_eq!(
            position(None, Some("2026-12-01T10:00:00.5+00:00")),
            Ok(StartPosition::Since(1_796_119_200_500_000))
        );
        for bad in ["yesterday", "", "18446744073709551616"] {
            assert_eq!(position(None, Some(bad)), Err(BadStart::Since(bad.into())));
        }
        assert_eq!(position(Some("1"), Some("1")), Err(BadStart::Both));
    }

    #[test]
    fn gap_must_be_ok() {
        assert!(Start::parse(None, None, Some("ok")).is_ok_and(|start| start.gap_ok));
        assert!(!Start::default().gap_ok);
        assert_eq!(
            Start::parse(None, None, Some("yes")),
            Err(BadStart::Gap("yes".into()))
        );
    }
}
