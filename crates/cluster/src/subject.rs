//! Topic path <-> NATS subject: the one mapping every node uses, so that a topic published on
//! one node is the subject every other node consumes.
//!
//! # The rule
//!
//! A topic is a URL path as received (design.md: percent-escapes kept), so it starts with
//! `/`. Drop that leading `/` and split the rest on `/`: each piece is one *segment* (empty
//! ones included: `/` has one empty segment, `/a//b` has three). Each segment becomes one
//! subject *token*:
//!
//! - the bytes `A`-`Z`, `a`-`z`, `0`-`9`, `-` and `_` stay as they are;
//! - every other byte of the segment's UTF-8 (`.`, `*`, `>`, `%`, `$`, spaces, `~`, any
//!   non-ASCII, ...) becomes `%` and two **uppercase** hex digits (`.` is `%2E`, `%` is `%25`,
//!   `é` is `%C3%A9`);
//! - an empty segment becomes the token `%` alone (a NATS token cannot be empty, and `%`
//!   followed by anything but two hex digits is never produced otherwise).
//!
//! The subject is [`PREFIX`], `.`, then the tokens joined by `.`: `/chat/room%201` is
//! `wspubsub.t.chat.room%25201`, `/a.b/*` is `wspubsub.t.a%2Eb.%2A`.
//!
//! So a token holds only `A-Za-z0-9-_%`: never `.`, `*`, `>`, whitespace or a leading `$`,
//! whatever the path. The mapping is reversible ([`topic_for`] undoes [`subject_for`] and
//! accepts only what [`subject_for`] produces, so no two subjects name one topic) and keeps
//! one token per segment, so that a later pattern subscription can map a `*` segment to the
//! NATS wildcard `*` and a trailing `**` to `>` (a literal `*` segment is `%2A`, never the
//! wildcard). A subject is at most three times as long as its topic, plus the prefix.
//!
//! # Length
//!
//! NATS refuses a protocol line longer than its `max_control_line` (4096 bytes by default)
//! and closes the connection that sent it: the whole node's link, not just one topic. The
//! lines that carry a subject carry more (a reply subject, a consumer name, sizes), and
//! against a real server a subject of 4040 bytes still passed while 4060 broke the
//! connection. [`subject_for`] therefore refuses subjects over [`MAX_SUBJECT_BYTES`]
//! (3.5 KiB), which leaves room for those extras, JetStream domains and account names.

/// The subject prefix of every topic (two tokens); the stream covers `wspubsub.t.>`.
pub const PREFIX: &str = "wspubsub.t";

/// The longest subject [`subject_for`] gives (3.5 KiB): well under NATS's default 4 KiB
/// control line, which must also hold the reply subject and sizes (see the module docs).
pub const MAX_SUBJECT_BYTES: usize = 3584;

/// The token an empty segment becomes.
const EMPTY: &str = "%";

/// Why a topic has no subject, or a subject no topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// Topics are URL paths, which start with `/`.
    #[error("topic {0:?} does not start with '/'")]
    NotAPath(String),
    /// The subject is not under [`PREFIX`], so it is no topic of ours.
    #[error("subject {0:?} is not under {PREFIX}")]
    ForeignSubject(String),
    /// A token that [`subject_for`] never produces (a bad escape, a byte it escapes, ...).
    #[error("subject token {0:?} is not an escaped path segment")]
    BadToken(String),
    /// The unescaped bytes of a subject are not UTF-8, so no path produced it.
    #[error("subject {0:?} does not decode to UTF-8")]
    NotUtf8(String),
    /// The topic's subject would be longer than NATS takes ([`MAX_SUBJECT_BYTES`]).
    #[error(
        "the topic's NATS subject would be {subject_bytes} bytes, over the {MAX_SUBJECT_BYTES} \
         allowed (a path byte other than A-Z a-z 0-9 - _ counts three)"
    )]
    TooLong {
        /// The subject's length.
        subject_bytes: usize,
    },
}

/// The NATS subject for `topic` (see the module docs for the rule), at most
/// [`MAX_SUBJECT_BYTES`] long.
pub fn subject_for(topic: &str) -> Result<String, SubjectError> {
    let path = topic
        .strip_prefix('/')
        .ok_or_else(|| SubjectError::NotAPath(topic.to_owned()))?;
    let mut subject = String::with_capacity(PREFIX.len() + 1 + path.len() + 1);
    subject.push_str(PREFIX);
    for segment in path.split('/') {
        subject.push('.');
        push_token(&mut subject, segment);
    }
    if subject.len() > MAX_SUBJECT_BYTES {
        return Err(SubjectError::TooLong {
            subject_bytes: subject.len(),
        });
    }
    Ok(subject)
}

