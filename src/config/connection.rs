//! One validated connection: its name, URL and secret (the identity keys), its [`Settings`]
//! decided over `[defaults]`, and what derives from them (the identity probe's URL, the
//! politeness site, the login account, the declared expiry, the `Authorization` header).
//! `build.rs` makes one from a raw `[[connection]]` table.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use http::header::HeaderValue;
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use url::Url;

use super::credential::{authorization_header, secret_key, CredentialError};
use super::settings::Settings;
use super::{AuthMethod, Kind, Origin, Product, Secret, SecretSource, MASK};

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
    pub(super) myself: Url,
    /// The site key, computed once (see [`Connection::site`]).
    pub(super) site_key: String,
    /// Cloud: the API gateway's base URL (`gateway_url`, else Atlassian's).
    pub gateway: Option<Url>,
    /// OAuth: the token endpoint (`token_url`, else Atlassian's on Cloud, the site's on Data
    /// Center).
    pub token_endpoint: Option<Url>,
    /// OAuth: the token endpoint's own budget, shared by the connections that use it.
    pub(super) token_site_key: Option<String>,
    /// `login_site`: the URL whose site replaces `url`'s in the login account.
    pub login_site: Option<Url>,
    /// Basic: the login account (see [`Connection::login_account`]), computed once.
    pub(super) login_account: Option<String>,
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

    /// Whether the product's own token list can tell this credential's expiry: a Data Center
    /// personal access token (Jira's and Confluence's PAT list), or a Bitbucket HTTP access
    /// token sent as Bearer (its owner's list).
    pub fn lists_tokens(&self) -> bool {
        let settings = &self.settings;
        match settings.product {
            Product::Jira | Product::Confluence => {
                settings.kind == Kind::Server && settings.auth == AuthMethod::Pat
            }
            // Over Basic every request is a login: the list would spend logins the budget
            // does not see, so it is read only for a token sent as Bearer.
            Product::Bitbucket => settings.auth == AuthMethod::Pat,
        }
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
