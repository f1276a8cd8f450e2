//! A topic's history: the most recent messages, kept after delivery so that a subscriber can
//! start from a position in the past and resume after a drop.
//!
//! History stores the very [`Chunk`]s delivery shares (one copy of each message, whatever the
//! number of subscribers or replays), each as a [`Record`] that knows the sequence number of
//! its first message and, per message, where its frame begins and when the server took it.
//! So a replay can start in the middle of a chunk, by sequence number or by time, and a
//! message can be evicted on its own: the bounds (messages, bytes, age) hold per message, and
//! a chunk's memory is freed once its last message is evicted.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use wspubsub_protocol::Envelope;

use crate::frames::{Chunk, ChunkBuilder, Form, put_frame};

#[cfg(test)]
mod model;

/// Where one message's frame begins in its chunk, and when the server took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Offset of the message's frame in [`Chunk::frames`].
    pub offset: usize,
    /// When the server took the message, in unix microseconds.
    pub time: u64,
}

/// A chunk with the positions of its messages: what history stores and replays from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The encoded frames, shared with delivery.
    pub chunk: Chunk,
    /// Sequence number of the chunk's first message; the others follow consecutively.
    pub first_seq: u64,
    /// One mark per message, in order.
    pub marks: Vec<Mark>,
}

impl Record {
    /// The sequence number after the chunk's last message.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + self.marks.len() as u64
    }

    /// The stream-mode frames of messages `from..` (indices in the record): each message's
    /// payload behind its envelope header (seq, time, and `topic`, empty unless the reader
    /// follows a pattern).
    pub fn envelope(&self, from: usize, topic: &[u8]) -> Bytes {
        // A topic is a URL path, far below 64 KiB (hyper refuses longer request lines).
        let topic_len = u16::try_from(topic.len()).unwrap_or(u16::MAX);
        let topic = &topic[..usize::from(topic_len)];
        let mut buffer = BytesMut::new();
        for (index, mark) in self.marks.iter().enumerate().skip(from) {
            let frame = &self.chunk.frames[mark.offset..mark.offset + self.frame_len(index)];
            let seq = self.first_seq + index as u64;
            let header = Envelope::header(seq, mark.time, topic_len);
            put_frame(
                &mut buffer,
                OpCode::Data(Data::Binary),
                &[&header, topic, payload_of(frame)],
            );
        }
        buffer.freeze()
    }

    /// Builds [`Chunk::enveloped`] if it is not built yet.
    pub fn envelop(&mut self) {
        if self.chunk.enveloped.is_none() {
            self.chunk.enveloped = Some(self.envelope(0, &[]));
        }
    }

    /// Builds [`Chunk::named`], the envelopes naming `topic`, if it is not built yet.
    pub fn name(&mut self, topic: &str) {
        if self.chunk.named.is_none() {
            self.chunk.named = Some(self.envelope(0, topic.as_bytes()));
        }
    }

    /// The frames of messages `from..` (indices in the record) of topic `topic` in `form`.
    fn frames_from(&self, from: usize, form: Form, topic: &str) -> Bytes {
        match form {
            Form::Raw => self.chunk.frames.slice(self.marks[from].offset..),
            Form::Enveloped => self.envelope(from, &[]),
            Form::Named => self.envelope(from, topic.as_bytes()),
        }
    }

    /// Length in bytes of the frame of message `index`.
    fn frame_len(&self, index: usize) -> usize {
        let end = self
            .marks
            .get(index + 1)
            .map_or(self.chunk.frames.len(), |next| next.offset);
        end - self.marks[index].offset
    }
}

/// The payload of one of our own binary frames (unmasked, final, header from
/// [`put_frame`]).
fn payload_of(frame: &[u8]) -> &[u8] {
    let mut cursor = std::io::Cursor::new(frame);
    match FrameHeader::parse(&mut cursor) {
        Ok(Some(_)) => &frame[usize::try_from(cursor.position()).unwrap_or(frame.len())..],
        // Frames in a record are our own encoding, always complete and valid.
        _ => &[],
    }
}

