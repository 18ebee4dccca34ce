//! `credwatch check` and the daemon agree: one connection for every reason that
//! docs/states-and-reasons.md lists, each on its own simulated site, run through `check` and
//! through the daemon (after its first rounds), must end in the same state and reason, and in
//! the row's. Both run the one probe cycle; this proves the callers around it add no
//! difference. A reason the page lists without a row here fails the test. Confluence's and
//! Bitbucket's answers (docs/jira-answers.md §14, §15) have rows of their own; every
//! simulator that served a Bitbucket site fails the test if credwatch asked it for a path
//! outside `/rest` and `/scm`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use credwatch::config::Config;
use credwatch::probe::{Prober, Reason, Resolve, Resolving, State};
use credwatch::sim::admin::{OrgApi, OrgApiToken};
use credwatch::sim::oauth::OAuthClient;
use credwatch::sim::{ApiToken, Front, Pat, Simulator, Site, User};
use serde_json::Value;

/// Every name is this machine, except the one that does not exist: no DNS server is asked.
struct Loopback;

const NO_SUCH_HOST: &str = "jira.no-such-host.invalid";

impl Resolve for Loopback {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        let found = if host == NO_SUCH_HOST {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no such host: {host}"),
            ))
        } else {
            Ok(vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))])
        };
        Box::pin(async move { found })
    }
}

/// One reason's situation: the site (if any), the connection's keys (`{url}`, `{gateway}`,
/// `{auth}`, `{addr}` and `{closed}` filled in), and the state it must end in.
struct Row {
    /// The connection's name: `r-{reason}` for Jira's rows, the product's own otherwise.
    name: String,
    reason: Reason,
    state: State,
    site: Option<Site>,
    config: String,
}

fn dc_user() -> User {
    User::new("svc-jira")
        .with_password("right-password")
        .with_pat(Pat::new(1, "credwatch", "pat-good", Some(90)))
}

fn cloud_site(cloud_id: &str, token: ApiToken) -> Site {
    Site::cloud().with_cloud_id(cloud_id).with_user(
        User::new("mia")
            .with_email("mia@example.com")
            .with_password("account-password")
            .with_api_token(token),
    )
}

fn row(reason: Reason, state: State, site: Option<Site>, config: &str) -> Row {
    Row {
        name: format!("r-{}", reason.as_str().replace('_', "-")),
        reason,
        state,
        site,
        config: config.to_owned(),
    }
}

