//! TLS for the `secure` scenario: a self-signed certificate for 127.0.0.1, made once per bench
//! run, and the rustls client configuration (ring provider) that trusts it and nothing else.

use std::sync::Arc;

use anyhow::Context;
use rustls::client::Resumption;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// A certificate and its private key, as PEM text.
pub(crate) struct Identity {
    /// The certificate (self-signed, so also its own root).
    pub(crate) cert_pem: String,
    /// The certificate's private key (PKCS#8).
    pub(crate) key_pem: String,
}

/// A fresh self-signed certificate for `127.0.0.1`, where every server under test listens.
pub(crate) fn self_signed() -> anyhow::Result<Identity> {
    let pair = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .context("generate a self-signed certificate")?;
    Ok(Identity {
        cert_pem: pair.cert.pem(),
        key_pem: pair.signing_key.serialize_pem(),
    })
}

/// A client configuration trusting only the certificates in `cert_pem`. Session resumption is
/// off, so that every bench connection makes a full handshake, as distinct clients would.
pub(crate) fn client_config(cert_pem: &str) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots
            .add(certificate.context("read the certificate PEM")?)
            .context("trust the certificate")?;
    }
    anyhow::ensure!(!roots.is_empty(), "no certificate in the certificate PEM");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_trusts_the_generated_certificate_only() -> anyhow::Result<()> {
        let identity = self_signed()?;
        assert!(identity.key_pem.contains("PRIVATE KEY"));
        client_config(&identity.cert_pem)?;
        assert!(client_config("no certificate here").is_err());
        Ok(())
    }
}
