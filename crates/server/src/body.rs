//! The body of every HTTP answer the server gives: a whole buffer (refusals, endpoints, the
//! empty body of a 101), or a stream of buffers another task writes (a Server-Sent Events
//! subscriber, whose task feeds the body as its topic takes messages). Its data are
//! [`FrameQueue`]s, so that buffers shared by many subscribers go out by reference, several
//! to one vectored write.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::mpsc;
use wspubsub_fanout::FrameQueue;

/// A response body: whole, or streamed from a channel.
#[derive(Debug)]
pub(crate) enum Body {
    /// All of it at once (`None` once taken, or when empty).
    Full(Option<Bytes>),
    /// Buffers as a task sends them; the body ends when the task drops its sender.
    Stream(mpsc::Receiver<FrameQueue>),
}

impl Body {
    /// A body of these bytes.
    pub(crate) fn new(bytes: Bytes) -> Self {
        Body::Full((!bytes.is_empty()).then_some(bytes))
    }

    /// A streamed body and the sender that feeds it, holding at most `buffered` buffers that
    /// hyper has not taken yet: a sender that waits for room waits for the socket.
    pub(crate) fn channel(buffered: usize) -> (mpsc::Sender<FrameQueue>, Self) {
        let (sender, receiver) = mpsc::channel(buffered.max(1));
        (sender, Body::Stream(receiver))
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::new(Bytes::new())
    }
}

impl hyper::body::Body for Body {
    type Data = FrameQueue;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<FrameQueue>, Infallible>>> {
        match self.get_mut() {
            Body::Full(bytes) => {
                Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes.into()))))
            }
            Body::Stream(receiver) => receiver
                .poll_recv(cx)
                .map(|bytes| bytes.map(|bytes| Ok(Frame::data(bytes)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(bytes) => bytes.is_none(),
            Body::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |bytes| bytes.len() as u64))
            }
            Body::Stream(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn a_streamed_body_yields_what_is_sent_and_ends_with_the_sender() {
        let (sender, body) = Body::channel(2);
        let mut two = FrameQueue::default();
        two.push(Bytes::from_static(b"b"));
        two.push(Bytes::from_static(b"c"));
        sender
            .send(Bytes::from_static(b"a").into())
            .await
            .expect("open");
        sender.send(two).await.expect("open");
        drop(sender);
        let collected = body.collect().await.expect("infallible").to_bytes();
        assert_eq!(collected.as_ref(), b"abc");
    }

    #[tokio::test]
    async fn a_whole_body_is_its_bytes() {
        let body = Body::new(Bytes::from_static(b"whole"));
        assert_eq!(hyper::body::Body::size_hint(&body).exact(), Some(5));
        let collected = body.collect().await.expect("infallible").to_bytes();
        assert_eq!(collected.as_ref(), b"whole");
    }
}
