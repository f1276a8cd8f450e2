//! The URL of one connection of a stream-mode subscriber: the topic's URL with the start
//! position in its query.

use std::time::{Duration, UNIX_EPOCH};

use wspubsub_protocol::{FROM_QUERY, GAP_QUERY, SINCE_QUERY, StartPosition};

use crate::ClientError;

/// `url` asking to start at `position`. A URL that names a start position itself is refused:
/// the subscriber moves its position as it reads, so the position has one home, the options.
pub(crate) fn start_url(url: &str, position: StartPosition) -> Result<String, ClientError> {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    for pair in query.split('&') {
        let key = pair.split_once('=').map_or(pair, |(key, _)| key);
        if [FROM_QUERY, SINCE_QUERY, GAP_QUERY].contains(&key) {
            return Err(ClientError::InvalidUrl(format!(
                "{key}= in the URL: give the start position in SubscriberOptions instead"
            )));
        }
    }
    let parameter = match position {
        StartPosition::Latest => return Ok(url.to_owned()),
        StartPosition::Earliest => format!("{FROM_QUERY}=earliest"),
        StartPosition::Seq(seq) => format!("{FROM_QUERY}={seq}"),
        StartPosition::Since(micros) => {
            let time = UNIX_EPOCH + Duration::from_micros(micros);
            format!("{SINCE_QUERY}={}", humantime::format_rfc3339_micros(time))
        }
    };
    let separator = match url.split_once('?') {
        None => "?",
        Some((_, "")) => "",
        Some(_) => "&",
    };
    Ok(format!("{url}{separator}{parameter}"))
}

#[cfg(test)]
mod tests {
    use wspubsub_protocol::Start;

    use super::*;

    fn url(url: &str, position: StartPosition) -> String {
        start_url(url, position).expect("a usable URL")
    }

    #[test]
    fn the_position_joins_the_query() {
        let base = "ws://127.0.0.1:1/t";
        assert_eq!(url(base, StartPosition::Latest), base);
        assert_eq!(
            url(base, StartPosition::Seq(42)),
            "ws://127.0.0.1:1/t?from=42"
        );
        assert_eq!(
            url("ws://h/t?token=x", StartPosition::Earliest),
            "ws://h/t?token=x&from=earliest"
        );
        assert_eq!(url("ws://h/t?", StartPosition::Seq(1)), "ws://h/t?from=1");
    }

    #[test]
    fn a_since_position_reads_back_to_the_microsecond() {
        let micros = 1_764_590_400_123_456;
        let url = start_url("ws://h/t", StartPosition::Since(micros)).expect("url");
        let since = url.split_once("since=").map(|(_, value)| value);
        let parsed = Start::parse(None, since, None).expect("the server reads it");
        assert_eq!(parsed.position, StartPosition::Since(micros));
    }

    #[test]
    fn a_url_with_its_own_start_position_is_refused() {
        for url in ["ws://h/t?from=1", "ws://h/t?x=1&since=5", "ws://h/t?gap=ok"] {
            assert!(
                matches!(
                    start_url(url, StartPosition::Latest),
                    Err(ClientError::InvalidUrl(_))
                ),
                "{url}"
            );
        }
    }
}
