//! Topics over plain HTTP, for browsers and shells: a `GET` (or `HEAD`) that accepts
//! `text/event-stream` is a Server-Sent Events subscriber of its path (what
//! `new EventSource(url)` sends), a `POST` publishes its body as one message ([`publish`]),
//! and an `OPTIONS` preflight is answered ([`cors`]).
//!
//! An EventSource subscriber passes the rules a WebSocket subscriber passes (draining, origin,
//! start position, token from `?token=`, limits, the topic's history), joins its topic as a
//! stream-mode reader (so it shares the chunks the topic envelops once for every such reader,
//! and its events carry the seqs), and is served by its own task ([`subscriber`]), which
//! writes events ([`event`]) into the streamed response body. The events of a shared chunk
//! are made once, by the first subscriber that reads it, and sent by reference by every
//! other ([`shared`]).
//!
//! Resuming: `Last-Event-ID` (sent by EventSource when it reconnects) wins over `?from=` and
//! `?since=`, and starts right after that seq. A position history no longer covers is never
//! refused (as in stream mode, and unlike a raw subscriber's 416): the stream begins with an
//! `event: gap` holding the gap JSON of stream mode, then replays what history has.

mod cors;
mod event;
pub(crate) mod publish;
mod shared;
mod subscriber;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use hyper::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;
use wspubsub_fanout::Form;
use wspubsub_protocol::{CLIENT_NAME_QUERY, MAX_SEQ, Role, Start, StartPosition};

use crate::admission::{self, Entry, Refusal};
use crate::body::Body;
use crate::connection::lifecycle::{Attachment, Client};
use crate::http::HandshakePermit;
use crate::server::State;
use crate::upgrade::{self, BadIdentity, ClientIdentity, MAX_CLIENT_NAME_LEN, query_value};
use event::Format;
use subscriber::SseClient;

pub(crate) use cors::preflight;
pub(crate) use shared::SharedEvents;

/// The media type of an event stream.
const EVENT_STREAM: &str = "text/event-stream";

/// The header EventSource resumes with: the id (seq) of the last event it received.
const LAST_EVENT_ID: &str = "last-event-id";

/// Tells nginx and similar proxies not to buffer the stream.
const NO_PROXY_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// The client name of an EventSource subscriber that gives none (`?name=`).
const DEFAULT_NAME: &str = "sse";

/// Whether a request asks for an event stream: a `GET` or `HEAD` whose `Accept` names
/// `text/event-stream`.
pub(crate) fn is_event_stream_request<B>(request: &Request<B>) -> bool {
    upgrade::is_read(request)
        && request
            .headers()
            .get_all(ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|item| {
                let media = item.split(';').next().unwrap_or("").trim();
                media.eq_ignore_ascii_case(EVENT_STREAM)
            })
}

/// What an EventSource request asks for, once read.
struct Wanted {
    entry: Entry,
    format: Format,
}

/// Answers an event-stream request: the stream of its topic (the subscriber's task spawned
/// on the server's clients), or a refusal. `abort` drops the request's connection; `permit`
/// holds its place among handshakes, given back once the subscriber is admitted (a
/// long-lived subscriber is no handshake).
pub(crate) async fn subscribe<B>(
    state: &Arc<State>,
    peer: SocketAddr,
    request: &Request<B>,
    abort: CancellationToken,
    permit: &Mutex<HandshakePermit>,
) -> Response<Body> {
    let topic = request.uri().path();
    let mut response = match admit(state, peer, request).await {
        Ok((client, format)) => {
            // Nothing panics while holding this lock; a poisoned one still holds the permit.
            drop(permit.lock().unwrap_or_else(PoisonError::into_inner).take());
            stream(
                state,
                client,
                format,
                abort,
                request.method() == Method::HEAD,
            )
        }
        Err(refusal) => refusal.answer(state, peer, topic),
    };
    cors::allow(&state.origins, request.headers(), response.headers_mut());
    response
}

/// Every rule a WebSocket subscriber passes, for an EventSource request; joins the topic.
async fn admit<B>(
    state: &State,
    peer: SocketAddr,
    request: &Request<B>,
) -> Result<(Client, Format), Refusal> {
    let auth = state.auth.as_ref().map(|auth| auth.current());
    let gate = admission::gate(state, auth.as_deref());
    admission::check_open(gate, request)?;
    let Wanted { mut entry, format } = read(request)?;
    entry.token_expires = admission::check_token(gate, request, Role::Subscriber, &entry.topic)?;
    let client = admission::enter(state, peer, request.headers(), entry).await?;
    Ok((client, format))
}

