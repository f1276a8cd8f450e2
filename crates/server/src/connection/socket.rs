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
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
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
    /// Reads the subscriber's frames; writes control frames into its outbox.
    ws: WebSocketStream<ControlSide<S>>,
    /// The socket's write side, written only by this struct.
    writer: WriteHalf<S>,
    /// Whole frames waiting for the socket (the front one possibly partly written).
    pending: FrameQueue,
}

impl<S> SubscriberSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Wraps an upgraded connection.
    pub(crate) async fn new(io: S, config: WebSocketConfig) -> Self {
        let (read, writer) = tokio::io::split(io);
        let control = ControlSide {
            read,
            outbox: BytesMut::new(),
        };
        let ws = WebSocketStream::from_raw_socket(control, Role::Server, Some(config)).await;
        SubscriberSocket {
            ws,
            writer,
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
        self.writer.write_all_buf(&mut self.pending).await?;
        self.writer.flush().await
    }

    /// Writes every pending frame like [`Self::flush`], failing only when the socket takes
    /// no bytes for `stall`: a slow reader that keeps reading is never cut, however long the
    /// whole write takes.
    pub(super) async fn flush_progressing(&mut self, stall: Duration) -> Result<(), WriteFailure> {
        self.queue_outbox();
        while self.pending.has_remaining() {
            // Each step is one write the socket took something of (write_buf is cancel-safe:
            // a timed-out step wrote nothing).
            match write::timed(stall, self.writer.write_buf(&mut self.pending)).await {
                Ok(0) => return Err(WriteFailure::Failed("the socket takes no more".into())),
                Ok(_) => {}
                Err(failure) => return Err(failure),
            }
        }
        write::timed(stall, self.writer.flush()).await
    }

    /// Moves the control frames tungstenite wrote behind the data frames already queued.
    fn queue_outbox(&mut self) {
        let outbox = &mut self.ws.get_mut().outbox;
        if !outbox.is_empty() {
            self.pending.push(outbox.split().freeze());
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

/// The socket as tungstenite sees it: reads from the connection, writes into an outbox.
struct ControlSide<S> {
    read: ReadHalf<S>,
    outbox: BytesMut,
}

impl<S: AsyncRead + AsyncWrite> AsyncRead for ControlSide<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<S> AsyncWrite for ControlSide<S> {
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
