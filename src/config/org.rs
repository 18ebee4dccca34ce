//! `[[atlassian_org]]`: an Atlassian organization whose admin API lists the API tokens of its
//! managed accounts (`docs/jira-answers.md` §8), and the check that every connection's
//! `org = "..."` names one.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use url::Url;

use super::build::Errors;
use super::credential::one_of;
use super::{keys, AuthMethod, ConfigError, Connection, Kind, Lines, Origin, RawTable};
use super::{Secret, SecretSource};

/// How often an organization's token list is read unless `interval` says.
pub const DEFAULT_ORG_INTERVAL: Duration = Duration::from_secs(6 * 3600);

/// Atlassian's API host, where the organization admin API lives.
pub const DEFAULT_API_URL: &str = "https://api.atlassian.com";

const KEYS: [&str; 9] = [
    "name",
    "org_id",
    "api_key",
    "api_key_env",
    "api_key_file",
    "api_url",
    "interval",
    "unused_after",
    "api_key_expires_at",
];

/// One organization, every setting decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Org {
    /// Unique name, `[a-z0-9][a-z0-9_.-]*`: what connections' `org` names.
    pub name: String,
    /// Atlassian's id of the organization.
    pub org_id: String,
    /// Where the admin API key comes from.
    pub api_key_source: SecretSource,
    /// The admin API key as read at load time.
    pub api_key: Secret,
    /// The API's base URL (`https://api.atlassian.com`).
    pub api_url: Url,
    /// How often the list is read.
    pub interval: Duration,
    /// A token unused this long counts as unused (else `[defaults]`' `unused_after`).
    pub unused_after: Duration,
    /// When the admin key itself expires, when declared.
    pub api_key_expires_at: Option<DateTime<Utc>>,
    /// Where it is defined.
    pub origin: Origin,
}

/// Builds one `[[atlassian_org]]`, or records why it cannot be built.
pub(super) fn build(
    table: &RawTable,
    default_unused_after: Duration,
    origin: Origin,
    text: &Lines,
    base_dir: &Path,
    sink: &mut Vec<ConfigError>,
) -> Option<Org> {
    let mut errors = Errors::new(origin, text, sink);
    let span = |key: &str| table.get(key).map(|value| value.span().start);
    let string = |key: &str, errors: &mut Errors<'_>| -> Option<String> {
        let value = table.get(key)?;
        keys::string(value.get_ref())
            .and_then(keys::non_empty)
            .map_err(|message| errors.at(key, span(key), message))
            .ok()
    };

    let name = string("name", &mut errors);
    match &name {
        None if !table.contains_key("name") => errors.at("name", None, "is required"),
        Some(name) if !keys::is_connection_name(name) => errors.at(
            "name",
            span("name"),
            format!("{name:?} must match [a-z0-9][a-z0-9_.-]* and be at most 64 characters"),
        ),
        _ => {}
    }
    errors.org = name.clone();
    for (key, value) in table {
        if !KEYS.contains(&key.as_str()) {
            errors.at(
                key,
                Some(value.span().start),
                format!(
                    "unknown key `{key}` (an [[atlassian_org]] takes {})",
                    KEYS.join(", ")
                ),
            );
        }
    }
    let org_id = string("org_id", &mut errors);
    if !table.contains_key("org_id") {
        errors.at(
            "org_id",
            None,
            "is required (the organization's id, from admin.atlassian.com)",
        );
    }
    let secret = one_of(table, ["api_key", "api_key_env", "api_key_file"], base_dir, &mut errors)
        .and_then(|(key, source)| {
            let secret = source
                .read()
                .map_err(|e| errors.at(key, span(key), e.to_string()))
                .ok()?;
            if secret.expose().chars().any(|c| c.is_whitespace() || c.is_control()) {
                errors.at(key, span(key), "the API key holds spaces, line breaks or control characters: check what was pasted");
                return None;
            }
            Some((source, secret))
        });
    let api_url = match string("api_url", &mut errors) {
        None => Url::parse(DEFAULT_API_URL).ok(),
        Some(text) => check_api_url(&text)
            .map_err(|message| errors.at("api_url", span("api_url"), message))
            .ok(),
    };
    let duration = |key: &str, errors: &mut Errors<'_>| -> Option<Duration> {
        let value = table.get(key)?;
        keys::duration(value.get_ref())
            .map_err(|message| errors.at(key, span(key), message))
            .ok()
    };
    let interval = duration("interval", &mut errors).unwrap_or(DEFAULT_ORG_INTERVAL);
    let unused_after = duration("unused_after", &mut errors);
    let api_key_expires_at = table.get("api_key_expires_at").and_then(|value| {
        keys::date_or_time(value.get_ref())
            .map_err(|message| errors.at("api_key_expires_at", span("api_key_expires_at"), message))
            .ok()
    });
    if errors.found > 0 {
        return None;
    }
    let ((api_key_source, api_key), name, org_id) = (secret?, name?, org_id?);
    Some(Org {
        name,
        org_id,
        api_key_source,
        api_key,
        api_url: api_url?,
        interval,
        unused_after: unused_after.unwrap_or(default_unused_after),
        api_key_expires_at,
        origin: errors.origin,
    })
}

