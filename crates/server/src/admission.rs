//! Admission: the rules a WebSocket request must pass before its upgrade, in order, each a
//! `?` in [`admit`]. The first rule that fails gives a [`Refusal`] (an HTTP status, the
//! metric's reason, the event's kind and a one-line why), which [`Refusal::answer`] turns
//! into the response, the metric, the event and the log line in one place.
//!
//! The rules that need neither the hub nor the live counts ([`check`]) run on their own too,
//! so that they can be tested (and fuzzed) without I/O.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::header::{HeaderValue, ORIGIN, SEC_WEBSOCKET_VERSION};
use hyper::{Request, Response, StatusCode};
use wspubsub_cluster::{SubjectError, subject_for};
use wspubsub_fanout::Form;
use wspubsub_protocol::{BadStart, Role, Start, StartPosition};

use crate::auth::{Authenticator, Denied};
use crate::client_id::client_id;
use crate::connection::Connection;
use crate::connection::lifecycle::{Attachment, Client};
use crate::event::EventKind;
use crate::feed::Feed;
use crate::hub::JoinRefused;
use crate::limits::LimitReached;
use crate::origin::OriginPolicy;
use crate::pattern;
use crate::retention::HistoryGap;
use crate::server::State;
use crate::stats::{ClientKind, ClientRecord, SubscriberKind};
use crate::upgrade::{self, BadHandshake, BadIdentity, Body, ClientIdentity};

/// Why a request does not become a client: everything needed to answer, count and report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The HTTP status of the answer.
    pub(crate) status: StatusCode,
    /// The rule that refused, as the metrics label it (`reason`).
    pub(crate) reason: &'static str,
    /// The event reported.
    pub(crate) kind: EventKind,
    /// One line for the body, the event and the log; never a token.
    pub(crate) why: String,
}

impl Refusal {
    /// A refusal of a request that would have become a client (counted as `reason`).
    pub(crate) fn upgrade_failed(
        status: StatusCode,
        reason: &'static str,
        why: impl Into<String>,
    ) -> Self {
        Refusal {
            status,
            reason,
            kind: EventKind::UpgradeFailed,
            why: why.into(),
        }
    }

    /// A request that does not ask for a WebSocket.
    fn not_websocket() -> Self {
        Self::upgrade_failed(
            StatusCode::BAD_REQUEST,
            "not_websocket",
            upgrade::NOT_A_WEBSOCKET,
        )
    }

    /// Any new client while the server drains.
    fn draining() -> Self {
        Self::upgrade_failed(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "server is shutting down; connect again to another instance",
        )
    }

    /// A browser page of an origin not allowed.
    fn origin() -> Self {
        Self::upgrade_failed(StatusCode::FORBIDDEN, "origin", "origin not allowed")
    }

    /// In cluster mode, a topic whose NATS subject would be longer than NATS takes: sending
    /// it would make NATS close this node's whole connection.
    fn topic_too_long(why: &SubjectError) -> Self {
        Self::upgrade_failed(
            StatusCode::URI_TOO_LONG,
            "topic_too_long",
            format!("topic too long for cluster mode: {why}"),
        )
    }

    /// The HTTP answer: a one-line body, plus the version this server speaks after a 426.
    pub(crate) fn response(&self) -> Response<Body> {
        let mut response = upgrade::plain_text(self.status, &self.why);
        if self.status == StatusCode::UPGRADE_REQUIRED {
            response
                .headers_mut()
                .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        response
    }

    /// Counts, reports and logs the refusal of a request for `topic` from `peer`, and returns
    /// its answer.
    pub(crate) fn answer(self, state: &State, peer: SocketAddr, topic: &str) -> Response<Body> {
        let Refusal {
            status,
            reason,
            kind,
            ..
        } = self;
        tracing::debug!(%peer, %topic, %status, reason, why = %self.why, "request refused");
        state.metrics.rejected(status.as_u16(), reason);
        let response = self.response();
        state.events.emit(kind, topic, None, Some(self.why));
        response
    }
}

impl From<BadHandshake> for Refusal {
    fn from(bad: BadHandshake) -> Self {
        Self::upgrade_failed(bad.status(), "bad_handshake", bad.to_string())
    }
}

impl From<BadIdentity> for Refusal {
    fn from(bad: BadIdentity) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            reason: "bad_headers",
            kind: EventKind::BadHeaders,
            why: bad.to_string(),
        }
    }
}

