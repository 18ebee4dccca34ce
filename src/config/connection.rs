//! One validated connection, and how a raw `[[connection]]` table becomes one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use http::header::HeaderValue;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use url::Url;

use super::keys::{self, Settings};
use super::{
    line_of, AuthMethod, ConfigError, Kind, Lines, Origin, RawTable, Secret, SecretSource,
    DEFAULT_AUTH_FAILURE_INTERVAL, DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, DEFAULT_INTERVAL,
    DEFAULT_ROTATE_BEFORE, DEFAULT_TIMEOUT, DEFAULT_TOKEN_LIST_INTERVAL, DEFAULT_UNUSED_AFTER,
    MASK,
};

/// Extra trust roots read from `ca_file`.
#[derive(Clone)]
pub struct CaBundle {
    /// The file they came from.
    pub path: PathBuf,
    /// The certificates, DER-encoded.
    pub certs: Arc<Vec<CertificateDer<'static>>>,
    /// A digest of the certificates: connections whose bundles hold the same certificates
    /// share one HTTP client (and its connections), whatever the file is called.
    pub digest: u64,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CaBundle({}, {} certs)",
            self.path.display(),
            self.certs.len()
        )
    }
}

/// A connection whose every setting is decided and checked.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Unique name, `[a-z0-9][a-z0-9_.-]*`.
    pub name: String,
    /// Base URL with its context path, without a trailing slash.
    pub url: Url,
    /// Server/Data Center or Cloud.
    pub kind: Kind,
    /// How the credential is sent.
    pub auth: AuthMethod,
    /// The Basic user name (email for Cloud API tokens); `None` only for PATs.
    pub username: Option<String>,
    /// Where the secret comes from.
    pub secret_source: SecretSource,
    /// The secret as read at load time.
    pub secret: Secret,
    /// The account the credential must belong to.
    pub expect_account: Option<String>,
    /// The declared expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// The declared creation time (Cloud API tokens: the expiry is derived from it).
    pub created_at: Option<DateTime<Utc>>,
    /// Rotation is due once the token is older than this.
    pub max_token_age: Option<Duration>,
    /// How often the PAT list is fetched from Jira (Server/DC PATs).
    pub token_list_interval: Duration,
    /// A token not used for this long counts as unused in the audit.
    pub unused_after: Duration,
    /// The PAT's name in Jira.
    pub token_name: Option<String>,
    /// Whether plain http to a non-loopback host was explicitly allowed.
    pub allow_insecure_http: bool,
    /// Extra trust roots.
    pub ca_file: Option<CaBundle>,
    /// Static labels.
    pub labels: BTreeMap<String, String>,
    /// Time between probes.
    pub interval: Duration,
    /// Deadline for one whole probe.
    pub timeout: Duration,
    /// How long before expiry rotation is due.
    pub rotate_before: Duration,
    /// The first wait after a probe without a verdict; it doubles from there.
    pub backoff_initial: Duration,
    /// The longest wait after probes without a verdict.
    pub backoff_max: Duration,
    /// The wait after a rejected credential (`invalid`, `expired`, `forbidden`).
    pub auth_failure_interval: Duration,
    /// Where the connection is defined.
    pub origin: Origin,
    /// The identity probe's URL, parsed once (probes run often).
    myself: Url,
    /// The site key, computed once (see [`Connection::site`]).
    site_key: String,
}

impl Connection {
    /// Whether every setting, the secret included, is the same; where each is defined does
    /// not matter. A reload restarts only the connections for which this is false.
    pub fn same_settings(&self, other: &Connection) -> bool {
        let ca = |c: &Connection| {
            c.ca_file
                .as_ref()
                .map(|ca| (ca.path.clone(), ca.certs.clone()))
        };
        self.name == other.name
            && self.url == other.url
            && self.kind == other.kind
            && self.auth == other.auth
            && self.username == other.username
            && self.secret_source == other.secret_source
            && self.secret == other.secret
            && self.expect_account == other.expect_account
            && self.expires_at == other.expires_at
            && self.created_at == other.created_at
            && self.max_token_age == other.max_token_age
            && self.token_list_interval == other.token_list_interval
            && self.unused_after == other.unused_after
            && self.token_name == other.token_name
            && self.allow_insecure_http == other.allow_insecure_http
            && ca(self) == ca(other)
            && self.labels == other.labels
            && self.interval == other.interval
            && self.timeout == other.timeout
            && self.rotate_before == other.rotate_before
            && self.backoff_initial == other.backoff_initial
            && self.backoff_max == other.backoff_max
            && self.auth_failure_interval == other.auth_failure_interval
    }

