//! Configuration: TOML files in, a validated [`Config`] out, or every mistake at once.
//!
//! Loading happens in two steps, as in ripgrep's flags: the files are parsed into raw
//! "key → spanned value" tables, then each connection is built into a [`Connection`] whose
//! fields are all decided (no "must be set later" options). Any error names the file, the
//! line, the connection and the key, and nothing starts while there is one. Secrets are read
//! here, so an unreadable or empty secret is a configuration error too.
//!
//! Called by `check`, `validate` (and the daemon's load and reload).

pub mod account;
mod build;
mod connection;
mod credential;
mod keys;
mod org;
mod product;
mod secret;
mod settings;
pub(crate) mod watch;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

pub use connection::{CaBundle, Connection};
pub use credential::{authorization_header, CredentialError};
pub use keys::{format_duration, parse_date_or_time};
pub use org::{Org, DEFAULT_API_URL, DEFAULT_ORG_INTERVAL};
pub use product::{CredentialType, Product};
pub use secret::{Secret, SecretError, SecretSource, MASK};

pub use settings::{Settings, SETTING_KEYS};

use settings::Layer;

/// How long Atlassian's Cloud API tokens live by default (since 2024-12-15).
pub const CLOUD_TOKEN_LIFETIME_DAYS: i64 = 365;

/// Defaults that apply when neither `[defaults]` nor the connection sets a value.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// See [`DEFAULT_INTERVAL`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// See [`DEFAULT_INTERVAL`].
pub const DEFAULT_ROTATE_BEFORE: Duration = Duration::from_secs(14 * 24 * 3600);
/// See [`DEFAULT_INTERVAL`].
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(30);
/// See [`DEFAULT_INTERVAL`].
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);
/// See [`DEFAULT_INTERVAL`].
pub const DEFAULT_AUTH_FAILURE_INTERVAL: Duration = Duration::from_secs(3600);
/// See [`DEFAULT_INTERVAL`].
pub const DEFAULT_GATEWAY_RECHECK_INTERVAL: Duration = Duration::from_secs(3600);
/// See [`DEFAULT_INTERVAL`].
pub const DEFAULT_TOKEN_LIST_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// See [`DEFAULT_INTERVAL`].
pub const DEFAULT_UNUSED_AFTER: Duration = Duration::from_secs(90 * 24 * 3600);

/// Settings of the whole daemon, from `[defaults]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Globals {
    /// Probes in flight at once, over all connections.
    pub max_concurrent_probes: usize,
    /// Probes in flight at once against one site (scheme, host and port).
    pub max_concurrent_per_site: usize,
}

impl Default for Globals {
    fn default() -> Self {
        Globals {
            max_concurrent_probes: 64,
            max_concurrent_per_site: 8,
        }
    }
}

/// Which Jira product a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Jira Server or Data Center.
    Server,
    /// Jira Cloud (`*.atlassian.net`).
    Cloud,
}

impl Kind {
    /// The configuration and label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Server => "server",
            Kind::Cloud => "cloud",
        }
    }

    /// Cloud for `*.atlassian.net` and the API gateway, Server for every other host.
    fn for_url(url: Option<&url::Url>) -> Kind {
        match url.and_then(url::Url::host_str) {
            Some(host) if host.ends_with(".atlassian.net") || host == "api.atlassian.com" => {
                Kind::Cloud
            }
            _ => Kind::Server,
        }
    }

    fn parse(text: &str) -> Result<Kind, String> {
        match text {
            "server" => Ok(Kind::Server),
            "cloud" => Ok(Kind::Cloud),
            other => Err(format!(
                "unknown kind {other:?}: expected \"server\" or \"cloud\""
            )),
        }
    }
}

/// How the credential is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// Data Center personal access token, sent as `Bearer`.
    Pat,
    /// Cloud API token, sent as Basic `email:token`.
    ApiToken,
    /// Legacy Basic `user:password`.
    Basic,
    /// OAuth 2.0 client credentials (a service account's `client_id` and `client_secret`):
    /// an access token from the token endpoint, sent as `Bearer`.
    #[serde(rename = "oauth_client_credentials")]
    OAuthClientCredentials,
}

