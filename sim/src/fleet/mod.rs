//! The demo fleet: a handful of Jira, Confluence and Bitbucket sites and the connections that
//! between them show every state credwatch reports, installed into a [`Simulator`] and written
//! out as a real configuration (TOML plus one secret file per connection) that the normal
//! loader reads. Each product's part is a module of its own ([`jira`], [`confluence`],
//! [`bitbucket`]).

mod bitbucket;
mod confluence;
mod jira;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};

use super::Simulator;

pub use super::scale::{install_scale, write_scale_config};

/// One connection of the fleet, as it is written into the configuration.
#[derive(Debug, Clone)]
pub struct Member {
    /// The connection name.
    pub name: &'static str,
    /// `product` as written in the configuration (`jira` is not written: the default).
    pub product: &'static str,
    /// What follows the site's URL in the connection's `url` (Confluence Cloud's `/wiki`).
    pub path: &'static str,
    /// The simulator site it talks to (`None`: a closed port, nobody listens).
    pub site: Option<&'static str>,
    /// `kind` as written in the configuration.
    pub kind: &'static str,
    /// `auth` as written in the configuration.
    pub auth: &'static str,
    /// `username`, for Basic schemes.
    pub username: Option<&'static str>,
    /// The secret written to the connection's secret file.
    pub secret: &'static str,
    /// `expires_at`, in days from now (Cloud; Data Center PATs' expiry comes from Jira).
    pub expires_in_days: Option<i64>,
    /// `created_at`, in days before now.
    pub created_days_ago: Option<i64>,
    /// `token_name`: the PAT's name in Jira.
    pub token_name: Option<&'static str>,
    /// `expect_account`.
    pub expect_account: Option<&'static str>,
    /// Whether it opts in to the demo organization's admin API list (`org = "acme"`).
    pub org: bool,
    /// The `team` label.
    pub team: &'static str,
    /// The state the demo should show for it.
    pub expected_state: &'static str,
    /// The reason the demo should show for it.
    pub expected_reason: &'static str,
    /// More configuration lines; `{gateway}` and `{auth}` stand for the simulator's gateway
    /// and Cloud token endpoint.
    pub extra: &'static str,
}

/// A connection of the fleet with every optional field unset: Jira, team platform.
pub(super) fn member(
    name: &'static str,
    site: Option<&'static str>,
    kind: &'static str,
    auth: &'static str,
    secret: &'static str,
    state: &'static str,
    reason: &'static str,
) -> Member {
    Member {
        product: "jira",
        path: "",
        name,
        site,
        kind,
        auth,
        username: None,
        secret,
        expires_in_days: None,
        created_days_ago: None,
        token_name: None,
        expect_account: None,
        org: false,
        team: "platform",
        expected_state: state,
        expected_reason: reason,
        extra: "",
    }
}

/// The fleet's connections, every product's.
pub fn members() -> Vec<Member> {
    let mut members = jira::members();
    members.extend(confluence::members());
    members.extend(bitbucket::members());
    members
}

/// Where the simulator serves the demo organization's admin API.
pub const ORG_API: &str = "atlassian-admin";

/// The demo organization's id.
pub const ORG_ID: &str = "demo-org-acme";

/// The demo organization's admin API key.
pub const ORG_API_KEY: &str = "demo-admin-api-key";

/// Installs the fleet's sites and accounts into a simulator.
pub fn install(simulator: &Simulator) {
    jira::install(simulator);
    confluence::install(simulator);
    bitbucket::install(simulator);
}

/// Writes `credwatch.toml` and a `secrets/` directory for the fleet into `dir`, pointing at
/// `simulator`; `closed_port` is where the unreachable connection points. Returns the
/// configuration file.
pub fn write_config(
    dir: &Path,
    simulator: &Simulator,
    closed_port: u16,
    interval: std::time::Duration,
) -> std::io::Result<PathBuf> {
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets)?;
    // Short waits so that a newcomer sees the fleet settle within a minute.
    let timeout = (interval / 2).min(std::time::Duration::from_secs(5));
    let backoff = (interval / 4).max(std::time::Duration::from_millis(100));
    let mut toml = format!(
        "# The credwatch demo fleet, served by the built-in Atlassian simulator.\n\n[defaults]\ninterval = \"{}\"\ntimeout = \"{}\"\nbackoff_initial = \"{}\"\nbackoff_max = \"{}\"\ntoken_list_interval = \"{}\"\n",
        humantime::format_duration(interval),
        humantime::format_duration(timeout),
        humantime::format_duration(backoff),
        humantime::format_duration(interval * 6),
        humantime::format_duration(interval * 6),
    );
    for member in members() {
        let secret_file = secrets.join(member.name);
        write_secret(&secret_file, member.secret)?;
        let url = match member.site {
            Some(site) => format!("{}{}", simulator.url(site), member.path),
            None => format!("http://127.0.0.1:{closed_port}/jira"),
        };
        let secret_key = match member.auth {
            "basic" => "password_file",
            "oauth_client_credentials" => "client_secret_file",
            _ => "token_file",
        };
        let _ = write!(
            toml,
            "\n[[connection]]\nname = \"{}\"\nurl = \"{url}\"\nkind = \"{}\"\nauth = \"{}\"\n{secret_key} = \"secrets/{}\"\n",
            member.name, member.kind, member.auth, member.name
        );
        if member.product != "jira" {
            let _ = writeln!(toml, "product = \"{}\"", member.product);
        }
        if let Some(username) = member.username {
            let _ = writeln!(toml, "username = \"{username}\"");
        }
        if let Some(days) = member.expires_in_days {
            let expiry = Utc::now() + Duration::days(days);
            let _ = writeln!(toml, "expires_at = \"{}\"", expiry.to_rfc3339());
        }
        if let Some(days) = member.created_days_ago {
            let created = Utc::now() - Duration::days(days);
            let _ = writeln!(toml, "created_at = \"{}\"", created.to_rfc3339());
        }
        if let Some(token_name) = member.token_name {
            let _ = writeln!(toml, "token_name = \"{token_name}\"");
        }
        if let Some(account) = member.expect_account {
            let _ = writeln!(toml, "expect_account = \"{account}\"");
        }
        if member.org {
            let _ = writeln!(toml, "org = \"acme\"");
        }
        toml.push_str(
            &member
                .extra
                .replace("{gateway}", &simulator.url(super::gateway::GATEWAY))
                .replace("{auth}", &simulator.url(super::gateway::AUTH)),
        );
        let _ = writeln!(toml, "labels = {{ team = \"{}\" }}", member.team);
    }
    let key_file = secrets.join("atlassian-admin");
    write_secret(&key_file, ORG_API_KEY)?;
    let key_expiry = Utc::now() + Duration::days(10);
    let _ = write!(
        toml,
        "\n[[atlassian_org]]\nname = \"acme\"\norg_id = \"{ORG_ID}\"\napi_key_file = \"secrets/atlassian-admin\"\napi_url = \"{}\"\ninterval = \"{}\"\napi_key_expires_at = \"{}\"\n",
        simulator.url(ORG_API),
        humantime::format_duration(interval * 6),
        key_expiry.to_rfc3339(),
    );
    let path = dir.join("credwatch.toml");
    std::fs::write(&path, toml)?;
    Ok(path)
}

/// Writes a secret file readable by its owner only.
pub(crate) fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{secret}")
}
