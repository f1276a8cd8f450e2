//! The data structures of wspubsub's fan-out, with no I/O: how one message reaches thousands
//! of subscribers for the cost of one.
//!
//! - [`ChunkBuilder`] encodes each batch of messages once into a [`Chunk`]: unmasked binary
//!   WebSocket frames back to back, valid on every subscriber's socket.
//! - [`Backlog`] is a topic's bounded window of recent chunks; every subscriber reads it from
//!   its own [`Cursor`] (only [`Backlog::join`] makes one), so a message is stored once however
//!   many subscribers there are, what a subscriber is still writing counts against the bound,
//!   and a subscriber that falls out of the window learns it ([`Lagged`]) instead of missing
//!   messages silently.
//! - [`History`] keeps a topic's recent [`Record`]s (the same chunks, with each message's
//!   sequence number, frame offset and time) after delivery, within bounds, so a subscriber
//!   can start from a past position ([`History::locate`], [`History::replay`]).
//! - For stream-mode (`wspubsub.v2`) readers, a [`Chunk`] also carries its messages
//!   enveloped with their seq and time ([`Record::envelop`]), built once per chunk and read
//!   by cursors that joined in [`Form::Enveloped`]; raw readers never see it.
//! - [`FrameQueue`] is what a subscriber's socket writer holds: shared chunks as one
//!   vectored [`bytes::Buf`], so one `writev` carries many of them.

mod backlog;
mod frames;
mod history;

pub use backlog::{Backlog, Cursor, Lagged, Read};
pub use frames::{Chunk, ChunkBuilder, Form, FrameQueue, text_frame};
pub use history::{
    Evictions, Gap, GapReason, History, HistoryLimits, Mark, Record, RecordBuilder, Wanted,
};
