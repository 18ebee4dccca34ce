//! The rustls client configuration: the system's trust roots, plus a connection's `ca_file`.
//!
//! rustls on `ring` rather than aws-lc-rs: it builds in a fraction of the
//! time on a small CI machine, and credwatch needs nothing aws-lc-rs alone offers.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// The system's trust roots, read once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::debug!(%error, "skipping an unreadable system trust root");
        }
        found.certs
    })
}

/// A client configuration trusting the system roots and `extra_roots`.
pub(super) fn client_config(
    extra_roots: Option<&[CertificateDer<'static>]>,
) -> Result<ClientConfig, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(system_roots().iter().cloned());
    for cert in extra_roots.unwrap_or_default() {
        roots.add(cert.clone())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The client speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
