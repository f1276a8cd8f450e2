//! The sockets of connection tasks, behind one [`Peer`] interface for the closing handshake.
//!
//! A publisher's socket is a plain tungstenite [`WebSocketStream`]: it mostly reads.
//! A subscriber's socket ([`SubscriberSocket`]) writes the topic's pre-encoded chunks
//! straight to the connection, vectored, with no per-subscriber copy or framing; tungstenite
//! still reads the subscriber's frames and writes the control frames (pongs, pings, close),
//! but into an outbox that the task sends between chunks. One writer per socket: a control
//! frame never lands in the middle of a data frame.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};

use wspubsub_fanout::FrameQueue;

use super::write::{self, WriteFailure};

/// What closing a connection needs from its socket.
pub(crate) trait Peer {
    /// Sends our close frame (after anything already queued).
    async fn send_close(&mut self, frame: CloseFrame) -> Result<(), tungstenite::Error>;
    /// Sends the echo of the peer's close frame that tungstenite queued when it read it.
    async fn send_close_echo(&mut self);
    /// Reads the next frame from the peer.
    async fn next_frame(&mut self) -> Option<Result<Message, tungstenite::Error>>;
}

impl<S> Peer for WebSocketStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    async fn send_close(&mut self, frame: CloseFrame) -> Result<(), tungstenite::Error> {
        self.close(Some(frame)).await
    }

    async fn send_close_echo(&mut self) {
        // After the echo tungstenite reports the connection closed: that is the expected end.
        let _closed = SinkExt::flush(self).await;
    }

    async fn next_frame(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        self.next().await
    }
}

/// A subscriber's socket: data from shared chunks, control frames from tungstenite.
pub(crate) struct SubscriberSocket<S> {
    /// Reads the subscriber's frames; writes control frames into its outbox. The connection
    /// itself is inside, not split in halves: this struct writes to it directly (one task,
    /// one writer), which costs no shared allocation and no lock per read or write.
    ws: WebSocketStream<ControlSide<S>>,
    /// Whole frames waiting for the socket (the front one possibly partly written).
    pending: FrameQueue,
}

impl<S> SubscriberSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Wraps an upgraded connection.
    pub(crate) async fn new(io: S, config: WebSocketConfig) -> Self {
        let control = ControlSide {
            io,
            outbox: BytesMut::new(),
        };
        let ws = WebSocketStream::from_raw_socket(control, Role::Server, Some(config)).await;
        SubscriberSocket {
            ws,
            pending: FrameQueue::default(),
        }
    }

    /// The queue of frames to write; [`Self::flush`] writes it.
    pub(crate) fn pending(&mut self) -> &mut FrameQueue {
        &mut self.pending
    }

    /// Bytes of data frames waiting to be written.
    pub(crate) fn pending_bytes(&self) -> usize {
        bytes::Buf::remaining(&self.pending)
    }

    /// Whether data or control frames wait to be written.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.ws.get_ref().outbox.is_empty()
    }

    /// Writes every pending frame, control frames last. Cancel-safe: what was written stays
    /// written, and the rest stays queued, so a later call resumes at the same byte.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        self.queue_outbox();
        let writer = &mut self.ws.get_mut().io;
        writer.write_all_buf(&mut self.pending).await?;
        release_if_empty(&mut self.pending);
        writer.flush().await
    }

    /// Writes every pending frame like [`Self::flush`], failing only when the socket takes
    /// no bytes for `stall`: a slow reader that keeps reading is never cut, however long the
    /// whole write takes. Says whether the socket was full and then took bytes again, which
    /// proves the peer reads (as a pong would: a ping queued behind the data cannot overtake
    /// it).
    pub(super) async fn flush_progressing(
        &mut self,
        stall: Duration,
    ) -> Result<bool, WriteFailure> {
        self.queue_outbox();
        let writer = &mut self.ws.get_mut().io;
        let mut peer_read = false;
        while self.pending.has_remaining() {
            // One step is one write of at least a byte; write_buf is cancel-safe, so a step
            // that timed out wrote nothing.
            let step = writer.write_buf(&mut self.pending);
            tokio::pin!(step);
            let written = match step.as_mut().now_or_never() {
                Some(result) => result.map_err(|error| WriteFailure::Failed(error.to_string()))?,
                None => {
                    let written = write::timed(stall, step).await?;
                    peer_read = true;
                    written
                }
            };
            if written == 0 {
                return Err(WriteFailure::Failed("the socket takes no more".into()));
            }
        }
        release_if_empty(&mut self.pending);
        write::timed(stall, writer.flush()).await?;
        Ok(peer_read)
    }

    /// Moves the control frames tungstenite wrote behind the data frames already queued,
    /// with their buffer: an idle subscriber keeps none between pings.
    fn queue_outbox(&mut self) {
        let outbox = &mut self.ws.get_mut().outbox;
        if !outbox.is_empty() {
            self.pending.push(std::mem::take(outbox).freeze());
        }
    }

    /// Queues a ping.
    pub(crate) async fn queue_ping(&mut self) -> Result<(), tungstenite::Error> {
        self.ws.send(Message::Ping(Bytes::new())).await
    }

    /// Queues the pongs tungstenite owes for pings it has read.
    pub(crate) async fn queue_pongs(&mut self) -> Result<(), tungstenite::Error> {
        SinkExt::flush(&mut self.ws).await
    }

    /// Reads the next frame from the subscriber.
    pub(crate) async fn next(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        self.ws.next().await
    }
}

