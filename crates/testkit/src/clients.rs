//! Helpers for the client crates' tests: bounded reads of a stream of results (the
//! subscriber's shape) and a self-signed certificate for `wss://` servers. Generic over the
//! stream, so that testkit needs no client crate (whose tests depend on testkit).

use std::fmt::Debug;

use futures_util::{Stream, StreamExt};
use wspubsub_server::TlsIdentity;

use crate::{TIMEOUT, within};

/// The next item of `stream`, which must be `Ok`, within [`TIMEOUT`].
pub async fn next_ok<S, T, E>(stream: &mut S) -> T
where
    S: Stream<Item = Result<T, E>> + Unpin,
    E: Debug,
{
    match within(TIMEOUT, stream.next()).await {
        Some(Ok(item)) => item,
        Some(Err(error)) => panic!("expected an item, got the error {error:?}"),
        None => panic!("expected an item, the stream ended"),
    }
}

/// The next item of `stream`, which must be an error, within [`TIMEOUT`]; then the stream
/// must end.
pub async fn last_err<S, T, E>(stream: &mut S) -> E
where
    S: Stream<Item = Result<T, E>> + Unpin,
    T: Debug,
{
    let error = match within(TIMEOUT, stream.next()).await {
        Some(Err(error)) => error,
        Some(Ok(item)) => panic!("expected an error, got the item {item:?}"),
        None => panic!("expected an error, the stream ended"),
    };
    assert!(
        within(TIMEOUT, stream.next()).await.is_none(),
        "the stream ends after its error"
    );
    error
}

/// A fresh self-signed certificate for the loopback address: the server's identity, and the
/// certificate's PEM for clients to trust.
pub fn self_signed() -> (TlsIdentity, String) {
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("generate a certificate");
    let certificate = generated.cert.pem();
    let identity =
        TlsIdentity::from_pem(certificate.clone(), generated.signing_key.serialize_pem());
    (identity, certificate)
}
