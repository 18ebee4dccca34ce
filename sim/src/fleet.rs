//! The demo fleet: a handful of Jira sites and a dozen connections that between them show
//! every state credwatch reports, installed into a [`Simulator`] and written out as a real
//! configuration (TOML plus one secret file per connection) that the normal loader reads.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};

use super::admin::{OrgApi, OrgApiToken};
use super::oauth::OAuthClient;
use super::{ApiToken, Front, Pat, Simulator, Site, User};

pub use super::scale::{install_scale, write_scale_config};

/// One connection of the fleet, as it is written into the configuration.
#[derive(Debug, Clone)]
pub struct Member {
    /// The connection name.
    pub name: &'static str,
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

/// The fleet's connections.
pub fn members() -> Vec<Member> {
    let member = |name, site, kind, auth, secret, state, reason| Member {
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
    };
    vec![
        Member {
            username: Some("sync-bot@acme.example"),
            org: true,
            team: "data",
            ..member(
                "cloud-sync-bot",
                Some("acme-cloud"),
                "cloud",
                "api_token",
                "demo-cloud-token-sync",
                "valid",
                "ok",
            )
        },
        Member {
            username: Some("old-bot@acme.example"),
            org: true,
            ..member(
                "cloud-blocked-bot",
                Some("acme-cloud"),
                "cloud",
                "api_token",
                "demo-cloud-token-blocked",
                "invalid",
                "blocked_by_admin",
            )
        },
        Member {
            token_name: Some("credwatch"),
            expect_account: Some("svc-ci"),
            ..member(
                "dc-ci-pipeline",
                Some("dc-prod"),
                "server",
                "pat",
                "demo-pat-ci",
                "valid",
                "ok",
            )
        },
        Member {
            token_name: Some("sync"),
            team: "data",
            ..member(
                "dc-sync-expiring",
                Some("dc-prod"),
                "server",
                "pat",
                "demo-pat-sync",
                "valid",
                "ok",
            )
        },
        Member {
            token_name: Some("reports"),
            team: "data",
            ..member(
                "dc-reports",
                Some("dc-prod"),
                "server",
                "pat",
                "demo-pat-reports",
                "valid",
                "ok",
            )
        },
        member(
            "dc-legacy-bot",
            Some("dc-prod"),
            "server",
            "pat",
            "demo-pat-forever",
            "valid",
            "ok",
        ),
        Member {
            team: "support",
            ..member(
                "dc-revoked-bot",
                Some("dc-prod"),
                "server",
                "pat",
                "demo-pat-revoked",
                "invalid",
                "unauthorized",
            )
        },
        Member {
            expect_account: Some("svc-sync"),
            ..member(
                "dc-borrowed-token",
                Some("dc-prod"),
                "server",
                "pat",
                "demo-pat-jdoe",
                "invalid",
                "wrong_account",
            )
        },
        Member {
            username: Some("svc-legacy"),
            ..member(
                "dc-locked-basic",
                Some("dc-legacy"),
                "server",
                "basic",
                "demo-right-password",
                "locked",
                "captcha_required",
            )
        },
        Member {
            username: Some("svc-hardened"),
            ..member(
                "dc-basic-disabled",
                Some("dc-hardened"),
                "server",
                "basic",
                "demo-password",
                "forbidden",
                "basic_auth_disabled",
            )
        },
        Member {
            username: Some("ops@acme.example"),
            expires_in_days: Some(300),
            ..member(
                "cloud-ops",
                Some("acme-cloud"),
                "cloud",
                "api_token",
                "demo-cloud-token-ops",
                "valid",
                "ok",
            )
        },
        Member {
            username: Some("analyst@acme.example"),
            team: "data",
            ..member(
                "cloud-password",
                Some("acme-cloud"),
                "cloud",
                "api_token",
                "demo-cloud-account-password",
                "invalid",
                "password_auth_deprecated",
            )
        },
        Member {
            username: Some("bot@acme.example"),
            // Created 340 days ago: the derived expiry is 25 days away.
            created_days_ago: Some(340),
            ..member(
                "cloud-burst-limited",
                Some("acme-cloud-busy"),
                "cloud",
                "api_token",
                "demo-cloud-token-bot",
                "valid",
                "ok",
            )
        },
        Member {
            username: Some("automation@serviceaccount.atlassian.com"),
            team: "data",
            extra: "scoped = true\ngateway_url = \"{gateway}\"\n",
            ..member(
                "cloud-scoped-sa",
                Some("acme-cloud"),
                "cloud",
                "api_token",
                "demo-scoped-token",
                "valid",
                "ok",
            )
        },
        Member {
            username: Some("reporter@serviceaccount.atlassian.com"),
            // Not `scoped`: the site rejects it, the gateway accepts it.
            extra: "gateway_url = \"{gateway}\"\n",
            ..member(
                "cloud-scoped-on-site",
                Some("acme-cloud"),
                "cloud",
                "api_token",
                "demo-scoped-site-token",
                "invalid",
                "scoped_token_site_url",
            )
        },
        Member {
            extra: "client_id = \"demo-cloud-client\"\ngateway_url = \"{gateway}\"\ntoken_url = \"{auth}/oauth/token\"\n",
            ..member(
                "cloud-oauth-sa",
                Some("acme-cloud"),
                "cloud",
                "oauth_client_credentials",
                "demo-cloud-client-secret",
                "valid",
                "ok",
            )
        },
        Member {
            extra: "client_id = \"demo-dc-client\"\n",
            ..member(
                "dc-oauth-sa",
                Some("dc-prod"),
                "server",
                "oauth_client_credentials",
                "demo-dc-client-secret",
                "valid",
                "ok",
            )
        },
        member(
            "dc-unreachable",
            None,
            "server",
            "pat",
            "demo-pat-unreachable",
            "unknown",
            "connect_error",
        ),
        member(
            "dc-behind-sso",
            Some("dc-sso"),
            "server",
            "pat",
            "demo-pat-sso",
            "unknown",
            "redirected",
        ),
    ]
}

/// Where the simulator serves the demo organization's admin API.
pub const ORG_API: &str = "atlassian-admin";

/// The demo organization's id.
pub const ORG_ID: &str = "demo-org-acme";

/// The demo organization's admin API key.
pub const ORG_API_KEY: &str = "demo-admin-api-key";

/// Installs the fleet's sites and accounts into a simulator.
pub fn install(simulator: &Simulator) {
    let now = Utc::now();
    let mut revoked = Pat::new(5, "old-support-bot", "demo-pat-revoked", Some(90));
    revoked.revoked = true;
    simulator.add_site(
        "dc-prod",
        Site::server()
            .with_user(User::new("svc-ci").with_pat(Pat::new(
                1,
                "credwatch",
                "demo-pat-ci",
                Some(200),
            )))
            .with_user(
                User::new("svc-sync")
                    .with_pat(Pat::new(2, "sync", "demo-pat-sync", Some(3)))
                    .with_pat(Pat::new(3, "reports", "demo-pat-reports", Some(20))),
            )
            .with_user(User::new("svc-legacy-bot").with_pat(Pat::new(
                4,
                "legacy",
                "demo-pat-forever",
                None,
            )))
            .with_user(User::new("svc-support").with_pat(revoked))
            .with_user(User::new("svc-dc-sa"))
            .with_oauth_client(OAuthClient::new(
                "demo-dc-client",
                "demo-dc-client-secret",
                "svc-dc-sa",
            ))
            .with_user(User::new("jdoe").with_pat(Pat::new(
                6,
                "my laptop",
                "demo-pat-jdoe",
                Some(60),
            ))),
    );
    let mut locked = User::new("svc-legacy").with_password("demo-right-password");
    locked.failed_logins = 3;
    simulator.add_site("dc-legacy", Site::server().with_user(locked));
    let mut hardened =
        Site::server().with_user(User::new("svc-hardened").with_password("demo-password"));
    hardened.basic_auth_enabled = false;
    simulator.add_site("dc-hardened", hardened);
    let mut ops_token = ApiToken::new("demo-cloud-token-ops");
    ops_token.expires_at = Some(now + Duration::days(300));
    let mut sync_token = ApiToken::new("demo-cloud-token-sync");
    sync_token.expires_at = Some(now + Duration::days(5));
    let mut blocked_token = ApiToken::new("demo-cloud-token-blocked");
    blocked_token.revoked = true;
    simulator.add_site(
        "acme-cloud",
        Site::cloud()
            .with_user(
                User::new("ops")
                    .with_email("ops@acme.example")
                    .with_api_token(ops_token),
            )
            .with_user(
                User::new("sync-bot")
                    .with_email("sync-bot@acme.example")
                    .with_api_token(sync_token),
            )
            .with_user(
                User::new("old-bot")
                    .with_email("old-bot@acme.example")
                    .with_api_token(blocked_token),
            )
            .with_user(
                User::new("analyst")
                    .with_email("analyst@acme.example")
                    .with_password("demo-cloud-account-password"),
            )
            // Service accounts: two with scoped API tokens, one with an OAuth 2.0 client.
            .with_user(
                User::new("automation")
                    .with_email("automation@serviceaccount.atlassian.com")
                    .with_api_token(ApiToken::scoped("demo-scoped-token")),
            )
            .with_user(
                User::new("reporter")
                    .with_email("reporter@serviceaccount.atlassian.com")
                    .with_api_token(ApiToken::scoped("demo-scoped-site-token")),
            )
            .with_user(User::new("sync-sa").with_email("sync-sa@serviceaccount.atlassian.com"))
            .with_oauth_client(OAuthClient::new(
                "demo-cloud-client",
                "demo-cloud-client-secret",
                "sync-sa@serviceaccount.atlassian.com",
            )),
    );
    simulator.add_site(
        "acme-cloud-busy",
        Site::cloud()
            .with_user(
                User::new("bot")
                    .with_email("bot@acme.example")
                    .with_api_token(ApiToken::new("demo-cloud-token-bot")),
            )
            .with_front(Front::Throttle {
                remaining: 1,
                status: 429,
                retry_after: Some("3".to_owned()),
            }),
    );
    // The organization admin API of the Acme organization: the sync bot's token expires in 5
    // days, an admin blocked the old bot's, a report token has not been used for 200 days and
    // an intern's was never used.
    let mut blocked = OrgApiToken::new("old-bot@acme.example", "jira-sync", 120);
    blocked.blocked = true;
    let mut stale = OrgApiToken::new("reports@acme.example", "reports", 150);
    stale.last_active_at = Some(now - Duration::days(200));
    let mut never = OrgApiToken::new("intern@acme.example", "trying things", 80);
    never.last_active_at = None;
    simulator.add_org_api(
        ORG_API,
        OrgApi::new(ORG_ID, ORG_API_KEY)
            .with_token(OrgApiToken::new("sync-bot@acme.example", "jira-sync", 5))
            .with_token(blocked)
            .with_token(stale)
            .with_token(never)
            .with_token(OrgApiToken::new("ops@acme.example", "ops", 300)),
    );
    simulator.add_site(
        "dc-sso",
        Site::server().with_front(Front::Redirect(
            "https://idp.example.com/saml/login?RelayState=jira".to_owned(),
        )),
    );
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
        "# The credwatch demo fleet, served by the built-in Jira simulator.\n\n[defaults]\ninterval = \"{}\"\ntimeout = \"{}\"\nbackoff_initial = \"{}\"\nbackoff_max = \"{}\"\ntoken_list_interval = \"{}\"\n",
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
            Some(site) => simulator.url(site),
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