impl<S> Peer for SubscriberSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    async fn send_close(&mut self, frame: CloseFrame) -> Result<(), tungstenite::Error> {
        self.ws.close(Some(frame)).await?;
        Ok(self.flush().await?)
    }

    async fn send_close_echo(&mut self) {
        let _closed = SinkExt::flush(&mut self.ws).await;
        let _gone = self.flush().await;
    }

    async fn next_frame(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        self.next().await
    }
}

/// Lets go of an emptied queue's buffer: a subscriber that waits for its next message holds
/// no memory for it (the next batch allocates one, a small cost beside its write).
fn release_if_empty(pending: &mut FrameQueue) {
    if pending.is_empty() {
        *pending = FrameQueue::default();
    }
}

/// The socket as tungstenite sees it: reads from the connection, writes into an outbox.
struct ControlSide<S> {
    /// The connection: tungstenite reads from it, [`SubscriberSocket`] writes to it.
    io: S,
    outbox: BytesMut,
}

impl<S: AsyncRead + Unpin> AsyncRead for ControlSide<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: Unpin> AsyncWrite for ControlSide<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.outbox.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, DuplexStream};

    use super::*;

    const STALL: Duration = Duration::from_secs(1);

    /// A subscriber socket over an in-memory pipe that holds 1 KiB, with 64 KiB of frames
    /// queued, and the pipe's other end.
    async fn loaded_socket() -> (SubscriberSocket<DuplexStream>, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(1024);
        let mut socket = SubscriberSocket::new(ours, WebSocketConfig::default()).await;
        socket.pending().push(Bytes::from(vec![7u8; 64 << 10]));
        (socket, theirs)
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_reads_slowly_is_written_to_however_long_it_takes() {
        let (mut socket, mut peer) = loaded_socket().await;
        let reader = tokio::spawn(async move {
            let mut read = vec![0u8; 64 << 10];
            for part in read.chunks_mut(1024) {
                // A kilobyte every half second: 32 s for the whole, 32 write timeouts.
                tokio::time::sleep(STALL / 2).await;
                peer.read_exact(part).await.expect("read");
            }
            read
        });
        let started = tokio::time::Instant::now();
        let flushed = socket.flush_progressing(STALL).await;
        assert!(
            matches!(flushed, Ok(true)),
            "written, and the peer was seen reading: {flushed:?}"
        );
        assert!(started.elapsed() > STALL * 30);
        assert_eq!(reader.await.expect("reader"), vec![7u8; 64 << 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_times_out_after_the_stall_time() {
        let (mut socket, _peer) = loaded_socket().await;
        let started = tokio::time::Instant::now();
        let flushed = socket.flush_progressing(STALL).await;
        assert!(
            matches!(flushed, Err(WriteFailure::TimedOut)),
            "{flushed:?}"
        );
        assert_eq!(started.elapsed(), STALL, "from the last byte it took");
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_fits_at_once_proves_nothing_about_the_peer() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let mut socket = SubscriberSocket::new(ours, WebSocketConfig::default()).await;
        socket.pending().push(Bytes::from_static(b"small"));
        assert!(matches!(socket.flush_progressing(STALL).await, Ok(false)));
    }
}
