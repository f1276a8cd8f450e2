//! Publishing over plain HTTP: `POST /topic` with the body as one message (any content type,
//! so `curl -d @file` publishes), answered `202 {"seq":S}` once the topic stored it.
//!
//! The request passes a WebSocket publisher's rules (draining, origin, token from
//! `Authorization: Bearer` or `?token=`, limits); a body over `--max-message-size` is refused
//! with 413. It joins its topic as a stream-mode publisher for the one message, so the
//! topic's acks say when (and as which seq) it is stored, in cluster mode too.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use wspubsub_fanout::Form;
use wspubsub_protocol::{Role, Start};

use super::cors;
use crate::admission::{self, Entry, Refusal};
use crate::body::Body;
use crate::connection::lifecycle::Attachment;
use crate::server::State;
use crate::upgrade::ClientIdentity;

/// The client name HTTP publishers are counted and reported under.
const NAME: &str = "http-publisher";

/// Publishes the body of `request` to its path and answers with its seq, or refuses it.
pub(crate) async fn publish(
    state: &State,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Body> {
    let topic = request.uri().path().to_owned();
    let cors_request = request.headers().clone();
    let mut response = match stored(state, peer, request).await {
        Ok(seq) => {
            let mut accepted = Response::new(Body::new(Bytes::from(format!("{{\"seq\":{seq}}}"))));
            *accepted.status_mut() = StatusCode::ACCEPTED;
            accepted
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            accepted
        }
        Err(refusal) => refusal.answer(state, peer, &topic),
    };
    cors::allow(&state.origins, &cors_request, response.headers_mut());
    response
}

/// Checks, reads and publishes the request's body; returns the seq it was stored as.
async fn stored(
    state: &State,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<u64, Refusal> {
    let topic = request.uri().path().to_owned();
    let max = state.options.max_message_size;
    let auth = state.auth.as_ref().map(|auth| auth.current());
    let gate = admission::gate(state, auth.as_deref());
    admission::check_open(gate, &request)?;
    admission::check_pattern(&topic, Role::Publisher, &Start::default(), Form::Enveloped)?;
    let token_expires = admission::check_token(gate, &request, Role::Publisher, &topic)?;
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return Err(too_big(max));
    }
    let headers = request.headers().clone();
    let message = read_body(request.into_body(), max, state.options.handshake_timeout).await?;
    let entry = Entry {
        topic,
        identity: ClientIdentity {
            role: Role::Publisher,
            name: NAME.into(),
        },
        token_expires,
        start: Default::default(),
        form: Form::Enveloped,
        over_http: true,
    };
    let client = admission::enter(state, peer, &headers, entry).await?;
    let Attachment::Publisher(publisher) = client.attachment else {
        return Err(unavailable("not a publisher"));
    };
    let mut acks = publisher.acks().ok_or_else(|| unavailable("no acks"))?;
    let len = message.len();
    publisher
        .publish(message, Instant::now())
        .await
        .map_err(|gone| unavailable(&gone.to_string()))?;
    state.metrics.received(len);
    let acked = acks
        .wait_for(|acked| acked.count > 0)
        .await
        .map_err(|_gone| unavailable("the topic ended before storing the message"))?;
    Ok(acked.seq)
}

/// Reads the whole body, at most `max` bytes, within `timeout`.
async fn read_body(
    body: Incoming,
    max: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, Refusal> {
    let collected = tokio::time::timeout(timeout, Limited::new(body, max).collect()).await;
    match collected {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_big(max)),
        Ok(Err(error)) => Err(Refusal::upgrade_failed(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("cannot read the body: {error}"),
        )),
        Err(_elapsed) => Err(Refusal::upgrade_failed(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the body did not arrive within the handshake timeout",
        )),
    }
}

/// A body over the message size limit.
fn too_big(max: usize) -> Refusal {
    Refusal::upgrade_failed(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_big",
        format!("message larger than the maximum message size ({max} bytes)"),
    )
}

/// The topic could not take the message (it ended: the server is shutting down).
fn unavailable(why: &str) -> Refusal {
    Refusal::upgrade_failed(
        StatusCode::SERVICE_UNAVAILABLE,
        "topic_unavailable",
        format!("the message was not stored: {why}"),
    )
}
