//! Helpers for the client crates' tests: bounded reads of a stream of results (the
//! subscriber's shape), the server's word on how a client left, and a self-signed
//! certificate for `wss://` servers. Generic over the
//! stream, so that testkit needs no client crate (whose tests depend on testkit).

use std::fmt::Debug;

use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;
use wspubsub_server::{Event, EventKind, TlsIdentity};

use crate::{TIMEOUT, wait_for_event, within};

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

/// Waits for the first event of `kind` (a `...Left`), which must carry close code `code`
/// in its detail, and returns it.
pub async fn wait_for_left(
    events: &mut broadcast::Receiver<Event>,
    kind: EventKind,
    code: u16,
) -> Event {
    let left = wait_for_event(events, |event| event.kind == kind).await;
    assert!(
        left.detail
            .as_deref()
            .is_some_and(|detail| detail.contains(&code.to_string())),
        "expected {kind:?} with {code}, got {left:?}"
    );
    left
}