fn rows() -> Vec<Row> {
    let dc = || Site::server().with_user(dc_user());
    let dc_with = |change: fn(&mut Site)| {
        let mut site = dc();
        change(&mut site);
        site
    };
    let pat = "url = \"{url}\"\ntoken = \"pat-good\"";
    let bad_pat = "url = \"{url}\"\ntoken = \"pat-wrong\"";
    let basic =
        "url = \"{url}\"\nauth = \"basic\"\nusername = \"svc-jira\"\npassword = \"right-password\"";
    let cloud =
        "url = \"{url}\"\nkind = \"cloud\"\nusername = \"mia@example.com\"\ntoken = \"api-good\"";
    let cloud_id = |n: u32| format!("00000000-0000-4000-8000-{n:012}");
    let mut missing_scope = ApiToken::new("api-good");
    missing_scope.missing_scope = true;
    let mut revoked = ApiToken::new("api-good");
    revoked.revoked = true;
    vec![
        row(Reason::Ok, State::Valid, Some(dc()), pat),
        row(Reason::DnsError, State::Unknown, None, &format!("url = \"https://{NO_SUCH_HOST}/jira\"\ntoken = \"t\"")),
        row(Reason::ConnectError, State::Unknown, None, "url = \"http://127.0.0.1:{closed}/jira\"\ntoken = \"t\""),
        row(Reason::TlsError, State::Unknown, Some(dc()), "url = \"https://{addr}\"\ntoken = \"pat-good\""),
        row(Reason::Timeout, State::Unknown, Some(dc().with_front(Front::Hang)), "url = \"{url}\"\ntoken = \"pat-good\"\ntimeout = \"300ms\""),
        row(Reason::CaptchaRequired, State::Locked, Some(dc_with(|s| s.users[0].failed_logins = 3)), basic),
        row(
            Reason::RateLimited,
            State::Unknown,
            Some(dc().with_front(Front::Throttle { remaining: 1_000, status: 429, retry_after: Some("600".into()) })),
            pat,
        ),
        row(Reason::BasicAuthDisabled, State::Forbidden, Some(dc_with(|s| s.basic_auth_enabled = false)), basic),
        row(
            Reason::PasswordAuthDeprecated,
            State::Invalid,
            Some(cloud_site(&cloud_id(1), ApiToken::new("api-good"))),
            "url = \"{url}\"\nkind = \"cloud\"\nusername = \"mia@example.com\"\ntoken = \"account-password\"",
        ),
        row(
            Reason::WrongAuthScheme,
            State::Invalid,
            Some(cloud_site(&cloud_id(2), ApiToken::new("api-good"))),
            "url = \"{url}\"\nkind = \"server\"\nauth = \"pat\"\ntoken = \"api-good\"",
        ),
        row(Reason::ScopeMismatch, State::Invalid, Some(cloud_site(&cloud_id(3), missing_scope)), cloud),
        row(
            Reason::ClientRejected,
            State::Invalid,
            Some(
                Site::cloud()
                    .with_cloud_id(&cloud_id(4))
                    .with_user(User::new("svc").with_email("svc@serviceaccount.atlassian.com"))
                    .with_oauth_client(OAuthClient::new("client-1", "the-secret", "svc@serviceaccount.atlassian.com")),
            ),
            "url = \"{url}\"\nkind = \"cloud\"\nauth = \"oauth_client_credentials\"\nclient_id = \"client-1\"\nclient_secret = \"a-wrong-secret\"\ngateway_url = \"{gateway}\"\ntoken_url = \"{auth}/oauth/token\"\ncloud_id = \"00000000-0000-4000-8000-000000000004\"",
        ),
        row(
            Reason::ScopedTokenSiteUrl,
            State::Invalid,
            Some(cloud_site(&cloud_id(5), ApiToken::scoped("scoped-token"))),
            "url = \"{url}\"\nkind = \"cloud\"\nusername = \"mia@example.com\"\ntoken = \"scoped-token\"\ngateway_url = \"{gateway}\"",
        ),
        row(
            Reason::BlockedByAdmin,
            State::Invalid,
            Some(cloud_site(&cloud_id(6), revoked)),
            "url = \"{url}\"\nkind = \"cloud\"\nusername = \"mia@example.com\"\ntoken = \"api-good\"\norg = \"acme\"",
        ),
        row(Reason::Unauthorized, State::Invalid, Some(dc()), bad_pat),
        row(Reason::AnonymousFallback, State::Invalid, Some(dc_with(|s| s.anonymous_fallback = true)), bad_pat),
        row(Reason::Forbidden, State::Forbidden, Some(dc_with(|s| s.users[0].forbidden = true)), pat),
        row(Reason::Redirected, State::Unknown, Some(dc().with_front(Front::Redirect("https://idp.example.com/saml".into()))), pat),
        row(Reason::ServerError, State::Unknown, Some(dc().with_front(Front::Status(500, "oops".into()))), pat),
        row(Reason::UnexpectedResponse, State::Unknown, Some(dc().with_front(Front::LoginPage)), pat),
        row(Reason::AccountInactive, State::Invalid, Some(dc_with(|s| s.users[0].active = false)), pat),
        row(Reason::WrongAccount, State::Invalid, Some(dc()), "url = \"{url}\"\ntoken = \"pat-good\"\nexpect_account = \"svc-other\""),
    ]
}