impl AuthMethod {
    /// The configuration and label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Pat => "pat",
            AuthMethod::ApiToken => "api_token",
            AuthMethod::Basic => "basic",
            AuthMethod::OAuthClientCredentials => "oauth_client_credentials",
        }
    }

    /// A personal access token on Server/Data Center, an API token on Cloud.
    fn default_for(kind: Kind) -> AuthMethod {
        match kind {
            Kind::Server => AuthMethod::Pat,
            Kind::Cloud => AuthMethod::ApiToken,
        }
    }

    fn parse(text: &str) -> Result<AuthMethod, String> {
        match text {
            "pat" => Ok(AuthMethod::Pat),
            "api_token" => Ok(AuthMethod::ApiToken),
            "basic" => Ok(AuthMethod::Basic),
            "oauth_client_credentials" => Ok(AuthMethod::OAuthClientCredentials),
            other => Err(format!(
                "unknown auth {other:?}: expected \"pat\", \"api_token\", \"basic\" or \"oauth_client_credentials\""
            )),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where something was written: a file and, when known, a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The file as it was named (a file given directly, or one found in a directory).
    pub file: PathBuf,
    /// The 1-based line, when TOML gave a position.
    pub line: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// One configuration mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where it is.
    pub origin: Origin,
    /// The connection it concerns, if any.
    pub connection: Option<String>,
    /// The `[[atlassian_org]]` it concerns, if any.
    pub org: Option<String>,
    /// The key it concerns, if any.
    pub key: Option<String>,
    /// What is wrong, in lowercase, never containing a secret.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if let Some(name) = &self.connection {
            write!(f, "connection {name:?}: ")?;
        }
        if let Some(name) = &self.org {
            write!(f, "atlassian_org {name:?}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every mistake found while loading; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError(pub Vec<ConfigError>);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The files it was read from, in order.
    pub files: Vec<PathBuf>,
    /// The connections, in file order.
    pub connections: Vec<Connection>,
    /// The Atlassian organizations whose admin API lists tokens, in file order.
    pub orgs: Vec<Org>,
    /// Daemon-wide settings.
    pub globals: Globals,
    /// Things that work but should change (inline secrets), one line each, for the log.
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads a file, or every `*.toml` file of a directory (merged; names unique across them).
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let files = config_files(path)?;
        let mut sources = Vec::with_capacity(files.len());
        for file in &files {
            let text = std::fs::read_to_string(file)
                .map_err(|e| LoadError(vec![file_error(file, format!("cannot read: {e}"))]))?;
            sources.push((file.clone(), text));
        }
        let mut config = Self::from_sources(&sources)?;
        config.warnings.extend(exposed_inline_secrets(&config));
        Ok(config)
    }

    /// Builds a configuration from `(file name, TOML text)` pairs, as if read from those files.
    pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<Config, LoadError> {
        let mut errors = Vec::new();
        let mut parsed = Vec::new();
        for (file, text) in sources {
            match toml::from_str::<RawFile>(text) {
                Ok(raw) => parsed.push((file, Lines::new(text), raw)),
                Err(e) => errors.push(ConfigError {
                    origin: Origin {
                        file: file.clone(),
                        line: e.span().map(|span| line_of(&Lines::new(text), span.start)),
                    },
                    connection: None,
                    org: None,
                    key: None,
                    // Only the message: TOML's own rendering quotes the source line, which
                    // may hold an inline secret.
                    message: e.message().trim().to_owned(),
                }),
            }
        }

        let (defaults, globals) = read_defaults(&parsed, &mut errors);
        let mut connections = Vec::new();
        let mut seen: HashMap<String, Origin> = HashMap::new();
        for (file, lines, raw) in &parsed {
            let base_dir = file.parent().unwrap_or(Path::new("."));
            for table in &raw.connection {
                let origin = Origin {
                    file: (*file).clone(),
                    line: Some(line_of(lines, table.span().start)),
                };
                let Some(connection) = build::build(
                    table.get_ref(),
                    &defaults,
                    origin.clone(),
                    lines,
                    base_dir,
                    &mut errors,
                ) else {
                    continue;
                };
                if let Some(first) = seen.get(&connection.name) {
                    errors.push(ConfigError {
                        origin,
                        connection: Some(connection.name.clone()),
                        org: None,
                        key: Some("name".into()),
                        message: format!("duplicate name (first defined at {first})"),
                    });
                    continue;
                }
                seen.insert(connection.name.clone(), origin);
                connections.push(connection);
            }
        }
        let mut orgs = Vec::new();
        for (file, lines, raw) in &parsed {
            let base_dir = file.parent().unwrap_or(Path::new("."));
            for table in &raw.atlassian_org {
                let origin = Origin {
                    file: (*file).clone(),
                    line: Some(line_of(lines, table.span().start)),
                };
                let unused_after = defaults.unused_after().unwrap_or(DEFAULT_UNUSED_AFTER);
                orgs.extend(org::build(
                    table.get_ref(),
                    unused_after,
                    origin,
                    lines,
                    base_dir,
                    &mut errors,
                ));
            }
        }
        org::check_references(&orgs, &connections, &mut errors);
        if errors.is_empty() && connections.is_empty() {
            let origin = sources
                .first()
                .map(|(file, _)| file.clone())
                .unwrap_or_default();
            errors.push(file_error(
                &origin,
                "no [[connection]] is defined".to_owned(),
            ));
        }
        if errors.is_empty() {
            let mut warnings: Vec<String> = connections
                .iter()
                .filter(|c| matches!(c.secret_source, SecretSource::Inline(_)))
                .map(|c| {
                    format!(
                        "{}: connection {:?}: the secret is written in the configuration file; move it to a file (token_file, password_file) or the environment (token_env, password_env)",
                        c.origin, c.name
                    )
                })
                .collect();
            warnings.extend(
                orgs.iter()
                    .filter(|o| matches!(o.api_key_source, SecretSource::Inline(_)))
                    .map(|o| {
                        format!(
                            "{}: atlassian_org {:?}: the admin API key is written in the configuration file; move it to a file (api_key_file) or the environment (api_key_env)",
                            o.origin, o.name
                        )
                    }),
            );
            Ok(Config {
                files: sources.iter().map(|(file, _)| file.clone()).collect(),
                connections,
                orgs,
                globals,
                warnings,
            })
        } else {
            Err(LoadError(errors))
        }
    }

    /// The connection with this name.
    pub fn connection(&self, name: &str) -> Option<&Connection> {
        self.connections.iter().find(|c| c.name == name)
    }

    /// The effective settings of every connection as TOML, secrets masked, each preceded by
    /// a comment that says where it is defined.
    pub fn effective_toml(&self) -> String {
        #[derive(Serialize)]
        struct One<'a> {
            connection: [connection::Effective<'a>; 1],
        }
        let mut out = String::new();
        for connection in &self.connections {
            let one = One {
                connection: [connection.effective()],
            };
            let rendered =
                toml::to_string(&one).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
            out.push_str(&format!(
                "# {} (defined at {})\n{rendered}\n",
                connection.name, connection.origin
            ));
        }
        for org in &self.orgs {
            out.push_str(&org.effective_toml());
        }
        out
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    defaults: Option<Spanned<RawTable>>,
    #[serde(default)]
    connection: Vec<Spanned<RawTable>>,
    #[serde(default)]
    atlassian_org: Vec<Spanned<RawTable>>,
}

/// A TOML table whose values remember where they were written.
type RawTable = BTreeMap<String, Spanned<toml::Value>>;

fn read_defaults(
    parsed: &[(&PathBuf, Lines, RawFile)],
    errors: &mut Vec<ConfigError>,
) -> (Layer, Globals) {
    let mut defaults = Layer::default();
    let mut globals = Globals::default();
    let mut declared_in: Option<Origin> = None;
    for (file, text, raw) in parsed {
        let Some(table) = &raw.defaults else { continue };
        let origin = Origin {
            file: (*file).clone(),
            line: Some(line_of(text, table.span().start)),
        };
        if let Some(first) = &declared_in {
            errors.push(ConfigError {
                origin,
                connection: None,
                org: None,
                key: None,
                message: format!(
                    "[defaults] is declared again (first at {first}); declare it once"
                ),
            });
            continue;
        }
        let base_dir = file.parent().unwrap_or(Path::new("."));
        for (key, value) in table.get_ref() {
            let key_origin = Origin {
                file: (*file).clone(),
                line: Some(line_of(text, value.span().start)),
            };
            let result = if keys::IDENTITY_KEYS.contains(&key.as_str()) {
                Err("cannot be set in [defaults]: it belongs to one connection".to_owned())
            } else if key == "max_concurrent_probes" {
                keys::count(value.get_ref(), 1, 100_000).map(|n| globals.max_concurrent_probes = n)
            } else if key == "max_concurrent_per_site" {
                keys::count(value.get_ref(), 1, 10_000).map(|n| globals.max_concurrent_per_site = n)
            } else {
                defaults.apply(key, value.get_ref(), base_dir)
            };
            if let Err(message) = result {
                errors.push(ConfigError {
                    origin: key_origin,
                    connection: None,
                    org: None,
                    key: Some(format!("defaults.{key}")),
                    message,
                });
            }
        }
        declared_in = Some(origin);
    }
    (defaults, globals)
}

/// Files that hold inline secrets and that users other than the owner can read.
fn exposed_inline_secrets(config: &Config) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut files: Vec<&PathBuf> = config
        .connections
        .iter()
        .filter(|c| matches!(c.secret_source, SecretSource::Inline(_)))
        .map(|c| &c.origin.file)
        .chain(
            config
                .orgs
                .iter()
                .filter(|o| matches!(o.api_key_source, SecretSource::Inline(_)))
                .map(|o| &o.origin.file),
        )
        .collect();
    files.sort();
    files.dedup();
    files
        .into_iter()
        .filter_map(|file| {
            let mode = std::fs::metadata(file).ok()?.permissions().mode();
            (mode & 0o077 != 0).then(|| {
                format!(
                    "{}: holds inline secrets and is readable by other users (mode {:o}): chmod 600 it, or move the secrets to files or the environment",
                    file.display(),
                    mode & 0o777
                )
            })
        })
        .collect()
}

fn config_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| LoadError(vec![file_error(path, format!("cannot read: {e}"))]))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| LoadError(vec![file_error(path, format!("cannot list: {e}"))]))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(LoadError(vec![file_error(
            path,
            "the directory holds no *.toml file".to_owned(),
        )]));
    }
    Ok(files)
}

fn file_error(file: &Path, message: String) -> ConfigError {
    ConfigError {
        origin: Origin {
            file: file.to_owned(),
            line: None,
        },
        connection: None,
        org: None,
        key: None,
        message,
    }
}

/// Where each line of a file starts, so that a byte offset's line is a binary search: counting
/// newlines from the top for every connection would be quadratic in a 100,000-connection file.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Lines {
        Lines(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }
}

/// The 1-based line of a byte offset.
fn line_of(lines: &Lines, offset: usize) -> usize {
    lines.0.partition_point(|&newline| newline < offset) + 1
}