    /// The identity probe's URL: `myself` on API v2 (Server) or v3 (Cloud).
    pub fn myself_url(&self) -> &Url {
        &self.myself
    }

    /// The site this connection belongs to: scheme, host and port, shared by connections
    /// that count against the same Jira budget.
    pub fn site(&self) -> &str {
        &self.site_key
    }

    /// The `Authorization` header value, marked sensitive so that it never prints.
    pub fn authorization(&self) -> Result<HeaderValue, String> {
        authorization_header(self.auth, self.username.as_deref(), &self.secret)
    }

    pub(super) fn effective(&self) -> Effective<'_> {
        let mut effective = Effective {
            name: &self.name,
            url: self.url.as_str().trim_end_matches('/'),
            kind: self.kind.as_str(),
            auth: self.auth.as_str(),
            username: self.username.as_deref(),
            token: None,
            token_env: None,
            token_file: None,
            password: None,
            password_env: None,
            password_file: None,
            expect_account: self.expect_account.as_deref(),
            expires_at: self.expires_at.map(|t| t.to_rfc3339()),
            created_at: self.created_at.map(|t| t.to_rfc3339()),
            max_token_age: self
                .max_token_age
                .map(|d| keys::format_duration(d).to_string()),
            token_list_interval: keys::format_duration(self.token_list_interval),
            unused_after: keys::format_duration(self.unused_after).to_string(),
            token_name: self.token_name.as_deref(),
            allow_insecure_http: self.allow_insecure_http,
            ca_file: self
                .ca_file
                .as_ref()
                .map(|ca| ca.path.display().to_string()),
            interval: keys::format_duration(self.interval).to_string(),
            timeout: keys::format_duration(self.timeout).to_string(),
            rotate_before: keys::format_duration(self.rotate_before).to_string(),
            backoff_initial: keys::format_duration(self.backoff_initial).to_string(),
            backoff_max: keys::format_duration(self.backoff_max).to_string(),
            auth_failure_interval: keys::format_duration(self.auth_failure_interval).to_string(),
            labels: &self.labels,
        };
        let basic = self.auth == AuthMethod::Basic;
        match &self.secret_source {
            SecretSource::Inline(_) if basic => effective.password = Some(MASK),
            SecretSource::Inline(_) => effective.token = Some(MASK),
            SecretSource::Env(var) if basic => effective.password_env = Some(var),
            SecretSource::Env(var) => effective.token_env = Some(var),
            SecretSource::File(path) if basic => {
                effective.password_file = Some(path.display().to_string())
            }
            SecretSource::File(path) => effective.token_file = Some(path.display().to_string()),
        }
        effective
    }
}

/// The printable effective settings of a connection: what `validate` shows.
#[derive(Serialize)]
pub(super) struct Effective<'a> {
    name: &'a str,
    url: &'a str,
    kind: &'static str,
    auth: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_env: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_env: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expect_account: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_token_age: Option<String>,
    token_list_interval: String,
    unused_after: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_name: Option<&'a str>,
    allow_insecure_http: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<String>,
    interval: String,
    timeout: String,
    rotate_before: String,
    backoff_initial: String,
    backoff_max: String,
    auth_failure_interval: String,
    labels: &'a BTreeMap<String, String>,
}

/// Builds the pre-emptive `Authorization` value: `Bearer` for PATs, Basic otherwise.
pub fn authorization_header(
    auth: AuthMethod,
    username: Option<&str>,
    secret: &Secret,
) -> Result<HeaderValue, String> {
    let exposed = secret.expose();
    let text = match auth {
        AuthMethod::Pat | AuthMethod::ApiToken
            if exposed.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            return Err(
                "the token holds spaces, line breaks or control characters: check what was pasted"
                    .to_owned(),
            );
        }
        // A stray line break in a password would fail every login and lock the account.
        AuthMethod::Basic if exposed.chars().any(char::is_control) => {
            return Err(
                "the password holds line breaks or control characters: check the file or variable"
                    .to_owned(),
            );
        }
        AuthMethod::Pat => format!("Bearer {exposed}"),
        AuthMethod::ApiToken | AuthMethod::Basic => {
            let user = username.unwrap_or_default();
            if user.contains(':') {
                return Err(
                    "username must not contain ':' (Basic authentication cannot carry it)"
                        .to_owned(),
                );
            }
            let pair = format!("{user}:{}", secret.expose());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        }
    };
    let mut value = HeaderValue::from_str(&text).map_err(|_| {
        "the token holds characters that cannot be sent in an HTTP header (non-ASCII or control characters)".to_owned()
    })?;
    value.set_sensitive(true);
    Ok(value)
}

