//! The web configuration file (`--web.config.file`): TLS, client certificates, basic auth and
//! response headers for credwatch's own endpoints, in the format of the Prometheus
//! exporter-toolkit, which node_exporter, blackbox_exporter and the rest share.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.pem        # relative paths are relative to this file
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: clients-ca.pem
//!   min_version: TLS12
//! http_server_config:
//!   headers:
//!     Strict-Transport-Security: max-age=31536000
//! rate_limit:
//!   interval: 1s
//!   burst: 20
//! basic_auth_users:
//!   prometheus: $2y$10$...       # a bcrypt hash, never the password
//! ```
//!
//! [`WebConfig::load`] reads and checks the whole file: what the exporter-toolkit accepts
//! loads with its meaning, and an unknown key, an unsupported value, a certificate that does
//! not parse or a hash that is not bcrypt is an error naming the key. What loads but deserves a
//! word (a client CA that cannot sign for itself, a limit that refuses everything) is in
//! [`WebConfig::warnings`], logged at WARN. The daemon loads it at start (exit 2 on error) and
//! again on every reload, keeping the settings it runs with when the new file is broken.
//! [`tls`] builds the rustls server configuration ([`suites`], [`clientcert`]), [`headers`]
//! checks the response headers, [`ratelimit`] is `rate_limit`, [`auth`] checks the basic-auth
//! credentials with the bcrypt workers of [`workers`].

pub(crate) mod auth;
mod clientcert;
mod headers;
pub(crate) mod ratelimit;
mod suites;
mod tls;
pub(crate) mod workers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

/// The file as written. Every key of the exporter-toolkit's format is named here, so that the
/// ones credwatch cannot honour are refused by name rather than ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<tls::TlsFile>,
    http_server_config: Option<HttpFile>,
    rate_limit: Option<ratelimit::RateLimitFile>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// What is wrong with a web configuration file: the key (a dotted path such as
/// `tls_server_config.min_version`, empty for the file as a whole) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}{message}", path.display(), if key.is_empty() { String::new() } else { format!("{key}: ") })]
pub struct WebConfigError {
    /// The file.
    pub path: PathBuf,
    /// The key at fault.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

/// A checked web configuration, ready to serve with.
#[derive(Debug, Default)]
pub struct WebConfig {
    /// The TLS server configuration; `None`: plain HTTP.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Whether a client must present a certificate the client CA signed.
    pub(crate) client_certificates_required: bool,
    /// The basic-auth users; `None`: no authentication.
    pub(crate) users: Option<auth::Users>,
    /// Headers added to every response.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// The rate limit; `None`: none.
    pub(crate) rate_limit: Option<ratelimit::RateLimit>,
    /// What loads but deserves a word at start and on reload (no secret in them).
    pub(crate) warnings: Vec<String>,
    /// The files it was read from (itself, and the certificates and keys it names): a change
    /// to any of them reloads it when the configuration is watched.
    pub(crate) files: Vec<PathBuf>,
}

impl WebConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let error = |key: &str, message: String| WebConfigError {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| error("", format!("cannot read the web configuration: {e}")))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut config = Self::parse(&text, dir).map_err(|(key, message)| error(&key, message))?;
        config.files.insert(0, path.to_path_buf());
        Ok(config)
    }

    /// Checks `text`, resolving relative file names against `dir`; errors are (key, message).
    /// [`WebConfig::load`] puts the file's name to them.
    pub fn parse(text: &str, dir: &Path) -> Result<WebConfig, (String, String)> {
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| (String::new(), yaml_error(&e)))?
        };
        let mut files = Vec::new();
        let mut warnings = Vec::new();
        let tls = match file.tls_server_config {
            Some(t) => tls::build(t, dir, &mut files, &mut warnings)?,
            None => None,
        };
        let http = file.http_server_config.unwrap_or_default();
        if http.http2 == Some(true) {
            warnings.push("http_server_config.http2: credwatch serves HTTP/1.1 only, so HTTP/2 stays off (and Go's rule on HTTP/2's cipher suites does not apply)".into());
        }
        let headers = headers::check(http.headers.unwrap_or_default())?;
        let rate_limit = match file.rate_limit {
            Some(r) => ratelimit::RateLimit::new(r, &mut warnings)?,
            None => None,
        };
        let users = match file.basic_auth_users {
            Some(users) if users.is_empty() => {
                warnings.push("basic_auth_users: names no user, so basic auth is off, as in the exporter-toolkit: name a user, or remove the key".into());
                None
            }
            Some(users) => Some(auth::Users::new(users, &mut warnings)?),
            None => None,
        };
        let (tls, client_certificates_required) = match tls {
            Some((config, required)) => (Some(Arc::new(config)), required),
            None => (None, false),
        };
        Ok(WebConfig {
            tls,
            client_certificates_required,
            users,
            headers,
            rate_limit,
            warnings,
            files,
        })
    }
}

/// The parser's message, which names the unknown or mistyped key and where it is, without
/// the values it quotes.
fn yaml_error(error: &serde_saphyr::Error) -> String {
    let text = error.to_string();
    // The first line says what; the rest is a source excerpt, which may quote a secret.
    unquoted(text.lines().next().unwrap_or_default().trim())
}

/// `text` with every double-quoted stretch (serde quotes the values it could not use, which
/// may be a bcrypt hash or an inline key) replaced by `"…"`; key names, which serde puts in
/// backticks, stay.
fn unquoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        match (c, quoted) {
            ('"', false) => {
                out.push_str("\"…");
                quoted = true;
            }
            ('"', true) => {
                out.push('"');
                quoted = false;
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    if quoted {
        out.push('"');
    }
    out
}

/// The web configuration the server runs with, swapped whole on reload.
#[derive(Debug, Default)]
pub(crate) struct Current(RwLock<Arc<WebConfig>>);

impl Current {
    pub(crate) fn new(config: WebConfig) -> Current {
        Current(RwLock::new(Arc::new(config)))
    }

    /// The configuration as it is now; a connection keeps the one it started with.
    pub(crate) fn get(&self) -> Arc<WebConfig> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(crate) fn replace(&self, config: WebConfig) {
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(config);
    }
}

#[cfg(test)]
mod tests;
