//! JWTs for tests of token auth: signed with a secret or a private key, with the claims the
//! server reads (`exp`, `publish`, `subscribe`, and `aud`/`iss` when it checks them).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

/// Makes tokens: a secret or private key, and the algorithm its tokens' header names.
pub struct Signer {
    algorithm: Algorithm,
    key: EncodingKey,
}

impl Signer {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> Signer {
        Signer {
            algorithm: Algorithm::HS256,
            key: EncodingKey::from_secret(secret),
        }
    }

    /// RS256 with a PEM RSA private key.
    pub fn rs256(pem: &[u8]) -> Signer {
        Signer {
            algorithm: Algorithm::RS256,
            key: EncodingKey::from_rsa_pem(pem).expect("an RSA private key"),
        }
    }

    /// ES256 with a PKCS#8 PEM P-256 private key.
    pub fn es256(pem: &[u8]) -> Signer {
        Signer {
            algorithm: Algorithm::ES256,
            key: EncodingKey::from_ec_pem(pem).expect("a P-256 private key"),
        }
    }

    /// A token expiring at `exp` (seconds since the epoch) that allows publishing to the
    /// `publish` patterns and subscribing to the `subscribe` ones.
    pub fn token(&self, exp: u64, publish: &[&str], subscribe: &[&str]) -> String {
        self.token_with(exp, publish, subscribe, &[])
    }

    /// Like [`Signer::token`], with these string claims added (`aud`, `iss`, ...), as an
    /// identity provider would set them.
    pub fn token_with(
        &self,
        exp: u64,
        publish: &[&str],
        subscribe: &[&str],
        extra: &[(&str, &str)],
    ) -> String {
        let mut claims =
            serde_json::json!({ "exp": exp, "publish": publish, "subscribe": subscribe });
        for &(name, value) in extra {
            claims[name] = value.into();
        }
        encode(&Header::new(self.algorithm), &claims, &self.key).expect("encode a token")
    }
}

/// Seconds since the epoch, now: the clock tokens' `exp` is set on.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
}

/// A fresh P-256 key pair, for ES256 tokens: `serialize_pem()` signs (with
/// [`Signer::es256`]), `public_key_pem()` is what the server verifies with.
pub fn p256() -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("generate a P-256 key")
}
