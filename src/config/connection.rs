//! One validated connection, and how a raw `[[connection]]` table becomes one: its name,
//! URL and secret (the identity keys), its [`Settings`] decided over `[defaults]`, and the
//! rules that tie them together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::header::HeaderValue;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use url::Url;

use super::credential::{authorization_header, secret_key, secret_source, CredentialError};
use super::keys;
use super::settings::{Layer, Settings};
use super::{
    line_of, AuthMethod, ConfigError, Kind, Lines, Origin, RawTable, Secret, SecretSource, MASK,
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
    /// Where the secret comes from.
    pub secret_source: SecretSource,
    /// The secret as read at load time.
    pub secret: Secret,
    /// Every other setting, decided.
    pub settings: Settings,
    /// The trust roots of `settings.ca_file`, read.
    pub ca: Option<CaBundle>,
    /// Where the connection is defined.
    pub origin: Origin,
    /// The identity probe's URL, parsed once (probes run often).
    myself: Url,
    /// The site key, computed once (see [`Connection::site`]).
    site_key: String,
    /// Cloud: the API gateway's base URL (`gateway_url`, else Atlassian's).
    pub gateway: Option<Url>,
    /// OAuth: the token endpoint (`token_url`, else Atlassian's on Cloud, the site's on Data
    /// Center).
    pub token_endpoint: Option<Url>,
    /// OAuth: the token endpoint's own budget, shared by the connections that use it.
    token_site_key: Option<String>,
    /// `login_site`: the URL whose site replaces `url`'s in the login account.
    pub login_site: Option<Url>,
    /// Basic: the login account (see [`Connection::login_account`]), computed once.
    login_account: Option<String>,
}

