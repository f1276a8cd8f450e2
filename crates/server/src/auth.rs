//! Token auth (off unless configured): a JWT from `Authorization: Bearer` or `?token=`, checked
//! before the upgrade. Its `exp` is required and ends the connection (1008) when it passes;
//! its `publish` and `subscribe` claims list the topic patterns the bearer may use, where `*`
//! matches one path segment and `**` the rest (a pattern subscription needs a claim that covers
//! every topic the pattern reaches, see [`crate::pattern`]). With audiences or issuers configured, `aud` and
//! `iss` are required and must name one of them; without, a token's `aud` is not checked (as
//! most servers do, so tokens from identity providers that always set it work).
//!
//! Nothing here logs or echoes a token: refusals say what was wrong, never what was sent.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::header::AUTHORIZATION;
use hyper::{Request, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use wspubsub_protocol::Role;

use crate::pattern;
use crate::upgrade::query_value;

/// The query parameter that carries a token where headers cannot be set (browsers).
pub(crate) const TOKEN_QUERY: &str = "token";

/// The key tokens are verified with.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthKey {
    /// HMAC-SHA256 with this shared secret.
    Hs256(Vec<u8>),
    /// RSA-SHA256 with this PEM public key.
    Rs256(Vec<u8>),
    /// ECDSA P-256 SHA-256 with this PEM public key.
    Es256(Vec<u8>),
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material (secrets above all).
        match self {
            AuthKey::Hs256(_) => f.write_str("Hs256(<secret>)"),
            AuthKey::Rs256(_) => f.write_str("Rs256(<public key>)"),
            AuthKey::Es256(_) => f.write_str("Es256(<public key>)"),
        }
    }
}

/// A token key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BadKey {
    /// The key cannot verify tokens of its algorithm (not a PEM, a key of another kind, ...).
    #[error("unusable token key: {0}")]
    Unusable(String),
    /// A key was given to a server that started without token auth.
    #[error("this server was started without token auth; restart it with a key to require tokens")]
    AuthOff,
}

/// Which `aud` and `iss` claims tokens must carry; empty lists check nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClaimRules {
    /// Accepted audiences (`--jwt-audience`).
    pub(crate) audiences: Vec<String>,
    /// Accepted issuers (`--jwt-issuer`).
    pub(crate) issuers: Vec<String>,
}

/// Verifies tokens and what they allow.
pub(crate) struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

/// Why a request was refused by auth.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Denied {
    #[error("missing token: send `Authorization: Bearer <token>` or `?token=`")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("the token does not allow this topic for this role")]
    Forbidden,
}

impl Denied {
    /// What was wrong, as the metrics label the refusal.
    pub(crate) fn rule(&self) -> &'static str {
        match self {
            Denied::Missing => "token_missing",
            Denied::Invalid(_) => "token_invalid",
            Denied::Forbidden => "token_forbids_topic",
        }
    }

    /// 401 for no or a bad token, 403 for a good token that does not cover the request.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Denied::Missing | Denied::Invalid(_) => StatusCode::UNAUTHORIZED,
            Denied::Forbidden => StatusCode::FORBIDDEN,
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    exp: u64,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    subscribe: Vec<String>,
}

impl Authenticator {
    /// An authenticator for `key` that also checks the claims `rules` name.
    pub(crate) fn new(key: &AuthKey, rules: &ClaimRules) -> Result<Self, BadKey> {
        let (key, algorithm) = match key {
            AuthKey::Hs256(secret) => (DecodingKey::from_secret(secret), Algorithm::HS256),
            AuthKey::Rs256(pem) => (
                DecodingKey::from_rsa_pem(pem).map_err(|e| BadKey::Unusable(e.to_string()))?,
                Algorithm::RS256,
            ),
            AuthKey::Es256(pem) => (
                DecodingKey::from_ec_pem(pem).map_err(|e| BadKey::Unusable(e.to_string()))?,
                Algorithm::ES256,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        let mut required = vec!["exp"];
        if rules.audiences.is_empty() {
            // jsonwebtoken refuses any `aud` when no audience is set; we ignore it instead.
            validation.validate_aud = false;
        } else {
            validation.set_audience(&rules.audiences);
            required.push("aud");
        }
        if !rules.issuers.is_empty() {
            validation.set_issuer(&rules.issuers);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(Authenticator { key, validation })
    }

    /// Checks the request's token for `role` on `topic` (a pattern subscription needs a claim
    /// covering every topic the pattern reaches); returns how long it stays valid
    /// (`Duration::MAX` for an `exp` too far away to matter).
    pub(crate) fn authorize<B>(
        &self,
        request: &Request<B>,
        role: Role,
        topic: &str,
    ) -> Result<Duration, Denied> {
        let token = token_of(request).ok_or(Denied::Missing)?;
        let token = token.as_str();
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|error| Denied::Invalid(describe(error.kind())))?
            .claims;
        let patterns = match role {
            Role::Publisher => &claims.publish,
            Role::Subscriber => &claims.subscribe,
        };
        if !patterns.iter().any(|claim| pattern::covers(claim, topic)) {
            return Err(Denied::Forbidden);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Duration::from_secs(claims.exp).saturating_sub(now))
    }
}

/// What went wrong with a token, naming the claim that failed, without the token's contents
/// (claim names come from our own validation rules, never from the token).
fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "expired (exp)".into(),
        ErrorKind::ImmatureSignature => "not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "wrong audience (aud)".into(),
        ErrorKind::InvalidIssuer => "wrong issuer (iss)".into(),
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("missing required claim ({claim})"),
        ErrorKind::InvalidAlgorithm => "wrong algorithm".into(),
        ErrorKind::InvalidClaimFormat(claim) => format!("malformed claim ({claim})"),
        ErrorKind::Json(_) => "malformed claims".into(),
        _ => "malformed token".into(),
    }
}

/// The token of a request: `Authorization: Bearer`, else the `token` query parameter
/// (percent-decoded like every query value).
pub(crate) fn token_of<B>(request: &Request<B>) -> Option<String> {
    if let Some(value) = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return value
            .strip_prefix("Bearer ")
            .map(|token| token.trim().to_owned());
    }
    query_value(request.uri().query()?, TOKEN_QUERY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_print() {
        let key = AuthKey::Hs256(b"hunter2".to_vec());
        assert!(!format!("{key:?}").contains("hunter2"));
    }

    #[test]
    fn tokens_come_from_the_header_or_the_query() {
        let header = Request::get("/t")
            .header("authorization", "Bearer abc")
            .body(())
            .expect("request");
        assert_eq!(token_of(&header).as_deref(), Some("abc"));
        let query = Request::get("/t?pubsub=subscriber&token=xyz")
            .body(())
            .expect("request");
        assert_eq!(token_of(&query).as_deref(), Some("xyz"));
        let encoded = Request::get("/t?token=a%2Eb%2Ec")
            .body(())
            .expect("request");
        assert_eq!(
            token_of(&encoded).as_deref(),
            Some("a.b.c"),
            "percent-decoded"
        );
        let basic = Request::get("/t")
            .header("authorization", "Basic abc")
            .body(())
            .expect("request");
        assert_eq!(token_of(&basic), None);
    }
}
