//! Server-to-client binary frames, encoded once per message and shared by every subscriber.
//!
//! The topic actor encodes each batch of messages into one [`Chunk`]: WebSocket frames back
//! to back in one buffer. Server frames are unmasked, so the same bytes are valid on every
//! subscriber's socket; a subscriber's writer hands whole chunks to the kernel, one
//! reference-counted buffer per batch instead of one frame (and one copy) per message.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Data, OpCode};

/// A run of complete binary frames, ready for any subscriber's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The encoded frames.
    pub frames: Bytes,
    /// How many messages (frames) they hold.
    pub messages: u32,
    /// When the oldest of them arrived from its publisher: the start of their
    /// publish-to-write latency.
    pub since: Instant,
    /// The same messages as stream-mode (`wspubsub.v2`) frames, when the topic has
    /// stream-mode subscribers: built once per chunk, shared by all of them.
    pub enveloped: Option<Bytes>,
    /// The same messages as stream-mode frames that also name their topic, when the topic
    /// has pattern subscribers: built once per chunk, shared by all of them.
    pub named: Option<Bytes>,
}

impl Chunk {
    /// The chunk's frames in `form`. A reader joins in a form before the chunks it reads are
    /// appended, and the writer builds that form for every chunk while it has such readers.
    pub fn frames_in(&self, form: Form) -> &Bytes {
        let built = match form {
            Form::Raw => return &self.frames,
            Form::Enveloped => self.enveloped.as_ref(),
            Form::Named => self.named.as_ref(),
        };
        debug_assert!(built.is_some(), "{form:?} built for its readers");
        built.unwrap_or(&self.frames)
    }
}

/// Which encoding of a chunk a reader takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Form {
    /// The messages as plain binary frames (protocol v1).
    #[default]
    Raw,
    /// The messages in stream-mode envelopes ([`Chunk::enveloped`]).
    Enveloped,
    /// The messages in stream-mode envelopes that name their topic ([`Chunk::named`]): what
    /// a pattern subscriber, which follows many topics, needs.
    Named,
}

/// Appends one unmasked, final frame of `opcode` whose payload is `parts` back to back.
pub(crate) fn put_frame(buffer: &mut BytesMut, opcode: OpCode, parts: &[&[u8]]) {
    let header = FrameHeader {
        opcode,
        ..FrameHeader::default()
    };
    let len: usize = parts.iter().map(|part| part.len()).sum();
    let length = len as u64;
    buffer.reserve(header.len(length) + len);
    let mut writer = buffer.writer();
    // Writing into memory cannot fail.
    let _infallible = header.format(length, &mut writer);
    for part in parts {
        buffer.extend_from_slice(part);
    }
}

/// One text frame holding `text`: a stream-mode control message.
pub fn text_frame(text: &str) -> Bytes {
    let mut buffer = BytesMut::new();
    put_frame(&mut buffer, OpCode::Data(Data::Text), &[text.as_bytes()]);
    buffer.freeze()
}

/// Encodes messages into chunks of about a target size.
#[derive(Debug)]
pub struct ChunkBuilder {
    buffer: BytesMut,
    messages: u32,
    /// When the first message of the chunk being built arrived.
    since: Option<Instant>,
    target: usize,
}

impl ChunkBuilder {
    /// A builder whose chunks close once they reach `target` bytes.
    pub fn new(target: usize) -> Self {
        ChunkBuilder {
            buffer: BytesMut::new(),
            messages: 0,
            since: None,
            target,
        }
    }

    /// Appends one message, which arrived at `arrived`, as a binary frame; returns a chunk
    /// when the target is reached.
    pub fn push(&mut self, payload: &[u8], arrived: Instant) -> Option<Chunk> {
        self.since.get_or_insert(arrived);
        put_frame(&mut self.buffer, OpCode::Data(Data::Binary), &[payload]);
        self.messages += 1;
        (self.buffer.len() >= self.target)
            .then(|| self.finish())
            .flatten()
    }

    /// Bytes of frames pushed since the last chunk: where the next message's frame will begin
    /// in the chunk being built.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The chunk of everything pushed since the last one, if anything was.
    pub fn finish(&mut self) -> Option<Chunk> {
        let since = self.since.take()?;
        let messages = std::mem::take(&mut self.messages);
        Some(Chunk {
            since,
            frames: self.buffer.split().freeze(),
            messages,
            enveloped: None,
            named: None,
        })
    }
}

/// Bytes waiting to be written to one socket, as a queue of shared buffers; a [`Buf`] whose
/// vectored view lets one `writev` carry many chunks.
#[derive(Debug, Default)]
pub struct FrameQueue {
    parts: VecDeque<Bytes>,
    remaining: usize,
}

impl From<Bytes> for FrameQueue {
    /// A queue of just `bytes`.
    fn from(bytes: Bytes) -> Self {
        let mut queue = FrameQueue::default();
        queue.push(bytes);
        queue
    }
}