/// A [`ChunkBuilder`] that also records each message's sequence number, frame offset and time.
#[derive(Debug)]
pub struct RecordBuilder {
    builder: ChunkBuilder,
    first_seq: Option<u64>,
    marks: Vec<Mark>,
}

impl RecordBuilder {
    /// A builder whose chunks close once they reach `target` bytes.
    pub fn new(target: usize) -> Self {
        RecordBuilder {
            builder: ChunkBuilder::new(target),
            first_seq: None,
            marks: Vec::new(),
        }
    }

    /// Appends message `seq` (the one after the previous message pushed), which arrived at
    /// `arrived` and was taken at `time` (unix µs); returns a record when the target is reached.
    pub fn push(
        &mut self,
        payload: &[u8],
        arrived: Instant,
        seq: u64,
        time: u64,
    ) -> Option<Record> {
        self.first_seq.get_or_insert(seq);
        self.marks.push(Mark {
            offset: self.builder.buffered(),
            time,
        });
        let chunk = self.builder.push(payload, arrived)?;
        self.record(chunk)
    }

    /// The record of everything pushed since the last one, if anything was.
    pub fn finish(&mut self) -> Option<Record> {
        let chunk = self.builder.finish()?;
        self.record(chunk)
    }

    fn record(&mut self, chunk: Chunk) -> Option<Record> {
        Some(Record {
            chunk,
            first_seq: self.first_seq.take()?,
            marks: std::mem::take(&mut self.marks),
        })
    }
}

/// How much history a topic keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Most messages kept; 0 turns history off.
    pub messages: usize,
    /// Most frame bytes kept.
    pub bytes: usize,
    /// Messages older than this many microseconds are evicted.
    pub age_micros: u64,
}

/// Why messages left history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Evictions {
    /// Evicted by the message bound.
    pub messages: u64,
    /// Evicted by the byte bound.
    pub bytes: u64,
    /// Evicted for their age.
    pub age: u64,
}

/// Why a start position cannot be served without skipping messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapReason {
    /// History is off: nothing before the head is kept.
    HistoryOff,
    /// The messages were in history and have been evicted.
    HistoryEvicted,
    /// The position is from before this topic was (re)created.
    TopicRestarted,
    /// The position is beyond the next message's sequence number.
    Ahead,
}

impl GapReason {
    /// The reason as metrics, gap notices and refusals name it.
    pub const fn as_str(self) -> &'static str {
        match self {
            GapReason::HistoryOff => "history_off",
            GapReason::HistoryEvicted => "history_evicted",
            GapReason::TopicRestarted => "topic_restarted",
            GapReason::Ahead => "position_ahead",
        }
    }
}

/// A start position history does not cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Why.
    pub reason: GapReason,
    /// Where delivery begins if the gap is accepted: the earliest position history has (the
    /// head, for [`GapReason::Ahead`]).
    pub resume: u64,
}

/// Where a subscriber asked to begin, as history resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// The message with this sequence number.
    Seq(u64),
    /// The first message taken at or after this time (unix µs).
    Since(u64),
}

/// A topic's bounded history.
#[derive(Debug)]
pub struct History {
    records: VecDeque<Record>,
    /// Messages of `records[0]` already evicted.
    skip: usize,
    messages: usize,
    bytes: usize,
    limits: HistoryLimits,
    /// The first sequence number of this topic incarnation.
    start: u64,
    /// The sequence number the next message will get.
    head: u64,
    /// The newest position evicted (or never kept), if any: a start at or below it missed
    /// something. Positions need not be consecutive (cluster mode), so the oldest one held
    /// alone cannot tell.
    dropped_seq: Option<u64>,
    /// Time of the newest message evicted (or never kept), if any.
    dropped_time: Option<u64>,
}

