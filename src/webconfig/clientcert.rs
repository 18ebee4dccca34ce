//! Client certificates: `client_auth_type`, the client CA (`client_ca_file` or `client_ca`) and
//! `client_allowed_sans`, as the exporter-toolkit (that is, Go's `crypto/tls`) gives them their
//! meaning.
//!
//! - `VerifyClientCertIfGiven` without a client CA verifies a certificate, when one is
//!   presented, against the system's roots, as Go does, and says so at start (a WARN): any
//!   certificate a public CA issued for client authentication passes.
//! - `RequireAndVerifyClientCert` without a client CA is refused unless `client_allowed_sans`
//!   narrows it: the system's roots then sign, and the SANs choose.
//! - `client_allowed_sans` lets a verified certificate through only when one of its subject
//!   alternative names (DNS names, e-mail addresses, IP addresses, URIs, written as Go writes
//!   them) is in the list, whatever signed it.
//! - A client CA certificate that is self-signed, a CA (`CA:TRUE`) and made for client
//!   authentication is the shape of a certificate meant to be presented by the client itself;
//!   rustls refuses a CA certificate as a client's own (`CaUsedAsEndEntity`, where Go accepts
//!   it), so such a file gets a WARN naming it.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectAltName};

use super::tls::{fail, Failure};

/// id-kp-clientAuth (RFC 5280, 4.2.1.12).
const CLIENT_AUTH: x509_cert::der::oid::ObjectIdentifier =
    x509_cert::der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

/// The client CA as configured: the key it came from, a name for messages (the file's path,
/// or the key) and its PEM.
pub(super) struct ClientCa {
    pub(super) key: &'static str,
    pub(super) name: String,
    pub(super) pem: Vec<u8>,
}

/// How clients are verified: the verifier (`None`: no certificate is asked for) and whether a
/// certificate is required.
pub(super) struct ClientAuth {
    pub(super) verifier: Option<Arc<dyn ClientCertVerifier>>,
    pub(super) required: bool,
}

/// The client verification `auth_type`, the CA and the SANs describe; what deserves a word at
/// start is added to `warnings`.
pub(super) fn client_auth(
    auth_type: &str,
    ca: Option<ClientCa>,
    sans: Option<Vec<String>>,
    provider: &Arc<CryptoProvider>,
    warnings: &mut Vec<String>,
) -> Result<ClientAuth, Failure> {
    let (verify, required) = match auth_type {
        "" | "NoClientCert" => (false, false),
        "VerifyClientCertIfGiven" => (true, false),
        "RequireAndVerifyClientCert" => (true, true),
        "RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert" => {
            return Err(fail(
                "client_auth_type",
                format!("{auth_type} accepts certificates it does not verify, which credwatch does not: use VerifyClientCertIfGiven or RequireAndVerifyClientCert"),
            ))
        }
        other => {
            return Err(fail(
                "client_auth_type",
                format!("invalid ClientAuth {other:?} (NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"),
            ))
        }
    };
    if !verify {
        if let Some(ca) = ca {
            return Err(fail(
                ca.key,
                "client CAs are configured without a client auth policy: set client_auth_type to VerifyClientCertIfGiven or RequireAndVerifyClientCert",
            ));
        }
        if sans.is_some() {
            warnings.push("tls_server_config.client_allowed_sans: has no effect with client_auth_type NoClientCert, which asks for no certificate".into());
        }
        return Ok(ClientAuth {
            verifier: None,
            required: false,
        });
    }
    let roots = match ca {
        Some(ca) => configured_roots(&ca, warnings)?,
        None => {
            if required && sans.is_none() {
                return Err(fail(
                    "client_ca_file",
                    "RequireAndVerifyClientCert needs the CA that signs client certificates (or client_allowed_sans to choose among certificates the system's roots sign)",
                ));
            }
            let roots = system_roots();
            warnings.push(format!(
                "tls_server_config.client_auth_type: {auth_type} without client_ca_file verifies client certificates against the system's {} root certificates, as Go does: set client_ca_file to the CA that signs your clients",
                roots.len()
            ));
            if roots.is_empty() {
                if required {
                    return Err(fail("client_ca_file", "is not set and the system has no root certificates to verify clients against"));
                }
                warnings.push("tls_server_config.client_auth_type: the system has no root certificates, so no client certificate is asked for".into());
                return Ok(ClientAuth {
                    verifier: None,
                    required: false,
                });
            }
            roots
        }
    };
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = if required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    let verifier = builder
        .build()
        .map_err(|e| fail("client_ca_file", format!("cannot verify with it: {e}")))?;
    let verifier: Arc<dyn ClientCertVerifier> = match sans {
        Some(allowed) => Arc::new(AllowedSans {
            inner: verifier,
            allowed,
        }),
        None => verifier,
    };
    Ok(ClientAuth {
        verifier: Some(verifier),
        required,
    })
}