impl FrameQueue {
    /// Queues `bytes` (whole frames) behind what is already queued.
    pub fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.remaining += bytes.len();
            self.parts.push_back(bytes);
        }
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// Takes the front buffer out whole (what is left of it): for a reader that turns shared
    /// buffers into something else and wants to know which buffer it holds.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        let front = self.parts.pop_front()?;
        self.remaining -= front.len();
        Some(front)
    }
}

impl Buf for FrameQueue {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.parts.front().map_or(&[], |part| part.as_ref())
    }

    fn advance(&mut self, mut count: usize) {
        assert!(
            count <= self.remaining,
            "advance past the end of the frame queue"
        );
        self.remaining -= count;
        while count > 0 {
            let Some(front) = self.parts.front_mut() else {
                return;
            };
            if count < front.len() {
                front.advance(count);
                return;
            }
            count -= front.len();
            self.parts.pop_front();
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (slot, part) in dst.iter_mut().zip(&self.parts) {
            *slot = IoSlice::new(part);
            filled += 1;
        }
        filled
    }
}

#[cfg(test)]
mod tests {
    use tungstenite::protocol::frame::Frame;

    use super::*;

    /// Decodes frames with tungstenite's own parser, the reference for what clients accept.
    fn decode(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut messages = Vec::new();
        while !bytes.is_empty() {
            let mut cursor = std::io::Cursor::new(bytes);
            let (header, length) = FrameHeader::parse(&mut cursor)
                .expect("valid")
                .expect("complete");
            assert!(header.is_final && header.mask.is_none());
            assert_eq!(header.opcode, OpCode::Data(Data::Binary));
            let start = cursor.position() as usize;
            let end = start + length as usize;
            messages.push(bytes[start..end].to_vec());
            bytes = &bytes[end..];
        }
        messages
    }

    #[test]
    fn frames_decode_to_the_messages_for_every_length_class() {
        let payloads: Vec<Vec<u8>> = [0usize, 1, 125, 126, 127, 65_535, 65_536, 70_000]
            .iter()
            .map(|&n| vec![n as u8; n])
            .collect();
        let mut builder = ChunkBuilder::new(usize::MAX);
        for payload in &payloads {
            assert!(builder.push(payload, Instant::now()).is_none());
        }
        let chunk = builder.finish().expect("a chunk");
        assert_eq!(chunk.messages as usize, payloads.len());
        assert_eq!(decode(&chunk.frames), payloads);
        assert!(builder.finish().is_none(), "nothing left after finish");
    }

    #[test]
    fn frames_match_tungstenites_own_encoding() {
        let mut builder = ChunkBuilder::new(usize::MAX);
        builder.push(b"hello", Instant::now());
        let chunk = builder.finish().expect("a chunk");
        let mut expected = Vec::new();
        Frame::message(
            Bytes::from_static(b"hello"),
            OpCode::Data(Data::Binary),
            true,
        )
        .format(&mut expected)
        .expect("format");
        assert_eq!(chunk.frames.as_ref(), expected.as_slice());
    }

    #[test]
    fn text_frames_match_tungstenites_own_encoding() {
        let mut expected = Vec::new();
        Frame::message(Bytes::from_static(b"{}"), OpCode::Data(Data::Text), true)
            .format(&mut expected)
            .expect("format");
        assert_eq!(text_frame("{}").as_ref(), expected.as_slice());
    }

    #[test]
    fn chunks_close_at_the_target_size() {
        let mut builder = ChunkBuilder::new(100);
        assert!(builder.push(&[1; 40], Instant::now()).is_none());
        let chunk = builder
            .push(&[2; 70], Instant::now())
            .expect("target reached");
        assert_eq!(chunk.messages, 2);
        assert_eq!(decode(&chunk.frames), vec![vec![1; 40], vec![2; 70]]);
    }

    #[test]
    fn frame_queue_advances_across_parts() {
        let mut queue = FrameQueue::default();
        queue.push(Bytes::from_static(b"abc"));
        queue.push(Bytes::new());
        queue.push(Bytes::from_static(b"defg"));
        assert_eq!(queue.remaining(), 7);
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(queue.chunks_vectored(&mut slices), 2);
        queue.advance(4);
        assert_eq!(queue.chunk(), b"efg");
        let rest = queue.copy_to_bytes(3);
        assert_eq!(rest.as_ref(), b"efg");
        assert!(queue.is_empty());
    }

    #[test]
    fn frame_queue_pops_whole_buffers_by_reference() {
        let shared = Bytes::from_static(b"abc");
        let mut queue = FrameQueue::default();
        queue.push(shared.clone());
        queue.push(Bytes::from_static(b"de"));
        queue.advance(1);
        assert_eq!(queue.pop_front().as_deref(), Some(&b"bc"[..]));
        let whole = queue.pop_front().expect("the second buffer");
        assert_eq!(whole.as_ref(), b"de");
        assert_eq!(queue.remaining(), 0);
        assert_eq!(queue.pop_front(), None);
    }
}