const TOKEN_KEYS: [&str; 3] = ["token", "token_env", "token_file"];
const PASSWORD_KEYS: [&str; 3] = ["password", "password_env", "password_file"];

/// Collects errors for one connection, each at the line of the key it concerns.
struct Errors<'a> {
    origin: Origin,
    name: Option<String>,
    text: &'a Lines,
    sink: &'a mut Vec<ConfigError>,
    found: usize,
}

impl Errors<'_> {
    fn at(&mut self, key: &str, span_start: Option<usize>, message: impl Into<String>) {
        let mut origin = self.origin.clone();
        if let Some(start) = span_start {
            origin.line = Some(line_of(self.text, start));
        }
        self.sink.push(ConfigError {
            origin,
            connection: self.name.clone(),
            key: (!key.is_empty()).then(|| key.to_owned()),
            message: message.into(),
        });
        self.found += 1;
    }
}

/// Builds one connection, or records why it cannot be built and returns `None`.
pub(super) fn build(
    table: &RawTable,
    defaults: &Settings,
    origin: Origin,
    text: &Lines,
    base_dir: &Path,
    sink: &mut Vec<ConfigError>,
) -> Option<Connection> {
    let mut errors = Errors {
        origin,
        name: None,
        text,
        sink,
        found: 0,
    };
    let span = |key: &str| table.get(key).map(|value| value.span().start);

    let name = match table.get("name") {
        None => {
            errors.at("name", None, "is required");
            None
        }
        Some(value) => match keys::string(value.get_ref()) {
            Ok(name) if keys::is_connection_name(&name) => Some(name),
            Ok(name) => {
                errors.at(
                    "name",
                    span("name"),
                    format!(
                        "{name:?} must match [a-z0-9][a-z0-9_.-]* and be at most 64 characters"
                    ),
                );
                None
            }
            Err(message) => {
                errors.at("name", span("name"), message);
                None
            }
        },
    };
    errors.name = name.clone();

    let mut own = Settings::default();
    for (key, value) in table {
        if keys::IDENTITY_KEYS.contains(&key.as_str()) {
            continue;
        }
        if keys::GLOBAL_KEYS.contains(&key.as_str()) {
            errors.at(
                key,
                Some(value.span().start),
                "applies to the whole daemon: set it in [defaults]",
            );
            continue;
        }
        if let Err(message) = own.apply(key, value.get_ref(), base_dir) {
            errors.at(key, Some(value.span().start), message);
        }
    }
    let settings = own.or(defaults);
    if settings.labels.len() > keys::MAX_LABELS {
        errors.at(
            "labels",
            span("labels"),
            format!(
                "at most {} labels are allowed, found {} with those of [defaults]",
                keys::MAX_LABELS,
                settings.labels.len()
            ),
        );
    }

    let url = match table.get("url") {
        None => {
            errors.at("url", None, "is required");
            None
        }
        Some(value) => match keys::string(value.get_ref()) {
            Ok(text) => check_url(&text, settings.allow_insecure_http.unwrap_or(false))
                .map_err(|message| errors.at("url", span("url"), message))
                .ok(),
            Err(message) => {
                errors.at("url", span("url"), message);
                None
            }
        },
    };

    let kind = settings.kind.unwrap_or_else(|| match &url {
        Some(url)
            if url
                .host_str()
                .is_some_and(|h| h.ends_with(".atlassian.net") || h == "api.atlassian.com") =>
        {
            Kind::Cloud
        }
        _ => Kind::Server,
    });
    let auth = settings.auth.unwrap_or(match kind {
        Kind::Server => AuthMethod::Pat,
        Kind::Cloud => AuthMethod::ApiToken,
    });
    if auth == AuthMethod::Pat && kind == Kind::Cloud {
        errors.at(
            "auth",
            span("auth").or(span("kind")),
            "personal access tokens (auth = \"pat\") exist on Server/Data Center only; Jira Cloud takes auth = \"api_token\" (Basic email:token)",
        );
    }
    if auth != AuthMethod::Pat && settings.username.is_none() {
        let what = if auth == AuthMethod::ApiToken {
            "the account's email"
        } else {
            "the Jira user name"
        };
        errors.at(
            "username",
            None,
            format!("is required for auth = \"{auth}\" ({what})"),
        );
    }

    let secret_source = secret_source(table, auth, base_dir, &mut errors);
    let secret = secret_source.as_ref().and_then(|(key, source)| {
        let secret = source
            .read()
            .map_err(|e| errors.at(key, span(key), e.to_string()))
            .ok()?;
        authorization_header(auth, settings.username.as_deref(), &secret)
            .map_err(|message| errors.at(key, span(key), message))
            .ok()?;
        Some(secret)
    });

    let interval = settings.interval.unwrap_or(DEFAULT_INTERVAL);
    let timeout = settings.timeout.unwrap_or(DEFAULT_TIMEOUT);
    if timeout >= interval {
        errors.at(
            "timeout",
            span("timeout").or(span("interval")),
            format!(
                "timeout ({}) must be shorter than interval ({})",
                keys::format_duration(timeout),
                keys::format_duration(interval)
            ),
        );
    }

    let backoff_initial = settings.backoff_initial.unwrap_or(DEFAULT_BACKOFF_INITIAL);
    let backoff_max = settings.backoff_max.unwrap_or(DEFAULT_BACKOFF_MAX);
    if backoff_initial > backoff_max {
        errors.at(
            "backoff_initial",
            span("backoff_initial").or(span("backoff_max")),
            format!(
                "backoff_initial ({}) must not be longer than backoff_max ({})",
                keys::format_duration(backoff_initial),
                keys::format_duration(backoff_max)
            ),
        );
    }

    let ca_file = settings.ca_file.as_ref().and_then(|path| {
        read_ca_bundle(path)
            .map_err(|message| errors.at("ca_file", span("ca_file"), message))
            .ok()
    });

    if errors.found > 0 {
        return None;
    }
    let (name, url, (_, secret_source), secret) = (name?, url?, secret_source?, secret?);
    let version = match kind {
        Kind::Server => 2,
        Kind::Cloud => 3,
    };
    let myself = Url::parse(&format!(
        "{}/rest/api/{version}/myself",
        url.as_str().trim_end_matches('/')
    ))
    .ok()?;
    let site_key = format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    );
    Some(Connection {
        myself,
        site_key,
        name,
        url,
        kind,
        auth,
        username: settings.username,
        secret_source,
        secret,
        expect_account: settings.expect_account,
        expires_at: settings.expires_at,
        created_at: settings.created_at,
        max_token_age: settings.max_token_age,
        token_list_interval: settings
            .token_list_interval
            .unwrap_or(DEFAULT_TOKEN_LIST_INTERVAL),
        unused_after: settings.unused_after.unwrap_or(DEFAULT_UNUSED_AFTER),
        token_name: settings.token_name,
        allow_insecure_http: settings.allow_insecure_http.unwrap_or(false),
        ca_file,
        labels: settings.labels,
        interval,
        timeout,
        rotate_before: settings.rotate_before.unwrap_or(DEFAULT_ROTATE_BEFORE),
        backoff_initial,
        backoff_max,
        auth_failure_interval: settings
            .auth_failure_interval
            .unwrap_or(DEFAULT_AUTH_FAILURE_INTERVAL),
        origin: errors.origin,
    })
}