impl History {
    /// An empty history for a topic incarnation whose first message gets `start`.
    pub fn new(limits: HistoryLimits, start: u64) -> Self {
        History {
            records: VecDeque::new(),
            skip: 0,
            messages: 0,
            bytes: 0,
            limits,
            start,
            head: start,
            dropped_seq: None,
            dropped_time: None,
        }
    }

    /// The sequence number the next message will get.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The first sequence number of this topic incarnation.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The oldest sequence number held (the head when history is empty).
    pub fn earliest(&self) -> u64 {
        self.records
            .front()
            .map_or(self.head, |front| front.first_seq + self.skip as u64)
    }

    /// Messages held.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// Frame bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the oldest message held was taken (unix µs).
    pub fn oldest_time(&self) -> Option<u64> {
        self.records
            .front()
            .map(|front| front.marks[self.skip].time)
    }

    /// When the newest message held was taken (unix µs).
    pub fn newest_time(&self) -> Option<u64> {
        self.records
            .back()
            .and_then(|back| back.marks.last())
            .map(|mark| mark.time)
    }

    /// Notes that messages below position `seq`, taken up to `time` (unix µs), may have
    /// existed and are not held: a start among them is a gap (`history_evicted`), unless
    /// history holds it. Cluster mode: what the stream evicted before this node loaded the
    /// topic.
    pub fn forget_before(&mut self, seq: u64, time: u64) {
        if let Some(below) = seq.checked_sub(1) {
            self.note_dropped(below, time);
        }
    }

    /// Moves the head to `seq` if it is below: the topic has no message before `seq` that
    /// it has not taken. Cluster mode: the stream's position when this node loaded the topic.
    pub fn advance_head(&mut self, seq: u64) {
        self.head = self.head.max(seq);
    }

    /// Cluster mode: this history now holds what the stream held of its topic. The stream
    /// had evicted every position below `evicted_below` (taken up to `evicted_until`) and
    /// held nothing of the topic below `next` that this history has not taken. A history as
    /// full as its message bound may have lost older messages of its topic to the stream's
    /// per-topic bound (the same number), so a start before its oldest is a gap then.
    pub fn loaded(&mut self, evicted_below: u64, evicted_until: u64, next: u64) {
        self.forget_before(evicted_below, evicted_until);
        let full = self.limits.messages > 0 && self.messages >= self.limits.messages;
        let oldest_time = self
            .records
            .front()
            .map(|front| front.marks[self.skip].time);
        if let (true, Some(time)) = (full, oldest_time) {
            self.forget_before(self.earliest(), time.saturating_sub(1));
        }
        self.advance_head(next);
    }

    fn note_dropped(&mut self, seq: u64, time: u64) {
        self.dropped_seq = Some(self.dropped_seq.map_or(seq, |dropped| dropped.max(seq)));
        self.dropped_time = Some(self.dropped_time.map_or(time, |dropped| dropped.max(time)));
    }

    /// Appends a record (its first message at or after the head: positions a topic never
    /// had are skipped), evicting the oldest messages
    /// past the message and byte bounds; says how many left, and why. Only the raw frames
    /// are kept (the bounds count them): a stream-mode replay envelops what it replays.
    pub fn push(&mut self, mut record: Record) -> Evictions {
        debug_assert!(record.first_seq >= self.head, "records go forward");
        record.chunk.enveloped = None;
        record.chunk.named = None;
        self.head = record.end_seq();
        if self.limits.messages == 0 {
            if let Some(last) = record.marks.last() {
                self.note_dropped(record.end_seq() - 1, last.time);
            }
            return Evictions::default();
        }
        self.messages += record.marks.len();
        self.bytes += record.chunk.frames.len();
        self.records.push_back(record);
        let mut evictions = Evictions::default();
        while self.messages > self.limits.messages {
            self.evict_oldest();
            evictions.messages += 1;
        }
        while self.bytes > self.limits.bytes {
            self.evict_oldest();
            evictions.bytes += 1;
        }
        evictions
    }