/// A row of another product than Jira, named for its situation.
fn product_row(
    product: &str,
    name: &str,
    reason: Reason,
    state: State,
    site: Site,
    config: &str,
) -> Row {
    Row {
        name: name.to_owned(),
        ..row(
            reason,
            state,
            Some(site),
            &format!("product = \"{product}\"\n{config}"),
        )
    }
}

/// Confluence's answers (docs/jira-answers.md §14), Data Center and Cloud, each on a site of
/// its own.
fn confluence_rows() -> Vec<Row> {
    let dc = || {
        Site::confluence_server().with_user(
            User::new("svc-wiki")
                .with_password("right-password")
                .with_pat(Pat::new(1, "credwatch", "wiki-pat", Some(90))),
        )
    };
    let cloud = |n: u32, token: ApiToken| {
        Site::confluence_cloud()
            .with_cloud_id(&format!("00000000-0000-4000-9000-{n:012}"))
            .with_user(
                User::new("mia")
                    .with_email("mia@example.com")
                    .with_api_token(token),
            )
    };
    let named = |name: &str, reason, state, site, config: &str| {
        product_row("confluence", name, reason, state, site, config)
    };
    let pat = "url = \"{url}\"\ntoken = \"wiki-pat\"";
    let basic =
        "url = \"{url}\"\nauth = \"basic\"\nusername = \"svc-wiki\"\npassword = \"right-password\"";
    let on_cloud = "url = \"{url}/wiki\"\nkind = \"cloud\"\nusername = \"mia@example.com\"";
    let mut locked = dc();
    locked.users[0].failed_logins = 3;
    let mut no_access = cloud(5, ApiToken::new("wiki-api"));
    no_access.users[0].forbidden = true;
    vec![
        named("c-dc-pat", Reason::Ok, State::Valid, dc(), pat),
        named("c-dc-basic", Reason::Ok, State::Valid, dc(), basic),
        named(
            "c-dc-pat-anonymous",
            Reason::AnonymousFallback,
            State::Invalid,
            dc(),
            "url = \"{url}\"\ntoken = \"wiki-pat-wrong\"",
        ),
        named(
            "c-dc-wrong-password",
            Reason::Unauthorized,
            State::Invalid,
            dc(),
            &basic.replace("right-password", "wrong-password"),
        ),
        named(
            "c-dc-captcha",
            Reason::CaptchaRequired,
            State::Locked,
            locked,
            basic,
        ),
        named(
            "c-dc-rate-limited",
            Reason::RateLimited,
            State::Unknown,
            dc().with_front(Front::Throttle {
                remaining: 1_000,
                status: 429,
                retry_after: Some("600".into()),
            }),
            pat,
        ),
        named(
            "c-cloud-token",
            Reason::Ok,
            State::Valid,
            cloud(1, ApiToken::new("wiki-api")),
            &format!("{on_cloud}\ntoken = \"wiki-api\""),
        ),
        named(
            "c-cloud-rejected",
            Reason::Unauthorized,
            State::Invalid,
            cloud(2, ApiToken::new("wiki-api")),
            &format!("{on_cloud}\ntoken = \"wiki-api-wrong\""),
        ),
        named(
            "c-cloud-no-access",
            Reason::Forbidden,
            State::Forbidden,
            no_access,
            &format!("{on_cloud}\ntoken = \"wiki-api\""),
        ),
        named(
            "c-cloud-scoped",
            Reason::Ok,
            State::Valid,
            cloud(3, ApiToken::scoped("wiki-scoped")),
            &format!(
                "{on_cloud}\ntoken = \"wiki-scoped\"\nscoped = true\ngateway_url = \"{{gateway}}\""
            ),
        ),
        named(
            "c-cloud-scoped-on-site",
            Reason::ScopedTokenSiteUrl,
            State::Invalid,
            cloud(4, ApiToken::scoped("wiki-scoped")),
            &format!("{on_cloud}\ntoken = \"wiki-scoped\"\ngateway_url = \"{{gateway}}\""),
        ),
    ]
}

