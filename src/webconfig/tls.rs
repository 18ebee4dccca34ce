//! `tls_server_config`: the rustls server configuration of credwatch's own endpoints.
//!
//! The exporter-toolkit's names are kept: Go's TLS version names (`TLS12`, `TLS13`), Go's
//! cipher-suite names (which, as in Go, choose among the TLS 1.2 suites; TLS 1.3's are always
//! on), Go's curve names, and Go's `client_auth_type` values. What rustls cannot do is refused
//! by name: TLS 1.0 and 1.1, the CBC suites, P-521, accepting a client certificate without
//! verifying it (`RequestClientCert`, `RequireAnyClientCert`), and `client_allowed_sans`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use serde::Deserialize;

type Failure = (String, String);

fn fail(key: &str, message: impl Into<String>) -> Failure {
    (format!("tls_server_config.{key}"), message.into())
}

/// `tls_server_config` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsFile {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    cert: Option<String>,
    key: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_ca: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

/// Reads the PEM that `file` (relative to `dir`, and then added to `read`) or `inline` holds;
/// exactly one must be set.
fn pem(
    dir: &Path,
    read: &mut Vec<PathBuf>,
    file_key: &str,
    file: Option<PathBuf>,
    inline_key: &str,
    inline: Option<String>,
) -> Result<Option<Vec<u8>>, Failure> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(fail(
            file_key,
            format!("set {file_key} or {inline_key}, not both"),
        )),
        (Some(file), None) => {
            let path = dir.join(file);
            let bytes = std::fs::read(&path)
                .map_err(|e| fail(file_key, format!("cannot read {}: {e}", path.display())))?;
            read.push(path);
            Ok(Some(bytes))
        }
        (None, Some(inline)) => Ok(Some(inline.into_bytes())),
        (None, None) => Ok(None),
    }
}

fn version(key: &str, name: &str) -> Result<&'static SupportedProtocolVersion, Failure> {
    match name {
        "TLS12" => Ok(&rustls::version::TLS12),
        "TLS13" => Ok(&rustls::version::TLS13),
        "TLS10" | "TLS11" => Err(fail(
            key,
            format!("{name} is not supported: credwatch speaks TLS 1.2 and 1.3 (TLS12, TLS13)"),
        )),
        other => Err(fail(
            key,
            format!("unknown TLS version {other:?} (TLS12 or TLS13)"),
        )),
    }
}

/// The ring provider restricted to the suites and curves the file names.
fn provider(file: &TlsFile) -> Result<CryptoProvider, Failure> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = &file.cipher_suites {
        let all = provider.cipher_suites.clone();
        let mut chosen: Vec<_> = all
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        for name in names {
            // Go also accepts the ChaCha20 suites without their `_SHA256`.
            let standard = if name.ends_with("_CHACHA20_POLY1305") {
                format!("{name}_SHA256")
            } else {
                name.clone()
            };
            let suite = all
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS12)
                .find(|s| format!("{:?}", s.suite()) == standard)
                .ok_or_else(|| {
                    let offered: Vec<String> = all
                        .iter()
                        .filter(|s| s.version() == &rustls::version::TLS12)
                        .map(|s| format!("{:?}", s.suite()))
                        .collect();
                    fail(
                        "cipher_suites",
                        format!(
                            "{name:?} is not a TLS 1.2 suite rustls offers (one of {})",
                            offered.join(", ")
                        ),
                    )
                })?;
            if !chosen.iter().any(|c| c.suite() == suite.suite()) {
                chosen.push(*suite);
            }
        }
        provider.cipher_suites = chosen;
    }
    if let Some(names) = &file.curve_preferences {
        let all = provider.kx_groups.clone();
        let mut chosen = Vec::new();
        for name in names {
            let wanted = match name.as_str() {
                "X25519" => rustls::NamedGroup::X25519,
                "CurveP256" => rustls::NamedGroup::secp256r1,
                "CurveP384" => rustls::NamedGroup::secp384r1,
                other => {
                    return Err(fail(
                        "curve_preferences",
                        format!("{other:?} is not supported (X25519, CurveP256 or CurveP384)"),
                    ))
                }
            };
            if let Some(group) = all.iter().find(|g| g.name() == wanted) {
                chosen.push(*group);
            }
        }
        provider.kx_groups = chosen;
    }
    Ok(provider)
}