/// The subject filters that together match the subjects of every topic the pattern
/// `pattern` matches (a `*` segment: any one segment; a last `**`: whatever follows, nothing
/// included): `*` becomes the NATS wildcard `*`, a last `**` becomes `>`, and, since `**`
/// also matches nothing, the subject of the path before it is a filter of its own.
pub fn filters_for(pattern: &str) -> Result<Vec<String>, SubjectError> {
    let path = pattern
        .strip_prefix('/')
        .ok_or_else(|| SubjectError::NotAPath(pattern.to_owned()))?;
    let mut base = String::with_capacity(PREFIX.len() + 1 + path.len() + 1);
    base.push_str(PREFIX);
    let mut segments = path.split('/').peekable();
    let mut rest = false;
    while let Some(segment) = segments.next() {
        if segment == "**" && segments.peek().is_none() {
            rest = true;
            break;
        }
        base.push('.');
        match segment {
            "*" => base.push('*'),
            _ => push_token(&mut base, segment),
        }
    }
    let mut filters = Vec::with_capacity(2);
    if rest {
        filters.push(format!("{base}.>"));
    }
    // The prefix alone names no topic: every topic has one segment at least.
    if !rest || base.len() > PREFIX.len() {
        filters.push(base);
    }
    if let Some(long) = filters
        .iter()
        .find(|filter| filter.len() > MAX_SUBJECT_BYTES)
    {
        return Err(SubjectError::TooLong {
            subject_bytes: long.len(),
        });
    }
    Ok(filters)
}

/// The topic whose subject is `subject`: the inverse of [`subject_for`], refusing anything
/// it would not have produced.
pub fn topic_for(subject: &str) -> Result<String, SubjectError> {
    let tokens = subject
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix('.'))
        .ok_or_else(|| SubjectError::ForeignSubject(subject.to_owned()))?;
    let mut bytes = Vec::with_capacity(tokens.len() + 1);
    for token in tokens.split('.') {
        bytes.push(b'/');
        decode_token(token, &mut bytes)?;
    }
    String::from_utf8(bytes).map_err(|_| SubjectError::NotUtf8(subject.to_owned()))
}

/// Whether `byte` stays as it is in a token.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// Appends the token for one path segment.
fn push_token(subject: &mut String, segment: &str) {
    if segment.is_empty() {
        subject.push_str(EMPTY);
        return;
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in segment.as_bytes() {
        if is_plain(byte) {
            subject.push(char::from(byte));
        } else {
            subject.push('%');
            subject.push(char::from(HEX[usize::from(byte >> 4)]));
            subject.push(char::from(HEX[usize::from(byte & 0xF)]));
        }
    }
}

/// Appends the segment bytes of one token, accepting only canonical escapes.
fn decode_token(token: &str, out: &mut Vec<u8>) -> Result<(), SubjectError> {
    if token == EMPTY {
        return Ok(());
    }
    let bad = || SubjectError::BadToken(token.to_owned());
    let bytes = token.as_bytes();
    if bytes.is_empty() {
        return Err(bad());
    }
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if is_plain(byte) {
            out.push(byte);
            at += 1;
        } else if byte == b'%' {
            let high = bytes
                .get(at + 1)
                .copied()
                .and_then(upper_hex)
                .ok_or_else(bad)?;
            let low = bytes
                .get(at + 2)
                .copied()
                .and_then(upper_hex)
                .ok_or_else(bad)?;
            let decoded = high << 4 | low;
            // An escaped plain byte is a second spelling of the same segment.
            if is_plain(decoded) {
                return Err(bad());
            }
            out.push(decoded);
            at += 3;
        } else {
            return Err(bad());
        }
    }
    Ok(())
}