/// Bitbucket Data Center's answers (docs/jira-answers.md §15), each on a site of its own.
fn bitbucket_rows() -> Vec<Row> {
    let site = || {
        Site::bitbucket()
            .with_user(
                User::new("svc-build")
                    .with_password("right-password")
                    .with_pat(Pat::new(1, "ci", "bb-token", Some(90))),
            )
            .with_user(User::token_bot(
                "project-deploy-bot",
                Pat::new(2, "deploy", "bb-project-token", Some(30)),
            ))
    };
    let with = |change: fn(&mut Site)| {
        let mut site = site();
        change(&mut site);
        site
    };
    let named = |name: &str, reason, state, site, config: &str| {
        let config = format!("url = \"{{url}}\"\n{config}");
        product_row("bitbucket", name, reason, state, site, &config)
    };
    let basic = |password: &str| {
        format!("auth = \"basic\"\nusername = \"svc-build\"\npassword = \"{password}\"")
    };
    vec![
        named(
            "b-token",
            Reason::Ok,
            State::Valid,
            site(),
            "token = \"bb-token\"",
        ),
        named(
            "b-token-as-basic",
            Reason::Ok,
            State::Valid,
            site(),
            &basic("bb-token"),
        ),
        named(
            "b-password",
            Reason::Ok,
            State::Valid,
            site(),
            &basic("right-password"),
        ),
        named(
            "b-project-token",
            Reason::Ok,
            State::Valid,
            site(),
            "token = \"bb-project-token\"",
        ),
        named(
            "b-anonymous",
            Reason::AnonymousFallback,
            State::Invalid,
            with(|s| s.anonymous_fallback = true),
            "token = \"bb-wrong\"",
        ),
        named(
            "b-rejected-token",
            Reason::Unauthorized,
            State::Invalid,
            site(),
            "token = \"bb-wrong\"",
        ),
        named(
            "b-wrong-password",
            Reason::Unauthorized,
            State::Invalid,
            site(),
            &basic("wrong-password"),
        ),
        named(
            "b-no-permission",
            Reason::Forbidden,
            State::Forbidden,
            with(|s| s.users[0].forbidden = true),
            "token = \"bb-token\"",
        ),
        named(
            "b-captcha",
            Reason::CaptchaRequired,
            State::Locked,
            with(|s| s.users[0].failed_logins = 5),
            &basic("right-password"),
        ),
        named(
            "b-rate-limited",
            Reason::RateLimited,
            State::Unknown,
            site().with_front(Front::Throttle {
                remaining: 1_000,
                status: 429,
                retry_after: Some("600".into()),
            }),
            "token = \"bb-token\"",
        ),
    ]
}