impl From<Denied> for Refusal {
    fn from(denied: Denied) -> Self {
        Self::upgrade_failed(denied.status(), denied.rule(), denied.to_string())
    }
}

impl From<BadStart> for Refusal {
    fn from(bad: BadStart) -> Self {
        Self::upgrade_failed(StatusCode::BAD_REQUEST, "bad_start", bad.to_string())
    }
}

impl From<HistoryGap> for Refusal {
    fn from(gap: HistoryGap) -> Self {
        Self::upgrade_failed(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "history_gap",
            gap.to_string(),
        )
    }
}

impl From<JoinRefused> for Refusal {
    fn from(refused: JoinRefused) -> Self {
        match refused {
            JoinRefused::Limit(limit) => limit.into(),
            JoinRefused::Gap(gap) => gap.into(),
            JoinRefused::Broker(why) => Self::upgrade_failed(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                format!("the topic cannot be read from NATS: {why}"),
            ),
        }
    }
}

impl From<LimitReached> for Refusal {
    fn from(limit: LimitReached) -> Self {
        Self::upgrade_failed(limit.status(), limit.rule(), limit.to_string())
    }
}

/// What the rules without state look at, besides the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gate<'a> {
    /// Whether the server is draining (every new client is refused).
    pub(crate) draining: bool,
    /// Which browser origins may connect.
    pub(crate) origins: &'a OriginPolicy,
    /// Token auth, when on.
    pub(crate) auth: Option<&'a Authenticator>,
}

/// A request that passed every rule of [`check`].
#[derive(Debug)]
pub(crate) struct Checked {
    /// The topic: the request's path.
    pub(crate) topic: String,
    /// Who the client says it is.
    pub(crate) identity: ClientIdentity,
    /// When its token expires: `None` without auth, or for an `exp` beyond the clock.
    pub(crate) token_expires: Option<tokio::time::Instant>,
    /// The 101 answer that completes its handshake.
    pub(crate) response: Response<Body>,
    /// Where a subscriber's delivery begins (always the default for a publisher).
    pub(crate) start: Start,
    /// Stream mode (`wspubsub.v2`, offered by the client) or raw.
    pub(crate) form: Form,
}

/// The rules that need no live state, in order: a WebSocket request, a valid handshake, not
/// draining, an allowed origin, a role and name, a readable start position (subscribers), a
/// token that covers the topic.
pub(crate) fn check<B>(gate: Gate<'_>, request: &Request<B>) -> Result<Checked, Refusal> {
    if !upgrade::is_websocket_request(request) {
        return Err(Refusal::not_websocket());
    }
    let response = upgrade::accept(request)?;
    check_open(gate, request)?;
    let identity = upgrade::identify(request)?;
    let form = upgrade::stream_mode(request);
    let start = match identity.role {
        // In stream mode a gap is announced to the subscriber, never refused.
        Role::Subscriber => {
            let start = upgrade::start(request)?;
            Start {
                gap_ok: start.gap_ok || form == Form::Enveloped,
                ..start
            }
        }
        Role::Publisher => Start::default(),
    };
    let topic = request.uri().path().to_owned();
    let form = check_pattern(&topic, identity.role, &start, form)?;
    let token_expires = check_token(gate, request, identity.role, &topic)?;
    Ok(Checked {
        topic,
        identity,
        token_expires,
        response,
        start,
        form,
    })
}

/// The rules every new client passes first, over WebSocket or plain HTTP: the server is not
/// draining, and a browser's `Origin` is allowed.
pub(crate) fn check_open<B>(gate: Gate<'_>, request: &Request<B>) -> Result<(), Refusal> {
    if gate.draining {
        return Err(Refusal::draining());
    }
    if let Some(origin) = request.headers().get(ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|origin| gate.origins.allows(origin));
        if !allowed {
            return Err(Refusal::origin());
        }
    }
    Ok(())
}

/// The rules of a pattern path ([`crate::pattern`]): only a subscriber may follow one, from
/// the latest message on; returns the form the subscriber reads its topics in (a stream-mode
/// subscriber's envelopes name their topic). Any other path passes as it is.
pub(crate) fn check_pattern(
    topic: &str,
    role: Role,
    start: &Start,
    form: Form,
) -> Result<Form, Refusal> {
    if !pattern::is_pattern(topic) {
        return Ok(form);
    }
    let bad = |why: String| Refusal::upgrade_failed(StatusCode::BAD_REQUEST, "bad_pattern", why);
    pattern::check(topic).map_err(|bad_pattern| bad(bad_pattern.to_string()))?;
    if role == Role::Publisher {
        return Err(bad(format!(
            "{topic} is a pattern (a segment is * or **): publish to a topic, subscribe to a pattern"
        )));
    }
    if start.position != StartPosition::Latest {
        return Err(bad(
            "a pattern subscription is live only: from=latest (the default), no since".into(),
        ));
    }
    Ok(match form {
        Form::Raw => Form::Raw,
        Form::Enveloped | Form::Named => Form::Named,
    })
}

