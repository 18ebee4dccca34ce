//! How a raw `[[connection]]` table becomes a [`Connection`]: every key parsed and every rule
//! that ties keys together checked, each error at the line of the key it concerns (all of them
//! at once), then what the connection derives (its probe URL, gateway, token endpoint,
//! politeness site and login account) computed once.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use url::Url;

use super::connection::{CaBundle, Connection};
use super::credential::{authorization_header, secret_source};
use super::keys;
use super::settings::{Layer, Settings};
use super::{line_of, AuthMethod, ConfigError, Kind, Lines, Origin, Product, RawTable};

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
    check_product(&settings, url.as_ref(), &span, &mut errors);
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
    let derived = Derived::of(&url, &settings, login_site.as_ref())?;
    Some(Connection {
        myself: derived.myself,
        site_key: derived.site_key,
        gateway: derived.gateway,
        token_endpoint: derived.token_endpoint,
        token_site_key: derived.token_site_key,
        login_account: derived.login_account,
        login_site,
        name,
        url,
        secret_source,
        secret,
        settings,
        ca,
        origin: errors.origin,
    })
}

/// What a connection derives from its URL and settings, computed once (probes run often).
struct Derived {
    myself: Url,
    site_key: String,
    gateway: Option<Url>,
    token_endpoint: Option<Url>,
    token_site_key: Option<String>,
    login_account: Option<String>,
}

