//! The hash-verifying load test: proof that a wspubsub server loses, duplicates and alters
//! nothing under load.
//!
//! S subscribers connect to one topic; then P publishers each send every message of a data
//! set (see `wspubsub-testdata`) and close. Every subscriber must receive exactly P x count
//! messages, and the SHA-256 over what it received, sorted, must equal the digest of P sorted
//! copies of the data set. A subscriber that ends early, receives too much, or does not finish
//! within the timeout fails the run.
//!
//! With [`LoadTest::disrupt`] N > 0 the subscribers are stream-mode ones that reconnect, each
//! behind its own loopback proxy, and the run breaks each one's connection N times (a TCP
//! reset at a random moment): each must still reach the digest, by resuming from the server's
//! history, with exactly N reconnects and no gap announced.
//!
//! Every subscriber must also have received the same sequence, not only the same set: a
//! topic has one order for all its subscribers (see [`OrderMismatch`]).
//!
//! `--url` may list several nodes (servers of one cluster); [`Placement`] spreads publishers
//! and subscribers over them, round-robin over the nodes [`NodeSet`]s name.
//!
//! [`run`] drives one load test against any server URLs; [`InProcessServer`] starts one on
//! 127.0.0.1 for when no URL is given. The `loadtest` binary and the workspace's tests share
//! this code.

mod disrupt;
mod order;
mod placement;
mod progress;
mod proxied;
mod report;
mod run;

pub use disrupt::in_process_options;
pub use order::OrderMismatch;
pub use placement::{NodeSet, NodeSetError, Placement, PlacementError, parse_base_url};
pub use progress::Progress;
pub use report::{Gap, Report, Verdict};
pub use run::{InProcessServer, LoadTest, LoadTestError, run};