/// With token auth on, the request's token must let `role` use `topic`; returns when it
/// expires (`None` without auth, or for an `exp` beyond what the clock can represent, which
/// never fires).
pub(crate) fn check_token<B>(
    gate: Gate<'_>,
    request: &Request<B>,
    role: Role,
    topic: &str,
) -> Result<Option<tokio::time::Instant>, Refusal> {
    Ok(match gate.auth {
        None => None,
        Some(auth) => {
            tokio::time::Instant::now().checked_add(auth.authorize(request, role, topic)?)
        }
    })
}

/// In cluster mode, refuses a topic whose NATS subject would exceed [`wspubsub_cluster::MAX_SUBJECT_BYTES`]
/// (`414`); any other topic passes (every path has a subject).
fn check_subject(topic: &str) -> Result<(), Refusal> {
    match subject_for(topic) {
        Err(too_long @ SubjectError::TooLong { .. }) => Err(Refusal::topic_too_long(&too_long)),
        _ => Ok(()),
    }
}

/// A request admitted as a client: the 101 answer to send and the client, registered with
/// its topic and counted, to serve once the upgrade completes.
pub(crate) struct Admitted {
    /// The 101 answer.
    pub(crate) response: Response<Body>,
    /// The registered client.
    pub(crate) client: Client,
}

/// Every rule, in order: [`check`], then those of [`enter`].
pub(crate) async fn admit<B>(
    state: &State,
    peer: SocketAddr,
    request: &Request<B>,
) -> Result<Admitted, Refusal> {
    let auth = state.auth.as_ref().map(|auth| auth.current());
    let Checked {
        topic,
        identity,
        token_expires,
        response,
        start,
        form,
    } = check(gate(state, auth.as_deref()), request)?;
    let entry = Entry {
        topic,
        identity,
        token_expires,
        start,
        form,
        over_http: false,
    };
    let client = enter(state, peer, request.headers(), entry).await?;
    Ok(Admitted { response, client })
}

/// The gate of `state` now, with `auth` its current authenticator.
pub(crate) fn gate<'a>(state: &'a State, auth: Option<&'a Authenticator>) -> Gate<'a> {
    Gate {
        draining: state.shutdown.is_cancelled(),
        origins: &state.origins,
        auth,
    }
}

/// A client that passed the rules without state, about to join its topic.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The topic: the request's path.
    pub(crate) topic: String,
    /// Who the client says it is.
    pub(crate) identity: ClientIdentity,
    /// When its token expires (see [`check_token`]).
    pub(crate) token_expires: Option<tokio::time::Instant>,
    /// Where a subscriber's delivery begins (always the default for a publisher).
    pub(crate) start: Start,
    /// Which encoding of the topic's chunks it takes (a publisher in stream mode is acked).
    pub(crate) form: Form,
    /// Whether it came over plain HTTP (an EventSource subscriber or a `POST`), not a
    /// WebSocket: what the admin API names its kind by.
    pub(crate) over_http: bool,
}