    /// Evicts the messages taken more than the age bound before `now` (unix µs); returns how
    /// many.
    pub fn expire(&mut self, now: u64) -> u64 {
        let cutoff = now.saturating_sub(self.limits.age_micros);
        let mut expired = 0;
        while self.oldest_time().is_some_and(|time| time < cutoff) {
            self.evict_oldest();
            expired += 1;
        }
        expired
    }

    /// Evicts the oldest message, if any; returns its frame's bytes.
    pub fn evict_oldest(&mut self) -> usize {
        let Some(front) = self.records.front() else {
            return 0;
        };
        let len = front.frame_len(self.skip);
        let (seq, time) = (
            front.first_seq + self.skip as u64,
            front.marks[self.skip].time,
        );
        let last_of_record = self.skip + 1 == front.marks.len();
        self.note_dropped(seq, time);
        self.messages -= 1;
        self.bytes -= len;
        self.skip += 1;
        if last_of_record {
            self.records.pop_front();
            self.skip = 0;
        }
        len
    }

    /// The sequence number delivery of `wanted` begins with, or the gap in the way.
    pub fn locate(&self, wanted: Wanted) -> Result<u64, Gap> {
        let earliest = self.earliest();
        let gap = |reason| {
            Err(Gap {
                reason,
                resume: earliest,
            })
        };
        let off_or_evicted = || {
            if self.limits.messages == 0 {
                GapReason::HistoryOff
            } else {
                GapReason::HistoryEvicted
            }
        };
        match wanted {
            Wanted::Seq(seq) if seq > self.head => Err(Gap {
                reason: GapReason::Ahead,
                resume: self.head,
            }),
            Wanted::Seq(seq) if seq >= earliest => Ok(seq),
            Wanted::Seq(seq) if seq < self.start => gap(GapReason::TopicRestarted),
            Wanted::Seq(seq) if self.dropped_seq.is_some_and(|dropped| seq <= dropped) => {
                gap(off_or_evicted())
            }
            // Nothing was ever between `seq` and the oldest message held.
            Wanted::Seq(seq) => Ok(seq),
            Wanted::Since(time) if self.dropped_time.is_some_and(|dropped| dropped >= time) => {
                gap(off_or_evicted())
            }
            Wanted::Since(time) => Ok(self.first_taken_at_or_after(time)),
        }
    }

    /// The sequence number of the first message held taken at or after `time` (the head if
    /// none).
    fn first_taken_at_or_after(&self, time: u64) -> u64 {
        // Times never decrease along history, so both searches are binary.
        let record = self
            .records
            .partition_point(|record| record.marks.last().is_some_and(|mark| mark.time < time));
        self.records.get(record).map_or(self.head, |found| {
            let index = found.marks.partition_point(|mark| mark.time < time);
            (found.first_seq + index as u64).max(self.earliest())
        })
    }

    /// Queues the frames (in `form`, naming `topic` if [`Form::Named`]) of every message from
    /// `from` on into `out`, each part with the number of messages it holds; returns how many
    /// messages in all. Raw frames are queued by reference; a stream-mode replay envelops the
    /// messages it replays (one buffer per record), so that history holds each message once.
    pub fn replay(&self, from: u64, form: Form, topic: &str, out: &mut Vec<(Bytes, u64)>) -> u64 {
        let from = from.max(self.earliest());
        let first = self
            .records
            .partition_point(|record| record.end_seq() <= from);
        let mut messages = 0;
        for record in self.records.range(first..) {
            let index = usize::try_from(from.saturating_sub(record.first_seq)).unwrap_or(0);
            let count = (record.marks.len() - index) as u64;
            out.push((record.frames_from(index, form, topic), count));
            messages += count;
        }
        messages
    }
}

#[cfg(test)]
mod tests {
    use bytes::Buf;

    use super::*;
    use crate::FrameQueue;

    const LIMITS: HistoryLimits = HistoryLimits {
        messages: 100,
        bytes: 1 << 20,
        age_micros: 1_000,
    };

