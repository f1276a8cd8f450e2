//! Where a stream-mode subscriber stands, across its connections: the position to resume at,
//! and the frames of each connection turned into [`Event`]s without a duplicate.

use bytes::Bytes;
use wspubsub_protocol::{Control, Envelope, StartPosition};

use super::event::{Event, Message};
use crate::ClientError;
use crate::subscriber::task::Frames;

/// A stream-mode subscriber's position.
#[derive(Debug)]
pub(crate) struct Resume {
    /// Where the first connection starts, until the server says where that is.
    start: StartPosition,
    /// The position of the next message wanted, once known.
    next: Option<u64>,
    /// Set while a new connection waits for its `subscribed` frame: why the previous one
    /// ended, for the [`Event::Reconnected`] it then yields.
    reconnecting: Option<ClientError>,
    /// Whether the current connection got its `subscribed` (or `following`) frame.
    joined: bool,
    /// Whether the subscription is a pattern (the server said `following`): live only, so
    /// a new connection starts from the latest messages, and seqs are each topic's own.
    pattern: bool,
}

impl Resume {
    /// A subscriber that has received nothing yet and starts at `start`.
    pub(crate) fn new(start: StartPosition) -> Self {
        Resume {
            start,
            next: None,
            reconnecting: None,
            joined: false,
            pattern: false,
        }
    }

    /// Where the next connection starts: right after the last message yielded (or where
    /// the server placed the first connection), else the start asked for; a pattern starts
    /// from the latest messages again.
    pub(crate) fn position(&self) -> StartPosition {
        if self.pattern {
            return StartPosition::Latest;
        }
        self.next.map_or(self.start, StartPosition::Seq)
    }

    /// A new connection replaces one that ended with `after`.
    pub(crate) fn reconnecting(&mut self, after: ClientError) {
        self.reconnecting = Some(after);
        self.joined = false;
    }

    /// Whether the connection that just ended had been joined by the server (and so worked).
    pub(crate) fn was_joined(&self) -> bool {
        self.joined
    }
}

impl Frames for Resume {
    type Item = Event;

    fn binary(&mut self, frame: Bytes) -> Result<Option<Event>, ClientError> {
        let envelope = Envelope::decode(&frame)
            .map_err(|bad| ClientError::Protocol(format!("binary frame: {bad}")))?;
        let seq = envelope.seq;
        if !self.pattern && self.next.is_some_and(|next| seq < next) {
            tracing::debug!(seq, next = ?self.next, "dropped a message delivered before");
            return Ok(None);
        }
        let header = frame.len() - envelope.payload.len();
        Ok(Some(Event::Message(Message {
            seq,
            time_micros: envelope.time,
            payload: frame.slice(header..),
            topic: (!envelope.topic.is_empty())
                .then(|| String::from_utf8_lossy(envelope.topic).into_owned()),
        })))
    }

    fn text(&mut self, text: &str) -> Option<Event> {
        match Control::from_json(text) {
            Ok(Control::Following { .. }) => {
                self.pattern = true;
                self.joined = true;
                let after = self.reconnecting.take()?;
                // Live only: delivery goes on from the newest messages.
                Some(Event::Reconnected { from: 0, after })
            }
            // One more topic of a pattern followed: its seqs are its own.
            Ok(Control::Subscribed { .. }) if self.pattern => None,
            Ok(Control::Subscribed { from, .. }) => {
                // The server's word on where delivery begins: after a gap, or after a restart
                // with a clock that went back, it is not where we asked.
                self.next = Some(from);
                self.joined = true;
                let after = self.reconnecting.take()?;
                Some(Event::Reconnected { from, after })
            }
            Ok(Control::Gap {
                from, to, reason, ..
            }) => Some(Event::Gap { from, to, reason }),
            Ok(Control::Ack { .. }) => None,
            Err(error) => {
                // Room to grow: control messages of later versions are ignored.
                tracing::debug!(%error, text, "ignored a control message");
                None
            }
        }
    }