/// The rules that need live state, in order: in cluster mode a topic NATS can carry
/// ([`wspubsub_cluster::MAX_SUBJECT_BYTES`]), the connection limits (counting the client from
/// `peer`, or the one its trusted proxies name in `headers`), then the topic limits and a
/// subscriber's start position against the topic's history. The client joins its topic here,
/// before its answer, so that it misses nothing published after; in cluster mode a subscriber
/// waits for its topic to read the stream first.
pub(crate) async fn enter(
    state: &State,
    peer: SocketAddr,
    headers: &hyper::HeaderMap,
    entry: Entry,
) -> Result<Client, Refusal> {
    let Entry {
        topic,
        identity,
        token_expires,
        start,
        form,
        over_http,
    } = entry;
    if state.options.nats_url.is_some() {
        check_subject(&topic)?;
    }
    let address = state.proxies.client_address(peer.ip(), headers);
    let admission = state.limits.admit(address)?;
    let id: Arc<str> = client_id(&identity.name).into();
    let kind = match (identity.role, form, over_http) {
        (Role::Publisher, _, _) => ClientKind::Publisher,
        (Role::Subscriber, _, true) => ClientKind::Subscriber(SubscriberKind::Sse),
        (Role::Subscriber, Form::Raw, false) => ClientKind::Subscriber(SubscriberKind::Subscriber),
        (Role::Subscriber, Form::Enveloped | Form::Named, false) => {
            ClientKind::Subscriber(SubscriberKind::Stream)
        }
    };
    let record = Arc::new(ClientRecord::new(Arc::clone(&id), kind, peer));
    let joining = Arc::clone(&record);
    let (membership, attachment) = match identity.role {
        Role::Publisher => {
            let (membership, publisher) = state.hub.join_publisher(&topic, form, joining)?;
            (membership, Attachment::Publisher(publisher))
        }
        Role::Subscriber if pattern::is_pattern(&topic) => {
            let (membership, feed) = state.hub.follow(&topic, form, joining).await?;
            (membership, Attachment::Subscriber(Feed::Pattern(feed)))
        }
        Role::Subscriber => {
            let reading = state.hub.read_stream(&topic).await?;
            let (membership, feed) = state.hub.join_subscriber(&topic, start, form, joining)?;
            drop(reading);
            (membership, Attachment::Subscriber(Feed::Topic(feed)))
        }
    };
    let connection = Connection {
        id,
        topic: Arc::clone(membership.topic()),
        options: Arc::clone(&state.options),
        shutdown: state.shutdown.clone(),
        events: state.events.clone(),
        metrics: Arc::clone(&state.metrics),
        token_expires,
        record,
    };
    Ok(Client {
        connection,
        admission,
        membership,
        attachment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid upgrade request for `/t` with these extra headers.
    fn upgrade_request(extra: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get("/t")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("a valid request")
    }

    fn reason(gate: Gate<'_>, request: &Request<()>) -> Result<Role, &'static str> {
        check(gate, request)
            .map(|checked| checked.identity.role)
            .map_err(|refusal| refusal.reason)
    }

    #[test]
    fn rules_refuse_in_order_and_a_good_request_passes() {
        let open = OriginPolicy::default();
        let strict = OriginPolicy::new(&["https://app.example.com".into()]);
        let gate = Gate {
            draining: false,
            origins: &open,
            auth: None,
        };
        let subscriber = upgrade_request(&[("pubsub", "subscriber")]);
        assert_eq!(reason(gate, &subscriber), Ok(Role::Subscriber));
        let plain = Request::get("/t").body(()).expect("request");
        assert_eq!(reason(gate, &plain), Err("not_websocket"));
        let draining = Gate {
            draining: true,
            ..gate
        };
        assert_eq!(reason(draining, &subscriber), Err("draining"));
        let browser = upgrade_request(&[("pubsub", "subscriber"), ("origin", "https://evil")]);
        let guarded = Gate {
            origins: &strict,
            ..gate
        };
        assert_eq!(reason(guarded, &browser), Err("origin"));
        assert_eq!(reason(gate, &upgrade_request(&[])), Err("bad_headers"));
        let bad_start = Request::get("/t?pubsub=subscriber&from=yesterday")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .expect("a valid request");
        assert_eq!(reason(gate, &bad_start), Err("bad_start"));
    }

    #[test]
    fn a_topic_over_the_subject_bound_is_refused_with_414() {
        use wspubsub_cluster::MAX_SUBJECT_BYTES;
        let room = MAX_SUBJECT_BYTES - wspubsub_cluster::PREFIX.len() - 1;
        assert_eq!(check_subject(&format!("/{}", "a".repeat(room))), Ok(()));
        let refusal = check_subject(&format!("/{}", "a".repeat(room + 1)))
            .expect_err("one byte over the bound");
        assert_eq!(refusal.status, StatusCode::URI_TOO_LONG);
        assert_eq!(refusal.reason, "topic_too_long");
        assert!(refusal.why.contains("3585 bytes"), "{}", refusal.why);
        assert_eq!(refusal.why.lines().count(), 1, "{}", refusal.why);
    }

    #[test]
    fn a_refusal_answers_with_its_status_and_one_line() {
        let refusal = Refusal::from(BadHandshake::UnsupportedVersion);
        let response = refusal.response();
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(response.headers()[SEC_WEBSOCKET_VERSION], "13");
        assert_eq!(Refusal::origin().response().status(), StatusCode::FORBIDDEN);
    }
}