    /// An empty history within `limits`, starting at seq 0.
    fn limited(limits: HistoryLimits) -> History {
        History::new(limits, 0)
    }

    /// Builds one record of messages `first..first + count`, each one byte long (a 3-byte
    /// frame) holding its seq's low byte, taken at `time` (unix µs) = seq * 10.
    fn record(first: u64, count: u64) -> Record {
        let mut builder = RecordBuilder::new(usize::MAX);
        for seq in first..first + count {
            let _ = builder.push(&[seq as u8], Instant::now(), seq, seq * 10);
        }
        builder.finish().expect("a record")
    }

    /// The payloads (seq low bytes) replayed from `from`.
    fn replayed(history: &History, from: u64) -> Vec<u8> {
        let mut parts = Vec::new();
        let count = history.replay(from, Form::Raw, "/t", &mut parts);
        let mut queue = FrameQueue::default();
        parts.into_iter().for_each(|(part, _)| queue.push(part));
        let bytes = queue.copy_to_bytes(queue.remaining());
        let payloads: Vec<u8> = bytes.chunks(3).map(|frame| frame[2]).collect();
        assert_eq!(payloads.len() as u64, count);
        payloads
    }

    #[test]
    fn records_mark_every_message() {
        let record = record(7, 3);
        assert_eq!(record.first_seq, 7);
        assert_eq!(record.end_seq(), 10);
        let offsets: Vec<usize> = record.marks.iter().map(|mark| mark.offset).collect();
        assert_eq!(offsets, [0, 3, 6]);
        assert_eq!(record.frame_len(2), 3);
    }

    #[test]
    fn enveloped_replay_carries_seq_time_and_payload_from_mid_chunk() {
        let mut history = History::new(LIMITS, 10);
        let mut first = record(10, 3);
        first.envelop();
        history.push(first);
        assert!(
            history.records[0].chunk.enveloped.is_none(),
            "history keeps raw frames only"
        );
        history.push(record(13, 2));
        let mut parts = Vec::new();
        assert_eq!(history.replay(11, Form::Enveloped, "/t", &mut parts), 4);
        let mut bytes: Vec<u8> = parts.iter().flat_map(|(part, _)| part.to_vec()).collect();
        let mut seen = Vec::new();
        while !bytes.is_empty() {
            // Frames of 1 + 19 bytes: a 2-byte header, then the envelope.
            let frame: Vec<u8> = bytes.drain(..22).collect();
            assert_eq!(frame[..2], [0x82, 20]);
            let envelope = Envelope::decode(&frame[2..]).expect("an envelope");
            assert_eq!(envelope.time, envelope.seq * 10);
            assert_eq!(envelope.payload, [envelope.seq as u8]);
            seen.push(envelope.seq);
        }
        assert_eq!(seen, [11, 12, 13, 14]);
    }

    #[test]
    fn named_envelopes_carry_the_topic_before_the_payload() {
        let mut record = record(7, 2);
        record.name("/chat/a");
        let named = record.chunk.named.clone().expect("named");
        assert_eq!(record.chunk.frames_in(Form::Named), &named);
        let mut parts = Vec::new();
        let mut history = History::new(LIMITS, 7);
        history.push(record);
        assert!(
            history.records[0].chunk.named.is_none(),
            "history keeps raw frames only"
        );
        history.replay(8, Form::Named, "/chat/a", &mut parts);
        for (bytes, first) in [(named.to_vec(), 7), (parts[0].0.to_vec(), 8)] {
            // Frames of 19 + 7 + 1 bytes behind a 2-byte header.
            let frames: Vec<&[u8]> = bytes.chunks(29).collect();
            assert_eq!(frames.len() as u64, 9 - first);
            for (index, frame) in frames.into_iter().enumerate() {
                let envelope = Envelope::decode(&frame[2..]).expect("an envelope");
                assert_eq!(envelope.seq, first + index as u64);
                assert_eq!(envelope.topic, b"/chat/a");
                assert_eq!(envelope.payload, [envelope.seq as u8]);
            }
        }
    }

