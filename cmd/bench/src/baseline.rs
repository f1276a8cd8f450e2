//! The baseline: a minimal broadcaster with no topic logic beyond a map from URL path to
//! sockets. Every subscriber of a path gets every message of that path's publishers: each
//! burst of messages read from a publisher is framed once and written, as one buffer, to each
//! of its path's subscriber sockets in turn, from the publisher's own task. No history, no
//! order across publishers, no slow-subscriber handling: it is the practical limit of this
//! machine and this client, not a server anyone should run.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use bytes::{BufMut, BytesMut};
use futures_util::StreamExt;
use futures_util::future::FutureExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// One path's subscriber sockets.
type Subscribers = Arc<Mutex<Vec<OwnedWriteHalf>>>;

/// Every path's subscribers (a path's entry lives as long as the server).
type Topics = Arc<std::sync::Mutex<HashMap<String, Subscribers>>>;

/// Accepts connections forever.
pub(crate) async fn serve(listener: TcpListener) {
    let topics = Topics::default();
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, Arc::clone(&topics)));
    }
}

/// The subscribers of `path`, made empty the first time it is asked for.
fn subscribers_of(topics: &Topics, path: &str) -> Subscribers {
    let mut topics = topics.lock().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(topics.entry(path.to_owned()).or_default())
}

// tungstenite fixes the callback's error type (an HTTP response): not ours to shrink.
#[allow(clippy::result_large_err)]
async fn connection(stream: TcpStream, topics: Topics) {
    let mut publisher = false;
    let mut path = String::new();
    let callback = |request: &Request, response: Response| {
        publisher = request
            .headers()
            .get("pubsub")
            .is_some_and(|role| role == "publisher");
        request.uri().path().clone_into(&mut path);
        Ok(response)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let subscribers = subscribers_of(&topics, &path);
    if publisher {
        broadcast(ws, subscribers).await;
    } else {
        let (mut read, write) = ws.into_inner().into_split();
        subscribers.lock().await.push(write);
        // Read and drop whatever the subscriber sends, until it goes.
        let mut sink = vec![0u8; 4096];
        while matches!(tokio::io::AsyncReadExt::read(&mut read, &mut sink).await, Ok(n) if n > 0) {}
    }
}

/// Frames each burst of a publisher's messages once and writes it to every subscriber.
async fn broadcast(
    mut ws: tokio_tungstenite::WebSocketStream<TcpStream>,
    subscribers: Subscribers,
) {
    let mut burst = BytesMut::new();
    while let Some(Ok(message)) = ws.next().await {
        push_frame(&mut burst, message);
        // Take whatever else has already arrived, without waiting.
        while let Some(Some(Ok(message))) = ws.next().now_or_never() {
            push_frame(&mut burst, message);
        }
        let frames = burst.split().freeze();
        if frames.is_empty() {
            continue;
        }
        let mut subscribers = subscribers.lock().await;
        let mut alive = Vec::with_capacity(subscribers.len());
        for mut socket in subscribers.drain(..) {
            if socket.write_all(&frames).await.is_ok() {
                alive.push(socket);
            }
        }
        *subscribers = alive;
    }
}

fn push_frame(burst: &mut BytesMut, message: Message) {
    if let Message::Binary(payload) = message {
        let header = FrameHeader {
            opcode: OpCode::Data(Data::Binary),
            ..FrameHeader::default()
        };
        let _infallible = header.format(payload.len() as u64, &mut burst.writer());
        burst.extend_from_slice(&payload);
    }
}