/// Finds exactly one secret key of the family that `auth` takes.
fn secret_source(
    table: &RawTable,
    auth: AuthMethod,
    base_dir: &Path,
    errors: &mut Errors<'_>,
) -> Option<(&'static str, SecretSource)> {
    let (family, other) = match auth {
        AuthMethod::Basic => (PASSWORD_KEYS, TOKEN_KEYS),
        AuthMethod::Pat | AuthMethod::ApiToken => (TOKEN_KEYS, PASSWORD_KEYS),
    };
    let family_list = family.join(", ");
    for key in other {
        if let Some(value) = table.get(key) {
            errors.at(
                key,
                Some(value.span().start),
                format!("auth = \"{auth}\" takes one of {family_list}, not {key}"),
            );
        }
    }
    let present: Vec<&'static str> = family
        .into_iter()
        .filter(|k| table.contains_key(*k))
        .collect();
    let key = match present.as_slice() {
        [] => {
            errors.at("", None, format!("no secret: set one of {family_list}"));
            return None;
        }
        [key] => *key,
        several => {
            errors.at(
                several[1],
                table.get(several[1]).map(|v| v.span().start),
                format!(
                    "set exactly one of {family_list}, found {}",
                    several.join(" and ")
                ),
            );
            return None;
        }
    };
    let value = table.get(key)?;
    let span = Some(value.span().start);
    let source = if key.ends_with("_env") {
        keys::string(value.get_ref()).and_then(|name| {
            if is_env_name(&name) {
                Ok(SecretSource::Env(name))
            } else {
                // Not echoed: a value that is no variable name may be the secret itself.
                Err("must name an environment variable ([A-Za-z_][A-Za-z0-9_]*): is this the secret itself?".to_owned())
            }
        })
    } else if key.ends_with("_file") {
        keys::string(value.get_ref()).and_then(|text| {
            if looks_like_a_secret(&text) {
                Err("does not look like a path: is this the secret itself? Set it to the path of a file that holds the secret".to_owned())
            } else {
                keys::path(value.get_ref(), base_dir).map(SecretSource::File)
            }
        })
    } else {
        keys::string(value.get_ref()).map(|s| SecretSource::Inline(Secret::new(s)))
    };
    match source {
        Ok(source) => Some((key, source)),
        Err(message) => {
            errors.at(key, span, message);
            None
        }
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A long run of token characters with no path separator, dot or `$` is more likely a
/// pasted token than a file name, and must not be echoed in "cannot read" errors.
fn looks_like_a_secret(text: &str) -> bool {
    text.len() >= 24 && !text.contains(['/', '.', '$', ' '])
}

/// Checks a base URL and returns it normalised (no trailing slash).
fn check_url(text: &str, allow_insecure_http: bool) -> Result<Url, String> {
    // Never echo the text itself: a URL with user:password@ holds a secret.
    let url = Url::parse(text.trim()).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must start with https:// (or http://), not {}://",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not contain credentials (user:password@): set username and a token or password key instead"
                .to_owned(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not contain a query (?...) or fragment (#...): give the base URL, with its context path if any".to_owned());
    }
    let Some(host) = url.host() else {
        return Err("has no host".to_owned());
    };
    let loopback = match host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(name) => name == "localhost" || name.ends_with(".localhost"),
    };
    if url.scheme() == "http" && !loopback && !allow_insecure_http {
        return Err(
            "plain http:// would send the credential unencrypted to a non-loopback host: use https://, or set allow_insecure_http = true"
                .to_owned(),
        );
    }
    let mut url = url;
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

fn read_ca_bundle(path: &Path) -> Result<CaBundle, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in &certs {
        roots.add(cert.clone()).map_err(|e| {
            format!(
                "{} holds a certificate rustls cannot use: {e}",
                path.display()
            )
        })?;
    }
    let digest = {
        use std::hash::{Hash as _, Hasher as _};
        // Stable within the process, which is all the client cache needs.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for cert in &certs {
            cert.as_ref().hash(&mut hasher);
        }
        hasher.finish()
    };
    Ok(CaBundle {
        path: path.to_owned(),
        certs: Arc::new(certs),
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_and_auth_defaults_follow_the_host() {
        let load = |url: &str| {
            let text = format!("[[connection]]\nname = \"c\"\nurl = \"{url}\"\nusername = \"a@b.c\"\ntoken = \"t\"\n");
            let config =
                crate::config::Config::from_sources(&[("t.toml".into(), text)]).expect("loads");
            (config.connections[0].kind, config.connections[0].auth)
        };
        assert_eq!(
            load("https://acme.atlassian.net"),
            (Kind::Cloud, AuthMethod::ApiToken)
        );
        assert_eq!(
            load("https://api.atlassian.com/ex/jira/1234-abcd"),
            (Kind::Cloud, AuthMethod::ApiToken)
        );
        assert_eq!(
            load("https://jira.example.com/jira"),
            (Kind::Server, AuthMethod::Pat)
        );
    }

    #[test]
    fn urls() {
        let ok = check_url("https://jira.example.com/jira/", false).expect("valid");
        assert_eq!(ok.as_str(), "https://jira.example.com/jira");
        assert!(check_url("http://127.0.0.1:8080", false).is_ok());
        assert!(check_url("http://localhost/jira", false).is_ok());
        assert!(check_url("http://[::1]:80", false).is_ok());
        assert!(check_url("http://jira.example.com", true).is_ok());
        for (bad, expected) in [
            ("http://jira.example.com", "unencrypted"),
            ("ftp://jira.example.com", "must start with https://"),
            ("https://bot:hunter2@jira.example.com", "credentials"),
            ("https://jira.example.com/?os_authType=basic", "query"),
            ("jira.example.com", "not a valid URL"),
        ] {
            let error = check_url(bad, false).expect_err(bad);
            assert!(error.contains(expected), "{bad}: {error}");
            assert!(!error.contains("hunter2"));
        }
    }
}