/// The roots the client CA holds; a certificate that cannot be a client's own gets a warning.
fn configured_roots(ca: &ClientCa, warnings: &mut Vec<String>) -> Result<RootCertStore, Failure> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca.pem) {
        let cert = cert.map_err(|e| fail(ca.key, format!("not valid PEM: {e}")))?;
        if let Some(subject) = client_shaped_ca(&cert) {
            warnings.push(format!(
                "tls_server_config.{}: {}: the certificate {subject} is self-signed, a CA (CA:TRUE) and made for client authentication: a client presenting this certificate itself cannot connect, since rustls refuses a CA certificate as a client's own (CaUsedAsEndEntity); sign a client certificate (CA:FALSE) with it and give the client that one",
                ca.key, ca.name
            ));
        }
        roots
            .add(cert)
            .map_err(|e| fail(ca.key, format!("unusable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(fail(ca.key, "is empty: it holds no PEM certificate"));
    }
    Ok(roots)
}

/// The system's roots (rustls-native-certs: `SSL_CERT_FILE`, `SSL_CERT_DIR` or the system's
/// store); those that do not parse are skipped.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots
}

/// The subject of `cert` when it is self-signed, CA:TRUE and carries the clientAuth usage.
fn client_shaped_ca(cert: &CertificateDer<'_>) -> Option<String> {
    let cert = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    let tbs = cert.tbs_certificate();
    let (_, constraints) = tbs.get_extension::<BasicConstraints>().ok()??;
    let (_, usage) = tbs.get_extension::<ExtendedKeyUsage>().ok()??;
    let self_signed = tbs.issuer() == tbs.subject();
    (self_signed && constraints.ca && usage.0.contains(&CLIENT_AUTH))
        .then(|| tbs.subject().to_string())
}

/// The subject alternative names of `cert` as Go writes them.
fn sans(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok(cert) = x509_cert::Certificate::from_der(cert.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some((_, names))) = cert.tbs_certificate().get_extension::<SubjectAltName>() else {
        return Vec::new();
    };
    names
        .0
        .iter()
        .filter_map(|name| match name {
            GeneralName::DnsName(s)
            | GeneralName::Rfc822Name(s)
            | GeneralName::UniformResourceIdentifier(s) => Some(s.to_string()),
            GeneralName::IpAddress(octets) => ip(octets.as_bytes()),
            _ => None,
        })
        .collect()
}

/// An iPAddress SAN as Go's `net.IP.String()` writes it (an IPv4-mapped address as IPv4).
fn ip(octets: &[u8]) -> Option<String> {
    if let Ok(v4) = <[u8; 4]>::try_from(octets) {
        return Some(Ipv4Addr::from(v4).to_string());
    }
    let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(octets).ok()?);
    Some(match v6.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => v6.to_string(),
    })
}

/// A verifier that also requires one of the certificate's SANs to be allowed.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if sans(end_entity)
            .iter()
            .any(|san| self.allowed.contains(san))
        {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_sans_are_written_as_go_writes_them() {
        assert_eq!(ip(&[127, 0, 0, 1]).as_deref(), Some("127.0.0.1"));
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(ip(&mapped).as_deref(), Some("10.0.0.1"));
        let mut loopback = [0u8; 16];
        loopback[15] = 1;
        assert_eq!(ip(&loopback).as_deref(), Some("::1"));
        assert_eq!(ip(&[1, 2, 3]), None);
    }
}
