//! The per-connection settings, defined once.
//!
//! Every key that `[defaults]` and a `[[connection]]` may both set is one line of the
//! [`settings!`] table below: its name, its type once decided, its default and its parser.
//! From that line come the key list ([`SETTING_KEYS`]), the as-written [`Layer`] (every value
//! optional), the merge of a connection over `[defaults]`, and the decided [`Settings`], which
//! derives `PartialEq` (a reload restarts a connection whose settings differ, compared whole)
//! and `Serialize` (what `credwatch validate` prints). Adding a setting is adding a line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use toml::Value;
use url::Url;

use super::keys::{date_or_time, duration, labels, non_empty, path, string, type_of};
use super::{
    AuthMethod, CredentialType, Kind, Product, DEFAULT_AUTH_FAILURE_INTERVAL,
    DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, DEFAULT_GATEWAY_RECHECK_INTERVAL,
    DEFAULT_INTERVAL, DEFAULT_ROTATE_BEFORE, DEFAULT_TIMEOUT, DEFAULT_TOKEN_LIST_INTERVAL,
    DEFAULT_UNUSED_AFTER,
};

/// Defines [`Settings`], [`Layer`] and [`SETTING_KEYS`] from one table. Each line reads
/// `key: DecidedType = default, parser;`. A default may use the connection's URL (named by the
/// identifier before the table) and the settings decided on the lines above it.
macro_rules! settings {
    (
        for $url:ident;
        $(
            $(#[$meta:meta])*
            $key:ident : $ty:ty = $default:expr, $parse:expr;
        )*
    ) => {
        /// Every setting of one connection, decided: the connection's own value, else that of
        /// `[defaults]`, else credwatch's default.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        pub struct Settings {
            $( $(#[$meta])* pub $key: $ty, )*
        }

        /// The keys of [`Settings`], in the order of its table.
        pub const SETTING_KEYS: &[&str] = &[$(stringify!($key)),*];

        /// Settings as written at one level (`[defaults]` or a connection), parsed but not
        /// merged: `None` where the level does not set the key.
        #[derive(Debug, Default, Clone)]
        pub(super) struct Layer {
            $( $key: Option<$ty>, )*
        }

        impl Layer {
            /// Parses one setting key into `self`. `base_dir` resolves relative paths.
            pub(super) fn apply(&mut self, key: &str, value: &Value, base_dir: &Path) -> Result<(), String> {
                match key {
                    $( stringify!($key) => self.$key = Some(($parse)(value, base_dir)?), )*
                    _ => return Err(super::keys::unknown_key(key)),
                }
                Ok(())
            }

            /// `self`, with every unset value taken from `defaults`; labels are merged key by
            /// key (the connection's win).
            pub(super) fn or(mut self, defaults: &Layer) -> Layer {
                let merged_labels = match (self.labels.take(), &defaults.labels) {
                    (Some(own), Some(shared)) => {
                        let mut merged = shared.clone();
                        merged.extend(own);
                        Some(merged)
                    }
                    (own, shared) => own.or_else(|| shared.clone()),
                };
                let mut merged = Layer {
                    $( $key: self.$key.or_else(|| defaults.$key.clone()), )*
                };
                merged.labels = merged_labels;
                merged
            }

            /// The decided settings of a connection at `url` (its host decides `kind`).
            pub(super) fn decide(self, $url: Option<&Url>) -> Settings {
                $( let $key: $ty = match self.$key { Some(value) => value, None => $default }; )*
                Settings { $( $key, )* }
            }
        }
    };
}

settings! {
    for url;
    /// The Atlassian product: Jira unless set.
    product: Product = Product::Jira, |v, _| Product::parse(&string(v)?);
    /// Server/Data Center or Cloud; by default Cloud for `*.atlassian.net` and the gateway.
    kind: Kind = Kind::for_url(url), |v, _| Kind::parse(&string(v)?);
    /// How the credential is sent; by default a PAT on Server, an API token on Cloud.
    auth: AuthMethod = AuthMethod::default_for(kind), |v, _| AuthMethod::parse(&string(v)?);
    /// The Basic user name (email for Cloud API tokens); `None` only for PATs.
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String> = None, |v, _| non_empty(string(v)?).map(Some);
    /// The account the credential must belong to.
    #[serde(skip_serializing_if = "Option::is_none")]
    expect_account: Option<String> = None, |v, _| non_empty(string(v)?).map(Some);
    /// The declared expiry.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "optional_time")]
    expires_at: Option<DateTime<Utc>> = None, |v, _| date_or_time(v).map(Some);
    /// The declared creation time (Cloud API tokens: the expiry is derived from it).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "optional_time")]
    created_at: Option<DateTime<Utc>> = None, |v, _| date_or_time(v).map(Some);
    /// Rotation is due once the token is older than this.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "optional_duration")]
    max_token_age: Option<Duration> = None, |v, _| duration(v).map(Some);
    /// How often the PAT list is fetched from Jira (Server/DC PATs).
    #[serde(serialize_with = "written_duration")]
    token_list_interval: Duration = DEFAULT_TOKEN_LIST_INTERVAL, |v, _| duration(v);
    /// A token not used for this long counts as unused in the audit.
    #[serde(serialize_with = "written_duration")]
    unused_after: Duration = DEFAULT_UNUSED_AFTER, |v, _| duration(v);
    /// The PAT's name in Jira.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_name: Option<String> = None, |v, _| non_empty(string(v)?).map(Some);
    /// Bitbucket: the slug of the personal token's owner, whose token list tells its expiry
    /// (found from the username when not set).
    #[serde(skip_serializing_if = "Option::is_none")]
    token_owner_slug: Option<String> = None, |v, _| non_empty(string(v)?).map(Some);
    /// The `[[atlassian_org]]` whose admin API lists this Cloud API token.
    #[serde(skip_serializing_if = "Option::is_none")]
    org: Option<String> = None, |v, _| non_empty(string(v)?).map(Some);
    /// The token's label in Atlassian, when the account holds more than one token.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_label: Option<String> = None, |v, _| non_empty(string(v)?).map(Some);
    /// Cloud: a scoped API token, probed through the API gateway.
    scoped: bool = false, |v: &Value, _| {
        v.as_bool().ok_or_else(|| format!("must be true or false, not {}", type_of(v)))
    };
    /// Cloud: the site's cloudId; read from `{url}/_edge/tenant_info` (scoped tokens) or the
    /// gateway's accessible resources (OAuth) when not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud_id: Option<String> = None, |v, _| non_empty(string(v)?).map(Some);
    /// Cloud: the API gateway's base URL (default `https://api.atlassian.com`).
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway_url: Option<String> = None, |v, _| non_empty(string(v)?).map(Some);
    /// OAuth: the token endpoint (default: Atlassian's on Cloud, the site's on Data Center).
    #[serde(skip_serializing_if = "Option::is_none")]
    token_url: Option<String> = None, |v, _| non_empty(string(v)?).map(Some);
    /// OAuth: the client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String> = None, |v, _| non_empty(string(v)?).map(Some);
    /// OAuth: the declared expiry of the client secret.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "optional_time")]
    client_secret_expires_at: Option<DateTime<Utc>> = None, |v, _| date_or_time(v).map(Some);
    /// Whether plain http to a non-loopback host is allowed.
    allow_insecure_http: bool = false, |v: &Value, _| {
        v.as_bool().ok_or_else(|| format!("must be true or false, not {}", type_of(v)))
    };
    /// Extra trust roots, a PEM file (read into [`super::CaBundle`] when the connection is built).
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<PathBuf> = None, |v, base: &Path| path(v, base).map(Some);
    /// Time between probes.
    #[serde(serialize_with = "written_duration")]
    interval: Duration = DEFAULT_INTERVAL, |v, _| duration(v);
    /// Deadline for one whole probe.
    #[serde(serialize_with = "written_duration")]
    timeout: Duration = DEFAULT_TIMEOUT, |v, _| duration(v);
    /// How long before expiry rotation is due.
    #[serde(serialize_with = "written_duration")]
    rotate_before: Duration = DEFAULT_ROTATE_BEFORE, |v, _| duration(v);
    /// The first wait after a probe without a verdict; it doubles from there.
    #[serde(serialize_with = "written_duration")]
    backoff_initial: Duration = DEFAULT_BACKOFF_INITIAL, |v, _| duration(v);
    /// The longest wait after probes without a verdict.
    #[serde(serialize_with = "written_duration")]
    backoff_max: Duration = DEFAULT_BACKOFF_MAX, |v, _| duration(v);
    /// The wait after a rejected credential (`invalid`, `expired`, `forbidden`).
    #[serde(serialize_with = "written_duration")]
    auth_failure_interval: Duration = DEFAULT_AUTH_FAILURE_INTERVAL, |v, _| duration(v);
    /// How long what the API gateway said of a token the site rejects stands: a token the
    /// gateway accepted is asked about again after this long (it may have been revoked since).
    #[serde(serialize_with = "written_duration")]
    gateway_recheck_interval: Duration = DEFAULT_GATEWAY_RECHECK_INTERVAL, |v, _| duration(v);
    /// Static labels, merged key by key over those of `[defaults]` (last: a TOML table).
    labels: BTreeMap<String, String> = BTreeMap::new(), |v, _| labels(v);
}

impl Settings {
    /// Who the credential logs in as, as configured: the user name (Basic schemes) or, for an
    /// OAuth client, its client id.
    pub fn login(&self) -> Option<&str> {
        self.username.as_deref().or(self.client_id.as_deref())
    }

    /// The product and the way the credential is sent, which the hints are worded for.
    pub fn credential_type(&self) -> CredentialType {
        CredentialType {
            product: self.product,
            auth: self.auth,
        }
    }
}

impl Layer {
    /// Whether this level allows plain http (needed before the URL is checked).
    pub(super) fn allows_insecure_http(&self) -> bool {
        self.allow_insecure_http.unwrap_or(false)
    }

    /// `unused_after` as this level sets it.
    pub(super) fn unused_after(&self) -> Option<Duration> {
        self.unused_after
    }
}

fn written_duration<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&super::keys::format_duration(*duration))
}