impl Connection {
    /// Whether the connection is defined the same, its secret and the certificates of its
    /// `ca_file` included; where it is written does not matter, and the rest is derived. A
    /// reload restarts only the connections for which this is false.
    pub fn same_settings(&self, other: &Connection) -> bool {
        let certs = |c: &Connection| c.ca.as_ref().map(|ca| ca.certs.clone());
        self.name == other.name
            && self.url == other.url
            && self.secret_source == other.secret_source
            && self.secret == other.secret
            && self.settings == other.settings
            && self.login_site == other.login_site
            && certs(self) == certs(other)
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

    /// The login account Jira counts this connection's failed logins against (`auth =
    /// "basic"` only): its login site and the username in lower case ([`super::account`]).
    /// Every connection, process and replica that logs in to it shares one login budget.
    pub fn login_account(&self) -> Option<&str> {
        self.login_account.as_deref()
    }

    /// The key that assigns the connection to a shard: its login account for Basic (so that
    /// every name of an account lands on one shard, with one budget), else its name.
    pub fn shard_key(&self) -> &str {
        self.login_account().unwrap_or(&self.name)
    }

    /// The expiry the configuration declares (`expires_at`, an OAuth client secret's
    /// `client_secret_expires_at`) or derives (a Cloud API token's `created_at` plus a year,
    /// then `true`).
    pub fn declared_expiry_and_how(&self) -> Option<(chrono::DateTime<chrono::Utc>, bool)> {
        let settings = &self.settings;
        if let Some(expiry) = settings.expires_at {
            return Some((expiry, false));
        }
        // An OAuth client's access tokens last an hour; what expires is the client secret.
        if let Some(expiry) = settings.client_secret_expires_at {
            return Some((expiry, false));
        }
        if settings.kind == Kind::Cloud && settings.auth == AuthMethod::ApiToken {
            let created = settings.created_at?;
            return Some((
                created + chrono::Duration::days(super::CLOUD_TOKEN_LIFETIME_DAYS),
                true,
            ));
        }
        None
    }

    /// Whether Jira's PAT API can list this credential's tokens, and so tell its expiry: a
    /// Data Center personal access token.
    pub fn lists_tokens(&self) -> bool {
        self.settings.kind == Kind::Server && self.settings.auth == AuthMethod::Pat
    }

    /// Just the declared or derived expiry ([`Connection::declared_expiry_and_how`]).
    pub fn declared_expiry(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.declared_expiry_and_how().map(|(expiry, _)| expiry)
    }

    /// The token endpoint's budget key (OAuth only): scheme, host and port of `token_url`.
    pub fn token_site(&self) -> Option<&str> {
        self.token_site_key.as_deref()
    }

    /// Whether an unscoped Cloud API token that the site rejects may be tried at the gateway:
    /// for an Atlassian site (`*.atlassian.net`), whose gateway is Atlassian's, or where
    /// `gateway_url` names one. A credential is never sent to a host the configuration does not
    /// name or imply.
    pub fn may_try_gateway(&self) -> bool {
        let atlassian = self
            .url
            .host_str()
            .is_some_and(|host| host.to_ascii_lowercase().ends_with(".atlassian.net"));
        self.gateway.is_some() && (atlassian || self.settings.gateway_url.is_some())
    }

    /// Whether probes go through the API gateway: a scoped API token, or an OAuth client on
    /// Cloud.
    pub fn through_gateway(&self) -> bool {
        self.settings.kind == Kind::Cloud
            && (self.settings.scoped || self.settings.auth == AuthMethod::OAuthClientCredentials)
    }

    /// The `Authorization` header value, marked sensitive so that it never prints.
    pub fn authorization(&self) -> Result<HeaderValue, CredentialError> {
        authorization_header(self.settings.auth, self.settings.login(), &self.secret)
    }

    pub(super) fn effective(&self) -> Effective<'_> {
        let secret_key = secret_key(self.settings.auth, &self.secret_source);
        let secret_value = match &self.secret_source {
            SecretSource::Inline(_) => MASK.to_owned(),
            SecretSource::Env(var) => var.clone(),
            SecretSource::File(path) => path.display().to_string(),
        };
        Effective {
            name: &self.name,
            url: self.url.as_str().trim_end_matches('/'),
            secret: BTreeMap::from([(secret_key, secret_value)]),
            login_site: self
                .login_site
                .as_ref()
                .map(|u| u.as_str().trim_end_matches('/')),
            login_account: self.login_account(),
            settings: &self.settings,
        }
    }
}

/// The printable effective settings of a connection: what `validate` shows.
#[derive(Serialize)]
pub(super) struct Effective<'a> {
    name: &'a str,
    url: &'a str,
    /// The one secret key, its value masked when inline.
    #[serde(flatten)]
    secret: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    login_site: Option<&'a str>,
    /// Basic: the account whose login budget the connection spends.
    #[serde(skip_serializing_if = "Option::is_none")]
    login_account: Option<&'a str>,
    #[serde(flatten)]
    settings: &'a Settings,
}

/// Collects errors for one connection, each at the line of the key it concerns.
pub(super) struct Errors<'a> {
    pub(super) origin: Origin,
    /// The connection's name, once known.
    pub(super) name: Option<String>,
    /// The organization's name, for the errors of an `[[atlassian_org]]`.
    pub(super) org: Option<String>,
    pub(super) text: &'a Lines,
    pub(super) sink: &'a mut Vec<ConfigError>,
    pub(super) found: usize,
}

impl<'a> Errors<'a> {
    /// Errors of one table defined at `origin`, into `sink`.
    pub(super) fn new(
        origin: Origin,
        text: &'a Lines,
        sink: &'a mut Vec<ConfigError>,
    ) -> Errors<'a> {
        Errors {
            origin,
            name: None,
            org: None,
            text,
            sink,
            found: 0,
        }
    }

    pub(super) fn at(&mut self, key: &str, span_start: Option<usize>, message: impl Into<String>) {
        let mut origin = self.origin.clone();
        if let Some(start) = span_start {
            origin.line = Some(line_of(self.text, start));
        }
        self.sink.push(ConfigError {
            origin,
            connection: self.name.clone(),
            org: self.org.clone(),
            key: (!key.is_empty()).then(|| key.to_owned()),
            message: message.into(),
        });
        self.found += 1;
    }
}