/// The reasons docs/states-and-reasons.md lists in its table of reasons.
fn documented_reasons() -> BTreeSet<String> {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/states-and-reasons.md"),
    )
    .expect("the page");
    let table = page
        .split("\n## ")
        .find(|section| section.starts_with("Reasons"))
        .expect("a Reasons section");
    table
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|line| line.split('`').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn check_and_the_daemon_agree_on_every_documented_reason() {
    let mut rows = rows();
    rows.extend(confluence_rows());
    rows.extend(bitbucket_rows());
    let covered: BTreeSet<String> = rows.iter().map(|r| r.reason.as_str().to_owned()).collect();
    let documented = documented_reasons();
    assert!(
        documented.len() >= 20,
        "the page's reasons were read: {documented:?}"
    );
    let missing: Vec<&String> = documented.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "documented reasons without a row: {missing:?}"
    );

    let simulator = Simulator::start().await.expect("simulator");
    let closed = common::free_port();
    let mut toml = format!(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"900ms\"\nauth_failure_interval = \"1h\"\nbackoff_initial = \"1s\"\n\n\
         [[atlassian_org]]\nname = \"acme\"\norg_id = \"org-1\"\napi_key = \"admin-key\"\napi_url = \"{}\"\ninterval = \"1h\"\n\n",
        simulator.url("admin")
    );
    // A heartbeat (its own site, probed each second): the daemon's rounds are the event the
    // comparison waits on.
    let (beat, heartbeat) = common::heartbeat(&simulator);
    toml.push_str(&heartbeat);
    let mut blocked = OrgApiToken::new("mia@example.com", "ci", 60);
    blocked.blocked = true;
    simulator.add_org_api(
        "admin",
        OrgApi::new("org-1", "admin-key").with_token(blocked),
    );
    for (i, row) in rows.iter().enumerate() {
        let site = format!("site{i}");
        let url = simulator.url(&site);
        if let Some(model) = &row.site {
            simulator.add_site(&site, model.clone());
        }
        let keys = row
            .config
            .replace("{url}", &url)
            .replace("{addr}", &format!("{}/{site}", simulator.addr()))
            .replace("{closed}", &closed.to_string())
            .replace("{gateway}", &simulator.url("gateway"))
            .replace("{auth}", &simulator.url("auth"));
        toml.push_str(&format!(
            "[[connection]]\nname = \"{}\"\n{keys}\n\n",
            row.name
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::write(dir.path(), "credwatch.toml", &toml);
    let config = Config::load(&path).unwrap_or_else(|e| panic!("config:\n{e}"));
    let prober = Prober::with_resolver(Arc::new(Loopback)).expect("prober");

    // Through check, as `credwatch check` runs it (the organizations' lists first).
    let rowed: Vec<_> = config
        .connections
        .iter()
        .filter(|c| c.name != beat)
        .cloned()
        .collect();
    let orgs = credwatch::check::read_orgs(&prober, &config.orgs, &rowed, true).await;
    let options = credwatch::check::Options {
        concurrency: 32,
        orgs,
        ..Default::default()
    };
    let reports = common::within(
        Duration::from_secs(30),
        credwatch::check::run(&prober, rowed, &options),
    )
    .await;

    // Through the daemon, after its first rounds: every connection probed (or stopped: a
    // locked account), then two more rounds for the retries of those without a verdict.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let daemon_options = credwatch::daemon::Options {
        grace: Duration::from_secs(1),
        ..credwatch::daemon::Options::new(path.clone())
    };
    let daemon = credwatch::daemon::Daemon::start(config.clone(), listener, daemon_options, prober)
        .expect("daemon starts");
    let base = format!("http://{}", daemon.addr());
    let deadline = Instant::now() + Duration::from_secs(30);
    let api = loop {
        let api = common::get_json(&format!("{base}/api/v1/connections")).await;
        let all = api.as_array().expect("array");
        let probed = all
            .iter()
            .all(|c| c["probes_total"].as_u64().unwrap_or(0) >= 1 || !c["paused"].is_null());
        if probed && all.len() == rows.len() + 1 {
            common::after_rounds(&base, &beat, 2).await;
            break common::get_json(&format!("{base}/api/v1/connections")).await;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not settle: {api:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    daemon.shutdown(Duration::from_secs(1)).await;

    let mut disagreements = Vec::new();
    for row in &rows {
        let name = &row.name;
        let report = reports
            .iter()
            .find(|r| &r.connection.name == name)
            .expect("reported");
        let daemon: &Value = api
            .as_array()
            .and_then(|all| all.iter().find(|c| c["name"] == name.as_str()))
            .expect("listed");
        let by_check = (
            report.outcome.state.to_string(),
            report.outcome.reason.to_string(),
        );
        let by_daemon = (
            daemon["state"].as_str().unwrap_or("?").to_owned(),
            daemon["reason"].as_str().unwrap_or("?").to_owned(),
        );
        let wanted = (row.state.to_string(), row.reason.to_string());
        if by_check != wanted || by_daemon != wanted {
            disagreements.push(format!(
                "{name}: wanted {wanted:?}, check {by_check:?} ({:?}), daemon {by_daemon:?} ({})",
                report.outcome.detail, daemon["detail"]
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
