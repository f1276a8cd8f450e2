//! The JSON views of the admin API: the server, its topics, its connections.

use std::sync::Arc;
use std::time::Instant;

use hyper::header::HOST;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

use super::rates::{Rate, Totals};
use super::{json, not_found};
use crate::http::Listener;
use crate::hub::TopicView;
use crate::retention::HistorySummary;
use crate::server::State;
use crate::stats::{ClientKind, SubscriberKind, Traffic};
use crate::upgrade::{Body, query_value};

/// The answer to `GET /api/<path>`.
pub(crate) fn respond<B>(
    state: &State,
    listener: Listener,
    request: &Request<B>,
    path: &str,
) -> Response<Body> {
    let now = Instant::now();
    match path {
        "server" => ok(&server(state, listener, request)),
        "topics" => {
            let views = state.hub.views(None);
            let live: Vec<Arc<str>> = views.iter().map(|view| Arc::clone(&view.name)).collect();
            let mut topics: Vec<Topic<'_>> =
                views.iter().map(|view| topic(state, view, now)).collect();
            state.admin.rates.keep_only(&live);
            topics.sort_by(|a, b| a.name.cmp(b.name));
            ok(&Topics { topics })
        }
        "connections" => {
            let wanted = request
                .uri()
                .query()
                .and_then(|query| query_value(query, "topic"));
            let views = state.hub.views(wanted.as_deref());
            let mut connections: Vec<Client<'_>> = views.iter().flat_map(clients).collect();
            connections.sort_by(|a, b| (a.topic, a.since, a.id).cmp(&(b.topic, b.since, b.id)));
            ok(&Connections { connections })
        }
        _ => match path.strip_prefix("topics/").map(percent_decode) {
            Some(Some(name)) => {
                let name = format!("/{name}");
                match state.hub.views(Some(&name)).first() {
                    Some(view) => ok(&topic(state, view, now)),
                    None => not_found(&format!("no topic {name}")),
                }
            }
            Some(None) => not_found("a topic name that is not percent-encoded UTF-8"),
            None => not_found("no such admin API path"),
        },
    }
}

/// A 200 with `body` as JSON.
fn ok(body: &impl Serialize) -> Response<Body> {
    match serde_json::to_vec(body) {
        Ok(bytes) => json(StatusCode::OK, bytes),
        // Our views are plain structs of numbers and strings: this cannot fail.
        Err(error) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "error": error.to_string() })
                .to_string()
                .into_bytes(),
        ),
    }
}

/// `GET /api/server`.
#[derive(Debug, Serialize)]
struct Server {
    /// The server's version.
    version: &'static str,
    /// Where topics are: `ws://host:port` (or `wss://`) to which a topic's path is appended.
    ws_base: String,
    /// Live topics.
    topics: usize,
    /// Pattern subscribers (each also counted among the connections).
    patterns: usize,
    /// Connected clients.
    connections: usize,
    /// Whether the server is draining.
    draining: bool,
}

fn server<B>(state: &State, listener: Listener, request: &Request<B>) -> Server {
    Server {
        version: env!("CARGO_PKG_VERSION"),
        ws_base: ws_base(state, listener, request),
        topics: state.hub.topic_count(),
        patterns: state.hub.follower_count(),
        connections: state.limits.connections(),
        draining: state.shutdown.is_cancelled(),
    }
}

/// The main listener's WebSocket URL as the requester can reach it: the request's own host
/// on the main listener; on the admin listener the main listener's address, or, when that is
/// every interface, the host the request named with the main listener's port.
fn ws_base<B>(state: &State, listener: Listener, request: &Request<B>) -> String {
    let scheme = if state.tls.is_some() { "wss" } else { "ws" };
    let host = request
        .headers()
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        });
    let main = state.admin.main_addr;
    let authority = match (listener, main, host) {
        (Listener::Main, _, Some(host)) => host.to_owned(),
        (_, Some(main), _) if !main.ip().is_unspecified() => main.to_string(),
        (_, Some(main), Some(host)) => format!("{}:{}", host_name(host), main.port()),
        (_, Some(main), None) => main.to_string(),
        (_, None, host) => host.unwrap_or_default().to_owned(),
    };
    format!("{scheme}://{authority}")
}

/// The host part of a `Host` header (`[::1]:9090` → `[::1]`, `example.com:9090` →
/// `example.com`).
fn host_name(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => &host[..colon],
        _ => host,
    }
}

