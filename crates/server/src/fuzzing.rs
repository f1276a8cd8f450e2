//! Entry points for fuzz targets (cargo feature `fuzzing`, off by default; not a stable API):
//! the admission decision on an upgrade request and the token and query parsing, all without
//! I/O, so that a fuzzer reaches exactly the code a request from the network reaches.

use hyper::Request;
use wspubsub_protocol::Role;

use crate::admission::{Gate, check};
use crate::auth::{self, Authenticator, BadKey, ClaimRules};
use crate::options::Options;
use crate::origin::OriginPolicy;
use crate::upgrade;

/// What admission decided on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Upgraded (101) as this role, with this client name.
    Admitted {
        /// The role the request asked for.
        role: Role,
        /// The client's name (may be empty).
        name: String,
    },
    /// Refused before the upgrade.
    Refused {
        /// The HTTP status of the answer.
        status: u16,
        /// The metric's `reason` label.
        reason: &'static str,
        /// The one-line body.
        why: String,
    },
}

/// The admission rules of a server with some options, built once (keys parsed) and applied to
/// any number of requests.
pub struct Gatekeeper {
    origins: OriginPolicy,
    auth: Option<Authenticator>,
}

impl Gatekeeper {
    /// The rules `options` set: allowed origins, and token auth with its key, audiences and
    /// issuers. An unusable key is an error, as in [`crate::Server::bind`].
    pub fn new(options: &Options) -> Result<Self, BadKey> {
        let rules = ClaimRules {
            audiences: options.jwt_audience.clone(),
            issuers: options.jwt_issuer.clone(),
        };
        let auth = options
            .auth
            .as_ref()
            .map(|key| Authenticator::new(key, &rules))
            .transpose()?;
        Ok(Gatekeeper {
            origins: OriginPolicy::new(&options.allowed_origins),
            auth,
        })
    }

    /// The decision on `request` of a server that is not draining and has room for every
    /// client (the connection and topic limits need live counts, so they are not applied).
    pub fn decide(&self, request: &Request<()>) -> Decision {
        let gate = Gate {
            draining: false,
            origins: &self.origins,
            auth: self.auth.as_ref(),
        };
        match check(gate, request) {
            Ok(checked) => Decision::Admitted {
                role: checked.identity.role,
                name: checked.identity.name,
            },
            Err(refusal) => Decision::Refused {
                status: refusal.status.as_u16(),
                reason: refusal.reason,
                why: refusal.why,
            },
        }
    }
}

/// The token of a request (`Authorization: Bearer`, else `?token=`, percent-decoded).
pub fn token(request: &Request<()>) -> Option<String> {
    auth::token_of(request)
}

/// The first value of `key` in a query string, percent-decoded.
pub fn query_value(query: &str, key: &str) -> Option<String> {
    upgrade::query_value(query, key)
}

/// Whether a token's topic `pattern` (`*` one segment, `**` the rest) covers `topic`.
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    crate::pattern::covers(pattern, topic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthKey;

    #[test]
    fn decisions_follow_the_server_rules() {
        let options = Options {
            auth: Some(AuthKey::Hs256(b"secret".to_vec())),
            ..Options::default()
        };
        let gatekeeper = Gatekeeper::new(&options).expect("a usable key");
        let request = Request::get("/t?pubsub=subscriber&token=x%2Ey")
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .expect("a request");
        assert_eq!(token(&request).as_deref(), Some("x.y"));
        match gatekeeper.decide(&request) {
            Decision::Refused { status, reason, .. } => {
                assert_eq!((status, reason), (401, "token_invalid"));
            }
            other => panic!("a garbage token was admitted: {other:?}"),
        }
        let open = Gatekeeper::new(&Options::default()).expect("no key");
        assert_eq!(
            open.decide(&request),
            Decision::Admitted {
                role: Role::Subscriber,
                name: String::new()
            }
        );
        assert_eq!(query_value("a=1&b=%20", "b").as_deref(), Some(" "));
        assert!(topic_matches("/a/*", "/a/b"));
    }
}