/// The value of an uppercase hex digit.
fn upper_hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pattern_filters_use_nats_wildcards_and_keep_literal_stars_escaped() {
        let filters = |pattern: &str| super::filters_for(pattern).expect("a pattern");
        assert_eq!(filters("/chat/*"), ["wspubsub.t.chat.*"]);
        assert_eq!(filters("/*/status"), ["wspubsub.t.*.status"]);
        assert_eq!(
            filters("/sensors/**"),
            ["wspubsub.t.sensors.>", "wspubsub.t.sensors"],
            "** includes nothing"
        );
        assert_eq!(filters("/**"), ["wspubsub.t.>"]);
        assert_eq!(filters("/a.b/%2A/*"), ["wspubsub.t.a%2Eb.%252A.*"]);
        assert!(super::filters_for("chat/*").is_err());
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        let table = [
            ("/", "wspubsub.t.%"),
            ("/a", "wspubsub.t.a"),
            ("/chat/room%201", "wspubsub.t.chat.room%25201"),
            ("/a.b/*/>", "wspubsub.t.a%2Eb.%2A.%3E"),
            ("/ sp//x", "wspubsub.t.%20sp.%.x"),
            ("/é", "wspubsub.t.%C3%A9"),
            ("/$JS/~", "wspubsub.t.%24JS.%7E"),
            ("/A-z_9/", "wspubsub.t.A-z_9.%"),
            ("/%", "wspubsub.t.%25"),
        ];
        for (topic, subject) in table {
            assert_eq!(subject_for(topic).as_deref(), Ok(subject), "{topic}");
            assert_eq!(topic_for(subject).as_deref(), Ok(topic), "{subject}");
        }
    }

    #[test]
    fn refuses_what_it_never_produces() {
        assert_eq!(
            subject_for("a/b"),
            Err(SubjectError::NotAPath("a/b".into()))
        );
        for foreign in ["wspubsub.x.a", "wspubsub.t", "other.t.a", "wspubsub.ta"] {
            assert_eq!(
                topic_for(foreign),
                Err(SubjectError::ForeignSubject(foreign.into())),
                "{foreign}"
            );
        }
        for token in [
            "", "%2e", "%41", "%4", "a%", "%%", "a*", ">", "a b", "é", "%ZZ",
        ] {
            let subject = format!("{PREFIX}.{token}");
            assert_eq!(
                topic_for(&subject),
                Err(SubjectError::BadToken(token.into())),
                "{subject}"
            );
        }
        assert!(matches!(
            topic_for("wspubsub.t.%FF"),
            Err(SubjectError::NotUtf8(_))
        ));
    }

    #[test]
    fn refuses_subjects_over_the_bound_counting_escapes_three_times() {
        let room = MAX_SUBJECT_BYTES - PREFIX.len() - 1;
        let longest = format!("/{}", "a".repeat(room));
        assert_eq!(
            subject_for(&longest).map(|subject| subject.len()),
            Ok(MAX_SUBJECT_BYTES)
        );
        let one_more = format!("/{}", "a".repeat(room + 1));
        assert_eq!(
            subject_for(&one_more),
            Err(SubjectError::TooLong {
                subject_bytes: MAX_SUBJECT_BYTES + 1
            })
        );
        // A third as many dots: each is `%2E` in the subject.
        let dots = format!("/{}", ".".repeat(room / 3 + 1));
        assert!(matches!(
            subject_for(&dots),
            Err(SubjectError::TooLong { .. })
        ));
    }

    /// Paths of awkward characters: the ones the rule escapes, and any other.
    fn path() -> impl Strategy<Value = String> {
        let segment = prop_oneof![
            "[a-z./*> %~$\t-]{0,6}",
            any::<String>().prop_map(|s| s.replace('/', "")),
        ];
        proptest::collection::vec(segment, 1..6).prop_map(|segments| {
            let mut path = String::new();
            for segment in segments {
                path.push('/');
                path.push_str(&segment);
            }
            path
        })
    }

    proptest! {
        #[test]
        fn round_trips_one_safe_token_per_segment(topic in path()) {
            let subject = subject_for(&topic).expect("a path has a subject");
            let back = topic_for(&subject);
            prop_assert_eq!(back.as_deref(), Ok(topic.as_str()));
            let tokens = subject
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.strip_prefix('.'))
                .expect("under the prefix");
            let tokens: Vec<&str> = tokens.split('.').collect();
            prop_assert_eq!(tokens.len(), topic.split('/').count() - 1);
            for token in tokens {
                prop_assert!(!token.is_empty());
                prop_assert!(
                    token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_%".contains(&b)),
                    "token {:?}", token
                );
            }
        }

        #[test]
        fn different_topics_get_different_subjects(a in path(), b in path()) {
            prop_assume!(a != b);
            prop_assert_ne!(subject_for(&a), subject_for(&b));
        }
    }
}