    #[test]
    fn a_history_loaded_mid_stream_replays_across_positions_it_never_had() {
        let mut history = History::new(LIMITS, 10);
        history.forget_before(18, 150);
        history.push(record(20, 2));
        // Positions 22..30 went to other topics.
        history.push(record(30, 1));
        assert_eq!(history.head(), 31);
        assert_eq!(replayed(&history, 21), [21, 30]);
        assert_eq!(
            replayed(&history, 25),
            [30],
            "a position in a hole starts after it"
        );
        assert_eq!(
            history.locate(Wanted::Seq(17)).map_err(|gap| gap.reason),
            Err(GapReason::HistoryEvicted),
            "forgotten before the node loaded the topic"
        );
        assert_eq!(history.locate(Wanted::Seq(18)), Ok(18), "nothing was there");
        assert_eq!(
            history.locate(Wanted::Seq(5)).map_err(|gap| gap.reason),
            Err(GapReason::TopicRestarted),
            "before the incarnation"
        );
        assert_eq!(
            history.locate(Wanted::Since(150)).map_err(|gap| gap.reason),
            Err(GapReason::HistoryEvicted),
            "a time the forgotten messages may have had is not covered"
        );
        assert_eq!(history.locate(Wanted::Since(151)), Ok(20));
        history.advance_head(40);
        assert_eq!(
            history.head(),
            40,
            "the stream was there when loading ended"
        );
        history.advance_head(35);
        assert_eq!(history.head(), 40, "never back");
        history.push(record(41, 1));
        assert_eq!(replayed(&history, 31), [41]);
    }

    #[test]
    fn a_loaded_history_as_full_as_its_bound_may_have_lost_older_messages() {
        let limits = HistoryLimits {
            messages: 2,
            ..LIMITS
        };
        let mut full = History::new(limits, 10);
        full.push(record(20, 1));
        full.push(record(30, 1));
        full.loaded(15, 140, 40);
        assert_eq!(
            full.locate(Wanted::Seq(19)).map_err(|gap| gap.reason),
            Err(GapReason::HistoryEvicted),
            "the stream's per-topic bound may have taken what was before 20"
        );
        assert_eq!(
            full.locate(Wanted::Since(199)).map_err(|gap| gap.reason),
            Err(GapReason::HistoryEvicted)
        );
        assert_eq!(full.locate(Wanted::Since(200)), Ok(20));
        assert_eq!(full.head(), 40);

        let mut room = History::new(limits, 10);
        room.push(record(20, 1));
        room.loaded(15, 140, 40);
        assert_eq!(
            room.locate(Wanted::Seq(15)),
            Ok(15),
            "nothing of it was evicted"
        );
        assert_eq!(
            room.locate(Wanted::Seq(14)).map_err(|gap| gap.reason),
            Err(GapReason::HistoryEvicted),
            "the stream evicted below 15"
        );
    }

    #[test]
    fn an_eviction_in_a_history_with_holes_is_a_gap_only_up_to_what_left() {
        let mut history = limited(HistoryLimits {
            messages: 2,
            ..LIMITS
        });
        history.push(record(10, 1));
        history.push(record(20, 1));
        history.push(record(30, 1));
        assert_eq!(history.earliest(), 20);
        assert_eq!(
            history.locate(Wanted::Seq(10)).map_err(|gap| gap.reason),
            Err(GapReason::HistoryEvicted)
        );
        assert_eq!(history.locate(Wanted::Seq(11)), Ok(11), "after what left");
        assert_eq!(replayed(&history, 11), [20, 30]);
    }

    #[test]
    fn replay_starts_mid_chunk_and_runs_to_the_head() {
        let mut history = History::new(LIMITS, 10);
        history.push(record(10, 3));
        history.push(record(13, 2));
        assert_eq!((history.earliest(), history.head()), (10, 15));
        assert_eq!(replayed(&history, 11), [11, 12, 13, 14]);
        assert_eq!(replayed(&history, 13), [13, 14]);
        assert_eq!(replayed(&history, 15), Vec::<u8>::new());
        assert_eq!(history.locate(Wanted::Seq(12)), Ok(12));
    }