impl Derived {
    fn of(url: &Url, settings: &Settings, login_site: Option<&Url>) -> Option<Derived> {
        let base = url.as_str().trim_end_matches('/');
        let myself = match (settings.product, settings.kind) {
            (Product::Jira, Kind::Server) => format!("{base}/rest/api/2/myself"),
            (Product::Jira, Kind::Cloud) => format!("{base}/rest/api/3/myself"),
            (Product::Confluence, _) => format!("{base}/rest/api/user/current"),
            // Only an authenticated caller may ask, and the answer names it (X-AUSERNAME).
            (Product::Bitbucket, _) => {
                format!("{base}/rest/api/latest/profile/recent/repos?limit=1")
            }
        };
        let myself = Url::parse(&myself).ok()?;
        let gateway = (settings.kind == Kind::Cloud).then(|| {
            let text = settings.gateway_url.as_deref().unwrap_or(DEFAULT_GATEWAY);
            check_url(text, true).ok()
        });
        let gateway = gateway.flatten();
        let token_endpoint = (settings.auth == AuthMethod::OAuthClientCredentials)
            .then(|| match (&settings.token_url, settings.kind) {
                (Some(text), _) => check_url(text, true).ok(),
                (None, Kind::Cloud) => Url::parse(DEFAULT_CLOUD_TOKEN_URL).ok(),
                (None, Kind::Server) => {
                    Url::parse(&format!("{base}/rest/oauth2/latest/token")).ok()
                }
            })
            .flatten();
        let through_gateway = settings.kind == Kind::Cloud
            && (settings.scoped || settings.auth == AuthMethod::OAuthClientCredentials);
        // Every tenant behind the gateway has a budget of its own: by its cloudId when it is
        // configured, else by its site (one site, one cloudId); and each product of a host has
        // its own (Jira's limits do not hold Confluence back), Jira's key kept as it was.
        let site_key = match (&gateway, through_gateway) {
            (Some(gateway), true) => format!(
                "{}/ex/{}/{}",
                origin_of(gateway),
                settings.product,
                settings
                    .cloud_id
                    .clone()
                    .unwrap_or_else(|| url.host_str().unwrap_or_default().to_owned())
            ),
            _ => match settings.product {
                Product::Jira => origin_of(url),
                other => format!("{} {other}", origin_of(url)),
            },
        };
        let token_site_key = token_endpoint
            .as_ref()
            .map(|t| format!("token:{}", origin_of(t)));
        let login_account =
            super::account::of(settings.auth, url, login_site, settings.username.as_deref());
        Some(Derived {
            myself,
            site_key,
            gateway,
            token_endpoint,
            token_site_key,
            login_account,
        })
    }
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

/// The rules a product adds: what it does not support, and where its REST base is.
fn check_product(
    settings: &Settings,
    url: Option<&Url>,
    span: &dyn Fn(&str) -> Option<usize>,
    errors: &mut Errors<'_>,
) {
    let product = settings.product;
    if settings.token_owner_slug.is_some() && product != Product::Bitbucket {
        errors.at(
            "token_owner_slug",
            span("token_owner_slug"),
            format!("applies to product = \"bitbucket\" only, not {product}"),
        );
    }
    match product {
        Product::Jira => {}
        Product::Confluence => check_confluence(settings, url, span, errors),
        Product::Bitbucket => check_bitbucket(settings, url, span, errors),
    }
}

fn check_confluence(
    settings: &Settings,
    url: Option<&Url>,
    span: &dyn Fn(&str) -> Option<usize>,
    errors: &mut Errors<'_>,
) {
    if settings.auth == AuthMethod::OAuthClientCredentials {
        errors.at(
            "auth",
            span("auth").or(span("product")),
            "auth = \"oauth_client_credentials\" is not supported for confluence yet: use a personal access token (Data Center) or an API token (Cloud)",
        );
    }
    let wiki = url.is_none_or(|url| url.path().trim_end_matches('/').ends_with("/wiki"));
    if settings.kind == Kind::Cloud && !wiki {
        errors.at(
            "url",
            span("url"),
            "Confluence Cloud's REST API is under /wiki: give the site URL with it, such as https://SITE.atlassian.net/wiki",
        );
    }
}

/// Bitbucket Data Center only, with its two ways to send a credential.
fn check_bitbucket(
    settings: &Settings,
    url: Option<&Url>,
    span: &dyn Fn(&str) -> Option<usize>,
    errors: &mut Errors<'_>,
) {
    let cloud_host = url.and_then(Url::host_str).is_some_and(|host| {
        let host = host.to_ascii_lowercase();
        host == "bitbucket.org" || host.ends_with(".bitbucket.org")
    });
    if settings.kind == Kind::Cloud || cloud_host {
        errors.at(
            if cloud_host { "url" } else { "kind" },
            if cloud_host { span("url") } else { span("kind") },
            "Bitbucket Cloud is not supported: credwatch watches Bitbucket Data Center (Server) credentials",
        );
        return;
    }
    let why = match settings.auth {
        AuthMethod::Pat | AuthMethod::Basic => None,
        AuthMethod::ApiToken => Some("Bitbucket Data Center has no Atlassian API tokens: an HTTP access token is auth = \"pat\" (sent as Bearer), a password or a personal token sent with the username is auth = \"basic\""),
        AuthMethod::OAuthClientCredentials => Some("auth = \"oauth_client_credentials\" is not supported for bitbucket: use an HTTP access token (auth = \"pat\")"),
    };
    if let Some(why) = why {
        errors.at("auth", span("auth").or(span("product")), why);
    }
    if settings.scoped {
        errors.at(
            "scoped",
            span("scoped"),
            "scoped API tokens are Atlassian Cloud's: Bitbucket Data Center has HTTP access tokens (auth = \"pat\"), whose scope is their permissions",
        );
    }
    if settings.auth == AuthMethod::Basic && settings.token_name.is_some() {
        errors.at(
            "token_name",
            span("token_name"),
            "credwatch does not read Bitbucket's token list over Basic: every request there would be one more login, outside the account's budget. Declare the personal token's expiry with expires_at, or watch it sent as Bearer (auth = \"pat\")",
        );
    }
    if let Some(slug) = &settings.token_owner_slug {
        if slug == "." || slug == ".." || slug.contains('/') {
            errors.at(
                "token_owner_slug",
                span("token_owner_slug"),
                "must be a user's slug, not a path (no '/', '.' or '..')",
            );
        }
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
