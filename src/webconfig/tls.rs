//! `tls_server_config`: the rustls server configuration of credwatch's own endpoints.
//!
//! The exporter-toolkit's meaning is kept: an empty value is no value; TLS is on when any of
//! the server's certificate and key, the client CA or `client_auth_type` is set (a section
//! that sets none of them serves plain HTTP, with a warning); when both a file and its inline
//! form are set, the file wins (with a warning). Versions, suites and curves are in
//! [`super::suites`], client certificates in [`super::clientcert`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use serde::Deserialize;

use super::clientcert::{self, ClientCa};
use super::suites;

/// What is wrong: the key (a dotted path) and why.
pub(super) type Failure = (String, String);

pub(super) fn fail(key: &str, message: impl Into<String>) -> Failure {
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

impl TlsFile {
    /// Whether the section turns TLS on, as the exporter-toolkit's `IsEnabled` says.
    fn enabled(&self) -> bool {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.is_empty());
        let set_path = |v: &Option<PathBuf>| v.as_ref().is_some_and(|v| !v.as_os_str().is_empty());
        set_path(&self.cert_file)
            || set_path(&self.key_file)
            || set_path(&self.client_ca_file)
            || set(&self.cert)
            || set(&self.key)
            || set(&self.client_ca)
            || set(&self.client_auth_type)
    }
}

/// One PEM source: a file (relative to the web configuration's directory) or its inline form.
struct Source<'a> {
    file_key: &'static str,
    file: Option<PathBuf>,
    inline_key: &'static str,
    inline: Option<String>,
    dir: &'a Path,
}

/// What a [`Source`] gave.
enum Pem {
    /// Neither was set, or only to an empty value.
    Unset,
    /// The PEM, the key it came from and a name for messages.
    Read(Vec<u8>, &'static str, String),
}

impl Source<'_> {
    /// Reads it; the file read is added to `read`.
    fn read(self, read: &mut Vec<PathBuf>, warnings: &mut Vec<String>) -> Result<Pem, Failure> {
        let file = self.file.filter(|f| !f.as_os_str().is_empty());
        let inline = self.inline.filter(|i| !i.is_empty());
        match (file, inline) {
            (Some(file), inline) => {
                if inline.is_some() {
                    warnings.push(format!(
                        "tls_server_config: {} and {} are both set: {} is used, as the exporter-toolkit does",
                        self.file_key, self.inline_key, self.file_key
                    ));
                }
                let path = self.dir.join(file);
                let bytes = std::fs::read(&path).map_err(|e| {
                    fail(
                        self.file_key,
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                read.push(path.clone());
                Ok(Pem::Read(bytes, self.file_key, path.display().to_string()))
            }
            (None, Some(inline)) => Ok(Pem::Read(
                inline.into_bytes(),
                self.inline_key,
                format!("tls_server_config.{}", self.inline_key),
            )),
            (None, None) => Ok(Pem::Unset),
        }
    }
}

/// The source's PEM; an empty or missing one is an error naming the key that was set (or
/// `file_key` when neither was).
fn required(
    source: Source<'_>,
    given: (bool, bool),
    read: &mut Vec<PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<(Vec<u8>, &'static str), Failure> {
    let (file_key, inline_key) = (source.file_key, source.inline_key);
    match source.read(read, warnings)? {
        Pem::Read(bytes, key, _) => Ok((bytes, key)),
        Pem::Unset => match given {
            (true, _) => Err(fail(
                file_key,
                format!("is empty: set {file_key} or {inline_key}"),
            )),
            (false, true) => Err(fail(
                inline_key,
                format!("is empty: set {file_key} or {inline_key}"),
            )),
            (false, false) => Err(fail(
                file_key,
                format!("TLS needs it: set {file_key} or {inline_key}"),
            )),
        },
    }
}

/// The rustls configuration `file` describes (`None`: the section does not turn TLS on), and
/// whether it requires client certificates; the files it reads are added to `read`, what
/// deserves a word at start to `warnings`.
pub(super) fn build(
    file: TlsFile,
    dir: &Path,
    read: &mut Vec<PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<Option<(ServerConfig, bool)>, Failure> {
    if !file.enabled() {
        warnings.push("tls_server_config: sets no certificate, key, client CA or client_auth_type, so TLS is off and credwatch serves plain HTTP, as the exporter-toolkit does".into());
        return Ok(None);
    }
    let min = suites::version(
        "min_version",
        file.min_version.as_deref().unwrap_or("TLS12"),
    )?;
    let max = suites::version(
        "max_version",
        file.max_version.as_deref().unwrap_or("TLS13"),
    )?;
    let versions = suites::versions(min, max)?;
    let provider = Arc::new(suites::provider(
        file.cipher_suites.as_deref(),
        file.curve_preferences.as_deref(),
    )?);

    let given = |f: &Option<PathBuf>, i: &Option<String>| (f.is_some(), i.is_some());
    let cert_given = given(&file.cert_file, &file.cert);
    let key_given = given(&file.key_file, &file.key);
    let source = |file_key, file, inline_key, inline| Source {
        file_key,
        file,
        inline_key,
        inline,
        dir,
    };
    let (cert, cert_key) = required(
        source("cert_file", file.cert_file, "cert", file.cert),
        cert_given,
        read,
        warnings,
    )?;
    let (key, key_key) = required(
        source("key_file", file.key_file, "key", file.key),
        key_given,
        read,
        warnings,
    )?;
    let certs = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(cert_key, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(fail(cert_key, "holds no PEM certificate"));
    }
    // The key's own bytes never reach a message.
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|_| fail(key_key, "holds no PEM private key credwatch can read"))?;

    let ca = match source(
        "client_ca_file",
        file.client_ca_file,
        "client_ca",
        file.client_ca,
    )
    .read(read, warnings)?
    {
        Pem::Read(pem, key, name) => Some(ClientCa { key, name, pem }),
        Pem::Unset => None,
    };
    let auth = clientcert::client_auth(
        file.client_auth_type.as_deref().unwrap_or(""),
        ca,
        file.client_allowed_sans,
        &provider,
        warnings,
    )?;
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| {
            fail(
                "cipher_suites",
                format!("no suite left for the versions: {e}"),
            )
        })?;
    let builder = match auth.verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| fail(key_key, format!("does not match {cert_key}: {e}")))?;
    config.ignore_client_order = file.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some((config, auth.required)))
}