/// Builds one connection, or records why it cannot be built and returns `None`.
pub(super) fn build(
    table: &RawTable,
    defaults: &Layer,
    origin: Origin,
    text: &Lines,
    base_dir: &Path,
    sink: &mut Vec<ConfigError>,
) -> Option<Connection> {
    let mut errors = Errors::new(origin, text, sink);
    let span = |key: &str| table.get(key).map(|value| value.span().start);

    let name = read_name(table, &mut errors);
    errors.name = name.clone();

    let mut own = Layer::default();
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
    let layer = own.or(defaults);

    let url = match table.get("url") {
        None => {
            errors.at("url", None, "is required");
            None
        }
        Some(value) => match keys::string(value.get_ref()) {
            Ok(text) => check_url(&text, layer.allows_insecure_http())
                .map_err(|message| errors.at("url", span("url"), message))
                .ok(),
            Err(message) => {
                errors.at("url", span("url"), message);
                None
            }
        },
    };
    let settings = layer.decide(url.as_ref());
    check_settings(&settings, &span, &mut errors);
    let login_site = read_login_site(table, settings.auth, &mut errors);

    let secret_source = secret_source(table, settings.auth, base_dir, &mut errors);
    let secret = secret_source.as_ref().and_then(|(key, source)| {
        let secret = source
            .read()
            .map_err(|e| errors.at(key, span(key), e.to_string()))
            .ok()?;
        authorization_header(settings.auth, settings.login(), &secret)
            .map_err(|error| errors.at(key, span(key), error.to_string()))
            .ok()?;
        Some(secret)
    });

    let ca = settings.ca_file.as_ref().and_then(|path| {
        read_ca_bundle(path)
            .map_err(|message| errors.at("ca_file", span("ca_file"), message))
            .ok()
    });

    if errors.found > 0 {
        return None;
    }
    let (name, url, (_, secret_source), secret) = (name?, url?, secret_source?, secret?);
    let version = match settings.kind {
        Kind::Server => 2,
        Kind::Cloud => 3,
    };
    let myself = Url::parse(&format!(
        "{}/rest/api/{version}/myself",
        url.as_str().trim_end_matches('/')
    ))
    .ok()?;
    let gateway = (settings.kind == Kind::Cloud).then(|| {
        let text = settings.gateway_url.as_deref().unwrap_or(DEFAULT_GATEWAY);
        check_url(text, true).ok()
    });
    let gateway = gateway.flatten();
    let token_endpoint = (settings.auth == AuthMethod::OAuthClientCredentials)
        .then(|| match (&settings.token_url, settings.kind) {
            (Some(text), _) => check_url(text, true).ok(),
            (None, Kind::Cloud) => Url::parse(DEFAULT_CLOUD_TOKEN_URL).ok(),
            (None, Kind::Server) => Url::parse(&format!(
                "{}/rest/oauth2/latest/token",
                url.as_str().trim_end_matches('/')
            ))
            .ok(),
        })
        .flatten();
    let through_gateway = settings.kind == Kind::Cloud
        && (settings.scoped || settings.auth == AuthMethod::OAuthClientCredentials);
    // Every tenant behind the gateway has a budget of its own: by its cloudId when it is
    // configured, else by its site (one site, one cloudId).
    let site_key = match (&gateway, through_gateway) {
        (Some(gateway), true) => format!(
            "{}/ex/jira/{}",
            origin_of(gateway),
            settings
                .cloud_id
                .clone()
                .unwrap_or_else(|| url.host_str().unwrap_or_default().to_owned())
        ),
        _ => origin_of(&url),
    };
    let token_site_key = token_endpoint
        .as_ref()
        .map(|t| format!("token:{}", origin_of(t)));
    let login_account = super::account::of(
        settings.auth,
        &url,
        login_site.as_ref(),
        settings.username.as_deref(),
    );
    Some(Connection {
        login_site,
        login_account,
        myself,
        site_key,
        gateway,
        token_endpoint,
        token_site_key,
        name,
        url,
        secret_source,
        secret,
        settings,
        ca,
        origin: errors.origin,
    })
}