/// The rustls configuration `file` describes, and whether it requires client certificates;
/// the files it reads are added to `read`.
pub(super) fn build(
    file: TlsFile,
    dir: &Path,
    read: &mut Vec<PathBuf>,
) -> Result<(ServerConfig, bool), (String, String)> {
    if file.client_allowed_sans.is_some() {
        return Err(fail(
            "client_allowed_sans",
            "not supported: restrict clients by the CA that signs their certificates",
        ));
    }
    let min = version(
        "min_version",
        file.min_version.as_deref().unwrap_or("TLS12"),
    )?;
    let max = version(
        "max_version",
        file.max_version.as_deref().unwrap_or("TLS13"),
    )?;
    let versions: Vec<&'static SupportedProtocolVersion> =
        match (u16::from(min.version), u16::from(max.version)) {
            (lo, hi) if lo > hi => {
                return Err(fail("min_version", "is above max_version"));
            }
            (lo, hi) if lo == hi => vec![min],
            _ => vec![&rustls::version::TLS12, &rustls::version::TLS13],
        };
    let provider = Arc::new(provider(&file)?);

    let cert =
        pem(dir, read, "cert_file", file.cert_file, "cert", file.cert)?.ok_or_else(|| {
            fail(
                "cert_file",
                "TLS needs the server's certificate: set cert_file",
            )
        })?;
    let key = pem(dir, read, "key_file", file.key_file, "key", file.key)?.ok_or_else(|| {
        fail(
            "key_file",
            "TLS needs the server's private key: set key_file",
        )
    })?;
    let certs = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail("cert_file", format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(fail("cert_file", "holds no PEM certificate"));
    }
    // The key's own bytes never reach a message.
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|_| fail("key_file", "holds no PEM private key credwatch can read"))?;

    let client_ca = pem(
        dir,
        read,
        "client_ca_file",
        file.client_ca_file,
        "client_ca",
        file.client_ca,
    )?;
    let auth_type = file.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let (verify, required) = match auth_type {
        "NoClientCert" => (false, false),
        "VerifyClientCertIfGiven" => (true, false),
        "RequireAndVerifyClientCert" => (true, true),
        "RequestClientCert" | "RequireAnyClientCert" => {
            return Err(fail(
                "client_auth_type",
                format!("{auth_type} accepts certificates it does not verify, which credwatch does not: use VerifyClientCertIfGiven or RequireAndVerifyClientCert"),
            ))
        }
        other => {
            return Err(fail(
                "client_auth_type",
                format!("unknown value {other:?} (NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"),
            ))
        }
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| {
            fail(
                "cipher_suites",
                format!("no suite left for the versions: {e}"),
            )
        })?;
    let builder = match (verify, client_ca) {
        (false, Some(_)) => {
            return Err(fail(
                "client_ca_file",
                "is set but client_auth_type is NoClientCert: say how clients are verified",
            ))
        }
        (false, None) => builder.with_no_client_auth(),
        (true, None) => {
            return Err(fail(
                "client_ca_file",
                format!("{auth_type} needs the CA that signs client certificates"),
            ))
        }
        (true, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&ca) {
                let cert =
                    cert.map_err(|e| fail("client_ca_file", format!("not valid PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| fail("client_ca_file", format!("unusable certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(fail("client_ca_file", "holds no PEM certificate"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| fail("client_ca_file", format!("cannot verify with it: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| fail("key_file", format!("does not match cert_file: {e}")))?;
    config.ignore_client_order = file.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, required))
}
