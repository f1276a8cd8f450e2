//! What the wspubsub clients (`wspubsub-pubclient`, `wspubsub-subclient`) share, so that it
//! has one home:
//!
//! - [`ClientOptions`]: client name, extra request headers, token, CA certificates for
//!   `wss://`, connect timeout, pong deadline, close deadline, largest incoming message.
//! - [`ClientError`]: every way a client can fail or end, cloneable so that every awaiter of a
//!   client's end gets it.
//! - [`connect`]: the handshake with the role header, a timeout, and a refused handshake turned
//!   into its HTTP status and body; `wss://` through rustls, trusting the platform's roots or
//!   the CA certificates given in [`ClientOptions::ca_certificates_pem`].
//! - [`Ending`]: the "done / error" pair of the Go clients, the Rust way: await
//!   [`Ending::wait`] for how the connection ended, or peek with [`Ending::get`].
//! - [`read`], [`ping`], [`end_with`] and [`close_handshake`]: what both clients' connection
//!   tasks do with the socket, the same way.

mod ending;
mod error;
mod options;
mod socket;
mod tls;

pub use ending::{Ending, EndingSender, ending};
pub use error::ClientError;
pub use options::{ClientOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_INCOMING_MESSAGE};
pub use socket::{ClientSocket, Incoming, close_handshake, connect, end_with, ping, read};
