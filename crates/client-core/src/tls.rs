//! TLS for `wss://` URLs: rustls (`ring` provider, safe defaults) trusting the platform's root
//! certificates, or only the CA certificates the client was given.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::Connector;

use crate::ClientError;

/// The connector for a `wss://` URL: trusting `ca_pem`'s certificates when given, else the
/// platform's roots.
pub(crate) fn connector(ca_pem: Option<&[u8]>) -> Result<Connector, ClientError> {
    let config = match ca_pem {
        Some(pem) => config_trusting(given_roots(pem)?)?,
        None => platform_config()?,
    };
    Ok(Connector::Rustls(config))
}

/// The configuration trusting the platform's roots: loaded once per process, since reading
/// the system's certificate store is slow.
fn platform_config() -> Result<Arc<ClientConfig>, ClientError> {
    static PLATFORM: OnceLock<Result<Arc<ClientConfig>, ClientError>> = OnceLock::new();
    PLATFORM
        .get_or_init(|| config_trusting(platform_roots()?))
        .clone()
}

fn platform_roots() -> Result<RootCertStore, ClientError> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "skipped part of the platform's certificate store");
    }
    let mut roots = RootCertStore::empty();
    let (_added, _unparsable) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(ClientError::Tls(
            "no root certificates found on this system; give the server's CA certificate \
             (ClientOptions::ca_certificates_pem)"
                .into(),
        ));
    }
    Ok(roots)
}

fn given_roots(pem: &[u8]) -> Result<RootCertStore, ClientError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ClientError::Tls(format!("unreadable CA certificate PEM: {error}")))?;
    if certificates.is_empty() {
        return Err(ClientError::Tls(
            "no CERTIFICATE block in the CA certificate PEM".into(),
        ));
    }
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|error| ClientError::Tls(format!("unusable CA certificate: {error}")))?;
    }
    Ok(roots)
}

fn config_trusting(roots: RootCertStore) -> Result<Arc<ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ClientError::Tls(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_pems_must_hold_usable_certificates() {
        let no_pem = connector(Some(b"not a pem"));
        assert!(
            matches!(&no_pem, Err(ClientError::Tls(why)) if why.contains("no CERTIFICATE")),
            "{:?}",
            no_pem.err()
        );
        let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            connector(Some(broken)),
            Err(ClientError::Tls(why)) if why.contains("unusable CA certificate")
        ));
    }
}