/// `GET /api/topics`.
#[derive(Debug, Serialize)]
struct Topics<'a> {
    topics: Vec<Topic<'a>>,
}

/// One topic.
#[derive(Debug, Serialize)]
struct Topic<'a> {
    /// Its name (its path).
    name: &'a str,
    /// Publishers connected.
    publishers: usize,
    /// Subscribers connected, by kind (every kind listed, zero or not).
    subscribers: serde_json::Map<String, serde_json::Value>,
    /// Messages the topic took (from its publishers, or in cluster mode from the stream).
    messages_in: u64,
    /// Payload bytes of those.
    bytes_in: u64,
    /// Messages written to subscribers (one per subscriber reached), those that left included.
    messages_out: u64,
    /// Bytes written to subscribers, WebSocket framing included.
    bytes_out: u64,
    /// Per-second rates over the last few seconds.
    rates: Rate,
    /// What its history holds.
    history: History,
}

/// A topic's history.
#[derive(Debug, Serialize)]
struct History {
    messages: usize,
    /// Frame bytes.
    bytes: usize,
    oldest_seq: Option<u64>,
    newest_seq: Option<u64>,
}

impl From<HistorySummary> for History {
    fn from(summary: HistorySummary) -> Self {
        History {
            messages: summary.messages,
            bytes: summary.bytes,
            oldest_seq: summary.oldest_seq,
            newest_seq: summary.newest_seq,
        }
    }
}

fn topic<'a>(state: &State, view: &'a TopicView, now: Instant) -> Topic<'a> {
    let mut delivered = view.retired;
    let mut publishers = 0;
    let mut by_kind = vec![0usize; SubscriberKind::ALL.len()];
    for client in &view.clients {
        match client.kind {
            ClientKind::Publisher => publishers += 1,
            ClientKind::Subscriber(kind) => {
                if let Some(index) = SubscriberKind::ALL.iter().position(|k| *k == kind) {
                    by_kind[index] += 1;
                }
                delivered += client.delivered();
            }
        }
    }
    let subscribers = SubscriberKind::ALL
        .iter()
        .zip(by_kind)
        .map(|(kind, count)| (kind.as_str().to_owned(), count.into()))
        .collect();
    let taken: Traffic = view.counters.taken();
    let totals = Totals { taken, delivered };
    let rates = state
        .admin
        .rates
        .sample(&view.name, view.counters.started, now, totals);
    Topic {
        name: &view.name,
        publishers,
        subscribers,
        messages_in: taken.messages,
        bytes_in: taken.bytes,
        messages_out: delivered.messages,
        bytes_out: delivered.bytes,
        rates,
        history: view.history.summary().into(),
    }
}

/// `GET /api/connections`.
#[derive(Debug, Serialize)]
struct Connections<'a> {
    connections: Vec<Client<'a>>,
}

/// One connected client.
#[derive(Debug, Serialize)]
struct Client<'a> {
    /// Its id, as logs and events name it.
    id: &'a str,
    /// Its topic.
    topic: &'a str,
    /// `publisher`, or the kind of subscriber.
    role: &'static str,
    /// The address its TCP connection came from.
    remote: String,
    /// When it was admitted (unix µs).
    since: u64,
    /// Bytes handed to it and not yet written to its socket.
    pending_bytes: u64,
    /// Messages written to it.
    messages_out: u64,
    /// Bytes written to it.
    bytes_out: u64,
}

fn clients(view: &TopicView) -> impl Iterator<Item = Client<'_>> {
    view.clients.iter().map(|client| {
        let delivered = client.delivered();
        Client {
            id: &client.id,
            topic: &view.name,
            role: client.kind.as_str(),
            remote: client.peer.to_string(),
            since: client.since,
            pending_bytes: client.pending(),
            messages_out: delivered.messages,
            bytes_out: delivered.bytes,
        }
    })
}

/// `%XX`-decodes a path segment; `None` when it is not valid UTF-8 afterwards or holds a bad
/// escape.
fn percent_decode(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            decoded.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            index += 3;
        } else {
            decoded.push(byte);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_percent_decoded() {
        assert_eq!(percent_decode("chat%2Froom").as_deref(), Some("chat/room"));
        assert_eq!(percent_decode("a/b").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("%25").as_deref(), Some("%"));
        assert_eq!(percent_decode("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%+1"), None, "hex digits only");
        assert_eq!(percent_decode("%FF"), None, "not UTF-8");
    }

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("example.com:9090"), "example.com");
        assert_eq!(host_name("[::1]:9090"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("example.com"), "example.com");
    }
}