    #[test]
    fn message_bound_evicts_single_messages_oldest_first() {
        let mut history = limited(HistoryLimits {
            messages: 4,
            ..LIMITS
        });
        history.push(record(0, 3));
        let evicted = history.push(record(3, 3));
        assert_eq!(evicted.messages, 2);
        assert_eq!((history.messages(), history.bytes()), (4, 12));
        assert_eq!(replayed(&history, 0), [2, 3, 4, 5]);
        assert_eq!(
            history.locate(Wanted::Seq(1)),
            Err(Gap {
                reason: GapReason::HistoryEvicted,
                resume: 2
            })
        );
    }

    #[test]
    fn byte_bound_and_age_evict() {
        let mut history = limited(HistoryLimits {
            bytes: 10,
            ..LIMITS
        });
        let evicted = history.push(record(0, 4));
        assert_eq!(
            evicted,
            Evictions {
                bytes: 1,
                ..Evictions::default()
            }
        );
        assert_eq!(history.bytes(), 9);
        // Times are seq * 10: at 1_025 the age bound of 1_000 µs drops the messages taken
        // before 25, seqs 1 and 2.
        assert_eq!(history.expire(1_025), 2);
        assert_eq!(history.earliest(), 3);
        assert_eq!(history.expire(1_025), 0);
        assert_eq!(history.evict_oldest(), 3);
        assert_eq!((history.messages(), history.earliest()), (0, 4));
        assert_eq!(history.evict_oldest(), 0, "nothing left");
    }

    #[test]
    fn positions_before_the_incarnation_or_ahead_are_gaps() {
        let mut history = History::new(LIMITS, 100);
        history.push(record(100, 2));
        assert_eq!(
            history.locate(Wanted::Seq(99)).map_err(|gap| gap.reason),
            Err(GapReason::TopicRestarted)
        );
        assert_eq!(history.locate(Wanted::Seq(102)), Ok(102), "the head itself");
        assert_eq!(
            history.locate(Wanted::Seq(103)),
            Err(Gap {
                reason: GapReason::Ahead,
                resume: 102
            })
        );
    }

    #[test]
    fn history_off_keeps_nothing_and_every_past_position_is_a_gap() {
        let mut history = limited(HistoryLimits {
            messages: 0,
            ..LIMITS
        });
        assert_eq!(history.push(record(0, 3)), Evictions::default());
        assert_eq!(
            (history.messages(), history.earliest(), history.head()),
            (0, 3, 3)
        );
        assert_eq!(
            history.locate(Wanted::Seq(1)).map_err(|gap| gap.reason),
            Err(GapReason::HistoryOff)
        );
        assert_eq!(
            history.locate(Wanted::Since(5)).map_err(|gap| gap.reason),
            Err(GapReason::HistoryOff),
            "messages taken after 5 were not kept"
        );
        assert_eq!(history.locate(Wanted::Since(21)), Ok(3), "nothing after 21");
    }

    #[test]
    fn since_finds_the_first_message_at_or_after_a_time() {
        let mut history = limited(HistoryLimits {
            messages: 5,
            ..LIMITS
        });
        history.push(record(0, 4));
        history.push(record(4, 4));
        // Seqs 0..=2 (times 0..=20) were evicted.
        assert_eq!(history.locate(Wanted::Since(21)), Ok(3));
        assert_eq!(history.locate(Wanted::Since(45)), Ok(5));
        assert_eq!(history.locate(Wanted::Since(70)), Ok(7));
        assert_eq!(history.locate(Wanted::Since(71)), Ok(8), "the head");
        assert_eq!(
            history.locate(Wanted::Since(20)).map_err(|gap| gap.reason),
            Err(GapReason::HistoryEvicted)
        );
    }
}