/// `https://`, or `http://` to a loopback host (the simulator in tests): the admin key is sent
/// there.
fn check_api_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("not a valid URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => return Err("has no host".to_owned()),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(
                "plain http:// would send the admin API key unencrypted: use https://".to_owned(),
            )
        }
        other => return Err(format!("must start with https://, not {other}://")),
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err("must be a base URL without credentials or a query".to_owned());
    }
    Ok(url)
}

/// Checks that names are unique and that every connection's `org` names an organization and
/// is a Cloud API-token connection.
pub(super) fn check_references(
    orgs: &[Org],
    connections: &[Connection],
    errors: &mut Vec<ConfigError>,
) {
    let mut seen: HashMap<&str, &Origin> = HashMap::new();
    for org in orgs {
        if let Some(first) = seen.insert(&org.name, &org.origin) {
            errors.push(ConfigError {
                origin: org.origin.clone(),
                connection: None,
                org: Some(org.name.clone()),
                key: Some("name".into()),
                message: format!("duplicate name (first defined at {first})"),
            });
        }
    }
    for connection in connections {
        let Some(name) = &connection.settings.org else {
            if connection.settings.token_label.is_some() {
                errors.push(reference_error(
                    connection,
                    "token_label",
                    "applies only with org = \"...\"".to_owned(),
                ));
            }
            continue;
        };
        let cloud_token = connection.settings.kind == Kind::Cloud
            && connection.settings.auth == AuthMethod::ApiToken;
        if !cloud_token {
            errors.push(reference_error(
                connection,
                "org",
                "applies to Cloud API-token connections (kind = \"cloud\", auth = \"api_token\") only".to_owned(),
            ));
        } else if !orgs.iter().any(|org| &org.name == name) {
            let known: Vec<&str> = orgs.iter().map(|o| o.name.as_str()).collect();
            errors.push(reference_error(
                connection,
                "org",
                format!(
                    "names no [[atlassian_org]] ({})",
                    if known.is_empty() {
                        "none is defined".to_owned()
                    } else {
                        format!("defined: {}", known.join(", "))
                    }
                ),
            ));
        }
    }
}

fn reference_error(connection: &Connection, key: &str, message: String) -> ConfigError {
    ConfigError {
        origin: connection.origin.clone(),
        connection: Some(connection.name.clone()),
        org: None,
        key: Some(key.to_owned()),
        message,
    }
}

impl Org {
    /// The organization's effective settings as TOML, the key masked: what `validate` shows.
    pub(super) fn effective_toml(&self) -> String {
        let key = match &self.api_key_source {
            SecretSource::Inline(_) => format!("api_key = {:?}", super::MASK),
            SecretSource::Env(var) => format!("api_key_env = {var:?}"),
            SecretSource::File(path) => format!("api_key_file = {:?}", path.display().to_string()),
        };
        let mut out = format!(
            "# atlassian_org {} (defined at {})\n[[atlassian_org]]\nname = {:?}\norg_id = {:?}\n{key}\napi_url = {:?}\ninterval = {:?}\nunused_after = {:?}\n",
            self.name,
            self.origin,
            self.name,
            self.org_id,
            self.api_url.as_str().trim_end_matches('/'),
            keys::format_duration(self.interval),
            keys::format_duration(self.unused_after),
        );
        if let Some(at) = self.api_key_expires_at {
            out.push_str(&format!("api_key_expires_at = {:?}\n", at.to_rfc3339()));
        }
        out.push('\n');
        out
    }
}