/// Atlassian's API gateway, through which scoped API tokens and OAuth clients reach Jira Cloud.
pub(super) const DEFAULT_GATEWAY: &str = "https://api.atlassian.com";

/// Atlassian's OAuth 2.0 token endpoint.
pub(super) const DEFAULT_CLOUD_TOKEN_URL: &str = "https://auth.atlassian.com/oauth/token";

/// Scheme, host and port.
fn origin_of(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

/// `login_site`, a URL (never requested, so plain http is fine), for `auth = "basic"` only.
fn read_login_site(table: &RawTable, auth: AuthMethod, errors: &mut Errors<'_>) -> Option<Url> {
    let value = table.get("login_site")?;
    let span = Some(value.span().start);
    if auth != AuthMethod::Basic {
        errors.at(
            "login_site",
            span,
            format!("applies to auth = \"basic\" only (only a password login counts towards Jira's CAPTCHA lock), not auth = \"{auth}\""),
        );
        return None;
    }
    keys::string(value.get_ref())
        .and_then(|text| check_url(&text, true))
        .map_err(|message| errors.at("login_site", span, message))
        .ok()
}

/// The required, well-formed `name`.
fn read_name(table: &RawTable, errors: &mut Errors<'_>) -> Option<String> {
    let Some(value) = table.get("name") else {
        errors.at("name", None, "is required");
        return None;
    };
    let span = Some(value.span().start);
    match keys::string(value.get_ref()) {
        Ok(name) if keys::is_connection_name(&name) => Some(name),
        Ok(name) => {
            errors.at(
                "name",
                span,
                format!("{name:?} must match [a-z0-9][a-z0-9_.-]* and be at most 64 characters"),
            );
            None
        }
        Err(message) => {
            errors.at("name", span, message);
            None
        }
    }
}

/// The rules that tie settings together (each key alone was checked when it was parsed).
fn check_settings(
    settings: &Settings,
    span: &dyn Fn(&str) -> Option<usize>,
    errors: &mut Errors<'_>,
) {
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
    let (kind, auth) = (settings.kind, settings.auth);
    if auth == AuthMethod::Pat && kind == Kind::Cloud {
        errors.at(
            "auth",
            span("auth").or(span("kind")),
            "personal access tokens (auth = \"pat\") exist on Server/Data Center only; Jira Cloud takes auth = \"api_token\" (Basic email:token)",
        );
    }
    super::credential::check_newer_credentials(settings, span, errors);
    if matches!(auth, AuthMethod::ApiToken | AuthMethod::Basic) && settings.username.is_none() {
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
    if settings.timeout >= settings.interval {
        errors.at(
            "timeout",
            span("timeout").or(span("interval")),
            format!(
                "timeout ({}) must be shorter than interval ({})",
                keys::format_duration(settings.timeout),
                keys::format_duration(settings.interval)
            ),
        );
    }
    if settings.backoff_initial > settings.backoff_max {
        errors.at(
            "backoff_initial",
            span("backoff_initial").or(span("backoff_max")),
            format!(
                "backoff_initial ({}) must not be longer than backoff_max ({})",
                keys::format_duration(settings.backoff_initial),
                keys::format_duration(settings.backoff_max)
            ),
        );
    }
}

/// Checks a base URL and returns it normalised (no trailing slash).
pub(super) fn check_url(text: &str, allow_insecure_http: bool) -> Result<Url, String> {
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
            (
                config.connections[0].settings.kind,
                config.connections[0].settings.auth,
            )
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
