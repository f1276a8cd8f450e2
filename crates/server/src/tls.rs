//! TLS on the main listener (`wss://`): a PEM certificate chain and private key in, a rustls
//! server configuration out. rustls runs on the `ring` provider with its safe defaults (TLS 1.2 and 1.3).

use std::fmt;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What the server presents to TLS clients: a PEM certificate chain (leaf first) and the PEM
/// private key of its leaf (PKCS#8, PKCS#1 or SEC1).
#[derive(Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    cert_chain: Vec<u8>,
    private_key: Vec<u8>,
}

impl TlsIdentity {
    /// An identity from the PEM text of a certificate chain and of its private key; both are
    /// checked when the server binds.
    pub fn from_pem(cert_chain: impl Into<Vec<u8>>, private_key: impl Into<Vec<u8>>) -> Self {
        TlsIdentity {
            cert_chain: cert_chain.into(),
            private_key: private_key.into(),
        }
    }
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("TlsIdentity")
            .field(
                "cert_chain",
                &format_args!("<{} bytes of PEM>", self.cert_chain.len()),
            )
            .field("private_key", &format_args!("<redacted>"))
            .finish()
    }
}

/// Why a [`TlsIdentity`] cannot be served. Messages never include key material.
#[derive(Debug, thiserror::Error)]
pub enum BadTls {
    /// The certificate PEM holds no certificate, or an unreadable one.
    #[error("unusable TLS certificate: {0}")]
    Certificate(String),
    /// The private key PEM holds no key, or an unreadable one.
    #[error("unusable TLS private key: {0}")]
    PrivateKey(String),
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("unusable TLS certificate and key: {0}")]
    Config(#[source] rustls::Error),
    /// A certificate was given to a server that started without TLS.
    #[error("this server was started without TLS; restart it with a certificate to serve wss://")]
    NotServingTls,
}

/// Builds the configuration accepted TCP connections are wrapped in TLS with.
pub(crate) fn server_config(identity: &TlsIdentity) -> Result<ServerConfig, BadTls> {
    let chain = CertificateDer::pem_slice_iter(&identity.cert_chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| BadTls::Certificate(error.to_string()))?;
    if chain.is_empty() {
        return Err(BadTls::Certificate(
            "no CERTIFICATE block in the PEM".into(),
        ));
    }
    // The pem error names the problem (missing section, bad base64), never the key's bytes.
    let key = PrivateKeyDer::from_pem_slice(&identity.private_key)
        .map_err(|error| BadTls::PrivateKey(error.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(BadTls::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(BadTls::Config)?;
    // WebSocket upgrades are HTTP/1.1 requests.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated() -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("generate")
    }

    #[test]
    fn a_generated_pair_is_accepted() {
        let pair = generated();
        let identity = TlsIdentity::from_pem(pair.cert.pem(), pair.signing_key.serialize_pem());
        assert!(server_config(&identity).is_ok());
    }

    #[test]
    fn unusable_pems_say_which_part_is_wrong_without_echoing_the_key() {
        let pair = generated();
        let key = pair.signing_key.serialize_pem();
        let no_cert = TlsIdentity::from_pem("not a pem", key.clone());
        assert!(matches!(
            server_config(&no_cert),
            Err(BadTls::Certificate(_))
        ));
        let no_key = TlsIdentity::from_pem(pair.cert.pem(), "not a key");
        assert!(matches!(server_config(&no_key), Err(BadTls::PrivateKey(_))));
        let other_key = generated().signing_key.serialize_pem();
        let mismatched = TlsIdentity::from_pem(pair.cert.pem(), other_key.clone());
        let error = server_config(&mismatched).expect_err("a key of another certificate");
        assert!(matches!(error, BadTls::Config(_)), "{error}");
        let secret_line = other_key.lines().nth(1).expect("a base64 line");
        assert!(!error.to_string().contains(secret_line));
        assert!(!format!("{mismatched:?}").contains(secret_line));
    }
}