fn optional_duration<S: Serializer>(duration: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => written_duration(duration, s),
        None => s.serialize_none(),
    }
}

fn optional_time<S: Serializer>(time: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => s.serialize_str(&time.to_rfc3339()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_key_is_parsed() {
        let samples: [(&str, Value); 30] = [
            ("token_owner_slug", Value::from("svc-ci")),
            ("product", Value::from("confluence")),
            ("scoped", Value::from(true)),
            ("cloud_id", Value::from("0a0a-1")),
            ("gateway_url", Value::from("https://api.atlassian.com")),
            (
                "token_url",
                Value::from("https://auth.atlassian.com/oauth/token"),
            ),
            ("client_id", Value::from("client")),
            ("client_secret_expires_at", Value::from("2027-06-01")),
            ("org", Value::from("acme")),
            ("token_label", Value::from("ci")),
            ("interval", Value::from("5m")),
            ("created_at", Value::from("2026-01-15")),
            ("max_token_age", Value::from("90d")),
            ("token_list_interval", Value::from("6h")),
            ("unused_after", Value::from("90d")),
            ("backoff_initial", Value::from("30s")),
            ("backoff_max", Value::from("30m")),
            ("auth_failure_interval", Value::from("1h")),
            ("gateway_recheck_interval", Value::from("1h")),
            ("timeout", Value::from("10s")),
            ("rotate_before", Value::from("14d")),
            ("kind", Value::from("server")),
            ("auth", Value::from("pat")),
            ("username", Value::from("svc")),
            ("expect_account", Value::from("svc")),
            ("expires_at", Value::from("2027-03-01")),
            ("token_name", Value::from("credwatch")),
            ("allow_insecure_http", Value::from(true)),
            ("ca_file", Value::from("ca.pem")),
            ("labels", Value::Table(toml::Table::new())),
        ];
        assert_eq!(samples.len(), SETTING_KEYS.len());
        let mut layer = Layer::default();
        for (key, value) in samples {
            assert!(SETTING_KEYS.contains(&key));
            layer
                .apply(key, &value, Path::new("/etc"))
                .unwrap_or_else(|e| panic!("{key}: {e}"));
        }
        let decided = layer.decide(None);
        assert_eq!(decided.interval, Duration::from_secs(300));
        assert_eq!(decided.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert!(decided.allow_insecure_http);
    }

    #[test]
    fn a_connection_wins_over_defaults_and_labels_merge() {
        let table = |text: &str| -> toml::Table { toml::from_str(text).expect("toml") };
        let mut defaults = Layer::default();
        for (key, value) in
            table("interval = \"1m\"\ntimeout = \"5s\"\nlabels = { team = \"a\", tier = \"1\" }")
        {
            defaults
                .apply(&key, &value, Path::new("/"))
                .expect("defaults");
        }
        let mut own = Layer::default();
        for (key, value) in table("interval = \"2m\"\nlabels = { team = \"b\" }") {
            own.apply(&key, &value, Path::new("/")).expect("own");
        }
        let url = Url::parse("https://acme.atlassian.net").expect("url");
        let decided = own.or(&defaults).decide(Some(&url));
        assert_eq!(decided.interval, Duration::from_secs(120));
        assert_eq!(decided.timeout, Duration::from_secs(5));
        assert_eq!(decided.rotate_before, DEFAULT_ROTATE_BEFORE);
        assert_eq!(decided.kind, Kind::Cloud);
        assert_eq!(decided.auth, AuthMethod::ApiToken);
        assert_eq!(decided.labels["team"], "b");
        assert_eq!(decided.labels["tier"], "1");
    }

    #[test]
    fn settings_that_differ_in_any_key_are_unequal() {
        let base = Layer::default().decide(None);
        for key in SETTING_KEYS {
            let value = match *key {
                "kind" => Value::from("cloud"),
                "product" => Value::from("confluence"),
                "auth" => Value::from("basic"),
                "allow_insecure_http" | "scoped" => Value::from(true),
                "ca_file" => Value::from("other.pem"),
                "labels" => {
                    toml::from_str::<toml::Table>("x = { a = \"b\" }").expect("t")["x"].clone()
                }
                "expires_at" | "created_at" | "client_secret_expires_at" => {
                    Value::from("2030-01-01")
                }
                "username" | "expect_account" | "token_name" | "org" | "token_label"
                | "cloud_id" | "gateway_url" | "token_url" | "client_id" | "token_owner_slug" => {
                    Value::from("someone")
                }
                _ => Value::from("17m"),
            };
            let mut layer = Layer::default();
            layer.apply(key, &value, Path::new("/")).expect(key);
            assert_ne!(layer.decide(None), base, "{key} is compared");
        }
    }
}