    fn delivered(&mut self, event: &Event) {
        // Only a message the stream will yield moves the position: one that found the
        // receive buffer full comes again after the reconnect.
        if let Event::Message(message) = event
            && !self.pattern
        {
            self.next = Some(message.seq.saturating_add(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, payload: &[u8]) -> Bytes {
        let mut frame = Envelope::header(seq, 7, 0).to_vec();
        frame.extend_from_slice(payload);
        Bytes::from(frame)
    }

    fn subscribed(from: u64) -> String {
        Control::Subscribed {
            topic: "/t".into(),
            from,
            head: from,
            earliest: from,
        }
        .to_json()
    }

    /// The seq of the message `frame` yields, if any, delivered.
    fn take(resume: &mut Resume, frame: Bytes) -> Option<u64> {
        let event = resume.binary(frame).expect("valid")?;
        resume.delivered(&event);
        match event {
            Event::Message(message) => Some(message.seq),
            _ => None,
        }
    }

    #[test]
    fn resumes_after_the_last_message_and_never_yields_one_twice() {
        let mut resume = Resume::new(StartPosition::Latest);
        assert_eq!(resume.position(), StartPosition::Latest);
        assert!(
            resume.text(&subscribed(10)).is_none(),
            "first join: no event"
        );
        assert_eq!(resume.position(), StartPosition::Seq(10));
        let first = resume.binary(message(10, b"a")).expect("valid");
        assert_eq!(
            resume.position(),
            StartPosition::Seq(10),
            "not delivered yet"
        );
        if let Some(event) = &first {
            resume.delivered(event);
        }
        assert!(
            matches!(&first, Some(Event::Message(m)) if m.payload.as_ref() == b"a" && m.time_micros == 7),
            "{first:?}"
        );
        assert_eq!(take(&mut resume, message(11, b"b")), Some(11));
        assert_eq!(resume.position(), StartPosition::Seq(12));
        resume.reconnecting(ClientError::Closed);
        assert!(!resume.was_joined());
        let event = resume.text(&subscribed(12));
        assert!(
            matches!(event, Some(Event::Reconnected { from: 12, .. })),
            "{event:?}"
        );
        assert!(resume.was_joined());
        assert_eq!(take(&mut resume, message(11, b"b")), None, "a duplicate");
        assert_eq!(take(&mut resume, message(12, b"c")), Some(12));
    }

    #[test]
    fn a_gap_is_yielded_and_the_server_placed_position_is_taken() {
        let mut resume = Resume::new(StartPosition::Seq(5));
        assert_eq!(resume.position(), StartPosition::Seq(5));
        assert!(resume.text(&subscribed(9)).is_none());
        let gap = Control::Gap {
            topic: "/t".into(),
            from: 5,
            to: 9,
            reason: "history_evicted".into(),
        };
        let event = resume.text(&gap.to_json());
        assert!(
            matches!(&event, Some(Event::Gap { from: 5, to: 9, reason }) if reason == "history_evicted"),
            "{event:?}"
        );
        // A restarted topic whose clock went back places us below where we were.
        resume.reconnecting(ClientError::Closed);
        resume.text(&subscribed(3));
        assert_eq!(take(&mut resume, message(3, b"")), Some(3));
    }

    #[test]
    fn a_pattern_names_each_messages_topic_and_reconnects_live() {
        let mut resume = Resume::new(StartPosition::Latest);
        let following = Control::Following {
            pattern: "/chat/*".into(),
        };
        assert!(resume.text(&following.to_json()).is_none());
        assert!(resume.was_joined());
        assert!(resume.text(&subscribed(50)).is_none());
        let mut named = Envelope::header(50, 7, 7).to_vec();
        named.extend_from_slice(b"/chat/ahello");
        let event = resume.binary(Bytes::from(named)).expect("valid");
        assert!(
            matches!(&event, Some(Event::Message(m))
                if m.topic.as_deref() == Some("/chat/a") && m.payload.as_ref() == b"hello"),
            "{event:?}"
        );
        // Another topic's seqs are its own: lower ones are not duplicates.
        assert_eq!(take(&mut resume, message(3, b"b")), Some(3));
        assert_eq!(resume.position(), StartPosition::Latest, "live only");
        resume.reconnecting(ClientError::Closed);
        let event = resume.text(&following.to_json());
        assert!(
            matches!(event, Some(Event::Reconnected { .. })),
            "{event:?}"
        );
    }

    #[test]
    fn unknown_control_messages_are_ignored_and_bad_frames_refused() {
        let mut resume = Resume::new(StartPosition::Latest);
        assert!(resume.text(r#"{"type":"future","x":1}"#).is_none());
        assert!(resume.text("not json").is_none());
        assert!(matches!(
            resume.binary(Bytes::from_static(b"\x01short")),
            Err(ClientError::Protocol(_))
        ));
    }
}
