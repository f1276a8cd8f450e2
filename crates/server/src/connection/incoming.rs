//! What a frame read from a peer means, the same way for both roles ([`PeerFrame`]; not to be
//! confused with hyper's `PeerFrame` request body).

use bytes::Bytes;
use tokio_tungstenite::tungstenite::{self, Message};

use super::Ending;

/// One item read from a peer, sorted by what the connection tasks do with it.
#[derive(Debug)]
pub(super) enum PeerFrame {
    /// A binary message.
    Binary(Bytes),
    /// A text message (refused from publishers, ignored from subscribers).
    Text,
    /// A ping, a pong or a raw frame: only a sign of life.
    Control,
    /// The connection is over.
    End(Ending),
}

impl From<Option<Result<Message, tungstenite::Error>>> for PeerFrame {
    fn from(item: Option<Result<Message, tungstenite::Error>>) -> Self {
        match item {
            Some(Ok(Message::Binary(message))) => PeerFrame::Binary(message),
            Some(Ok(Message::Text(_))) => PeerFrame::Text,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => PeerFrame::Control,
            Some(Ok(Message::Close(frame))) => PeerFrame::End(Ending::from_close_frame(frame)),
            Some(Err(error)) => PeerFrame::End(Ending::from_read_error(error)),
            None => PeerFrame::End(Ending::ConnectionLost(
                "end of stream without a close frame".into(),
            )),
        }
    }
}
