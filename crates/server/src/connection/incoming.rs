//! What a frame read from a peer means, the same way for both roles.

use bytes::Bytes;
use tokio_tungstenite::tungstenite::{self, Message};

use super::Ending;

/// One item read from a peer, sorted by what the connection tasks do with it.
#[derive(Debug)]
pub(super) enum Incoming {
    /// A binary message.
    Binary(Bytes),
    /// A text message (refused from publishers, ignored from subscribers).
    Text,
    /// A ping, a pong or a raw frame: only a sign of life.
    Control,
    /// The connection is over.
    End(Ending),
}

impl From<Option<Result<Message, tungstenite::Error>>> for Incoming {
    fn from(item: Option<Result<Message, tungstenite::Error>>) -> Self {
        match item {
            Some(Ok(Message::Binary(message))) => Incoming::Binary(message),
            Some(Ok(Message::Text(_))) => Incoming::Text,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Incoming::Control,
            Some(Ok(Message::Close(frame))) => Incoming::End(Ending::from_close_frame(frame)),
            Some(Err(error)) => Incoming::End(Ending::from_read_error(error)),
            None => Incoming::End(Ending::ConnectionLost(
                "end of stream without a close frame".into(),
            )),
        }
    }
}