/// Reads the request: its name, start position and format; a pattern's subscription is
/// checked ([`admission::check_pattern`]) and reads its topics' envelopes with their names.
fn read<B>(request: &Request<B>) -> Result<Wanted, Refusal> {
    let query = request.uri().query().unwrap_or("");
    let bad = |why: String| Refusal::upgrade_failed(StatusCode::BAD_REQUEST, "bad_start", why);
    let name = query_value(query, CLIENT_NAME_QUERY).unwrap_or_else(|| DEFAULT_NAME.into());
    if name.len() > MAX_CLIENT_NAME_LEN {
        return Err(BadIdentity::NameTooLong.into());
    }
    let start = match request.headers().get(LAST_EVENT_ID) {
        Some(id) => resume_after(id).ok_or_else(|| {
            bad("invalid Last-Event-ID: expected the seq of an event of this stream".into())
        })?,
        None => upgrade::start(request)?,
    };
    let topic = request.uri().path();
    let form = admission::check_pattern(topic, Role::Subscriber, &start, Form::Enveloped)?;
    let format = Format::parse(
        query_value(query, event::ENCODING_QUERY).as_deref(),
        query_value(query, event::ENVELOPE_QUERY).as_deref(),
        form == Form::Named,
    )
    .map_err(|error| bad(error.to_string()))?;
    let entry = Entry {
        topic: topic.to_owned(),
        identity: ClientIdentity {
            role: Role::Subscriber,
            name,
        },
        token_expires: None,
        // A gap is announced as an event, never refused.
        start: Start {
            gap_ok: true,
            ..start
        },
        form,
        over_http: true,
    };
    Ok(Wanted { entry, format })
}

/// The start right after the event whose id is `id` (a seq).
fn resume_after(id: &HeaderValue) -> Option<Start> {
    let seq = id
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|seq| *seq < MAX_SEQ)?;
    Some(Start {
        position: StartPosition::Seq(seq + 1),
        gap_ok: true,
    })
}

/// The 200 answer whose body the subscriber's task (spawned here) feeds; for a `HEAD`, the
/// same headers and no subscriber.
fn stream(
    state: &State,
    client: Client,
    format: Format,
    abort: CancellationToken,
    head_only: bool,
) -> Response<Body> {
    let body = if head_only {
        Body::default()
    } else {
        let Client {
            connection,
            admission,
            membership,
            attachment: Attachment::Subscriber(feed),
        } = client
        else {
            // `read` joins every EventSource request as a subscriber.
            return upgrade::plain_text(StatusCode::INTERNAL_SERVER_ERROR, "not a subscriber");
        };
        let (sender, body) = Body::channel(subscriber::BODY_BUFFERS);
        state.clients.spawn(subscriber::serve(SseClient {
            connection,
            admission,
            membership,
            feed,
            format,
            body: sender,
            shared: Arc::clone(&state.sse_events),
            abort,
        }));
        body
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(NO_PROXY_BUFFERING, HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, accept: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri("/t")
            .header(ACCEPT, accept)
            .body(())
            .expect("a request")
    }

    #[test]
    fn only_get_or_head_accepting_event_streams_subscribe() {
        assert!(is_event_stream_request(&request(Method::GET, EVENT_STREAM)));
        assert!(is_event_stream_request(&request(
            Method::HEAD,
            "text/html, Text/Event-Stream; q=0.9"
        )));
        assert!(!is_event_stream_request(&request(
            Method::POST,
            EVENT_STREAM
        )));
        assert!(!is_event_stream_request(&request(Method::GET, "text/html")));
    }

    #[test]
    fn last_event_id_resumes_after_it_and_wins_over_the_query() {
        let with_id = Request::get("/t?from=earliest")
            .header(LAST_EVENT_ID, "41")
            .body(())
            .expect("a request");
        let wanted = read(&with_id).expect("readable");
        assert_eq!(wanted.entry.start.position, StartPosition::Seq(42));
        assert!(wanted.entry.start.gap_ok);
        let bad = Request::get("/t")
            .header(LAST_EVENT_ID, "x")
            .body(())
            .expect("a request");
        assert_eq!(
            read(&bad).err().map(|refusal| refusal.status),
            Some(StatusCode::BAD_REQUEST)
        );
        let query = Request::get("/t?from=7&encoding=text")
            .body(())
            .expect("a request");
        let wanted = read(&query).expect("readable");
        assert_eq!(wanted.entry.start.position, StartPosition::Seq(7));
        assert_eq!(wanted.format.encoding, event::Encoding::Text);
        assert!(wanted.format.ids && !wanted.format.json);
        let pattern = Request::get("/chat/*?envelope=json")
            .body(())
            .expect("a request");
        let wanted = read(&pattern).expect("readable");
        assert_eq!(wanted.entry.form, Form::Named);
        assert!(!wanted.format.ids && wanted.format.json);
        let resumed = Request::get("/chat/*")
            .header(LAST_EVENT_ID, "41")
            .body(())
            .expect("a request");
        assert_eq!(
            read(&resumed).err().map(|refusal| refusal.reason),
            Some("bad_pattern"),
            "live only"
        );
    }
}
