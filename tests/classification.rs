//! One row per line of the classification table (docs/jira-answers.md §7), end to end: a simulated
//! Jira site set up to be in that situation, a real probe over loopback, and the state, the
//! reason and the request the simulator saw.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use credwatch::config::Connection;
use credwatch::probe::{Outcome, Prober, Reason, State};
use credwatch::sim::{ApiToken, Bucket, Front, Pat, Simulator, Site, User};

use common::{connection, within};

/// A situation: the site to serve, the connection to probe, what must come out.
struct Row {
    what: &'static str,
    site: Site,
    /// Extra TOML lines for the connection (`url` is added unless given).
    config: &'static str,
    state: State,
    reason: Reason,
    /// The Authorization header the simulator must have seen (`None`: no request expected).
    sent: Option<&'static str>,
}

fn basic(login: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{login}:{secret}"))
    )
}

fn dc_user() -> User {
    User::new("svc-jira")
        .with_password("right-password")
        .with_pat(Pat::new(1, "credwatch", "pat-good", Some(90)))
}

fn cloud_user() -> User {
    User::new("mia")
        .with_email("mia@example.com")
        .with_password("account-password")
        .with_api_token(ApiToken::new("api-good"))
}

fn rows() -> Vec<Row> {
    let dc = || Site::server().with_user(dc_user());
    let cloud = || Site::cloud().with_user(cloud_user());
    let pat = "auth = \"pat\"\ntoken = \"pat-good\"";
    let bad_pat = "auth = \"pat\"\ntoken = \"pat-wrong\"";
    let cloud_token = "kind = \"cloud\"\nusername = \"mia@example.com\"\ntoken = \"api-good\"";
    vec![
        Row {
            what: "DC PAT accepted",
            site: dc(),
            config: pat,
            state: State::Valid,
            reason: Reason::Ok,
            sent: Some("Bearer pat-good"),
        },
        Row {
            what: "Cloud API token accepted",
            site: cloud(),
            config: cloud_token,
            state: State::Valid,
            reason: Reason::Ok,
            sent: Some("api_token"),
        },
        Row {
            what: "DC Basic password accepted",
            site: dc(),
            config: "auth = \"basic\"\nusername = \"svc-jira\"\npassword = \"right-password\"",
            state: State::Valid,
            reason: Reason::Ok,
            sent: Some("basic-right"),
        },
        Row {
            what: "CAPTCHA lock refuses even the right password",
            site: {
                let mut site = dc();
                site.users[0].failed_logins = 3;
                site
            },
            config: "auth = \"basic\"\nusername = \"svc-jira\"\npassword = \"right-password\"",
            state: State::Locked,
            reason: Reason::CaptchaRequired,
            sent: Some("basic-right"),
        },
        Row {
            what: "Cloud burst limit (429 with Retry-After)",
            site: cloud().with_front(Front::Throttle {
                remaining: 5,
                status: 429,
                retry_after: Some("30".into()),
            }),
            config: cloud_token,
            state: State::Unknown,
            reason: Reason::RateLimited,
            sent: Some("api_token"),
        },
        Row {
            what: "503 with Retry-After counts as a rate limit",
            site: cloud().with_front(Front::Throttle {
                remaining: 5,
                status: 503,
                retry_after: Some("Sun, 22 Nov 2099 10:05:00 GMT".into()),
            }),
            config: cloud_token,
            state: State::Unknown,
            reason: Reason::RateLimited,
            sent: Some("api_token"),
        },
        Row {
            what: "DC per-user bucket empty",
            site: {
                let mut site = dc();
                site.bucket = Some(Bucket {
                    limit: 1,
                    fill_rate: 1,
                    interval_seconds: 3600,
                });
                site
            },
            // The first probe (in `run_row`) empties the bucket; this one is refused.
            config: pat,
            state: State::Unknown,
            reason: Reason::RateLimited,
            sent: Some("Bearer pat-good"),
        },
        Row {
            what: "Basic auth disabled by the admin",
            site: {
                let mut site = dc();
                site.basic_auth_enabled = false;
                site
            },
            config: "auth = \"basic\"\nusername = \"svc-jira\"\npassword = \"right-password\"",
            state: State::Forbidden,
            reason: Reason::BasicAuthDisabled,
            sent: Some("basic-right"),
        },
        Row {
            what: "account password sent to Cloud",
            site: cloud(),
            config: "kind = \"cloud\"\nusername = \"mia@example.com\"\ntoken = \"account-password\"",
            state: State::Invalid,
            reason: Reason::PasswordAuthDeprecated,
            sent: Some("api_token-password"),
        },
        Row {
            what: "Cloud API token sent as Bearer",
            site: cloud(),
            config: "kind = \"server\"\nauth = \"pat\"\ntoken = \"api-good\"",
            state: State::Invalid,
            reason: Reason::WrongAuthScheme,
            sent: Some("Bearer api-good"),
        },
        Row {
            what: "scoped Cloud token without the scope",
            site: {
                let mut site = cloud();
                site.users[0].api_tokens[0].missing_scope = true;
                site
            },
            config: cloud_token,
            state: State::Invalid,
            reason: Reason::ScopeMismatch,
            sent: Some("api_token"),
        },
        Row {
            what: "DC unknown PAT",
            site: dc(),
            config: bad_pat,
            state: State::Invalid,
            reason: Reason::Unauthorized,
            sent: Some("Bearer pat-wrong"),
        },
        Row {
            what: "DC unknown PAT, the errorMessages form of the 401 body",
            site: {
                let mut site = dc();
                site.error_messages_body = true;
                site
            },
            config: bad_pat,
            state: State::Invalid,
            reason: Reason::Unauthorized,
            sent: Some("Bearer pat-wrong"),
        },
        Row {
            what: "DC expired PAT with a known expiry in the past",
            site: {
                let mut site = dc();
                site.users[0].pats[0].expiring_at = Some(chrono::Utc::now() - chrono::Duration::days(2));
                site
            },
            config: "auth = \"pat\"\ntoken = \"pat-good\"\nexpires_at = \"2020-01-01\"",
            state: State::Expired,
            reason: Reason::Unauthorized,
            sent: Some("Bearer pat-good"),
        },
        Row {
            what: "DC wrong Basic password",
            site: dc(),
            config: "auth = \"basic\"\nusername = \"svc-jira\"\npassword = \"wrong-password\"",
            state: State::Invalid,
            reason: Reason::Unauthorized,
            sent: Some("basic-wrong"),
        },
        Row {
            what: "Cloud revoked API token",
            site: {
                let mut site = cloud();
                site.users[0].api_tokens[0].revoked = true;
                site
            },
            config: cloud_token,
            state: State::Invalid,
            reason: Reason::Unauthorized,
            sent: Some("api_token"),
        },
        Row {
            what: "Cloud deactivated account: its tokens fail",
            site: {
                let mut site = cloud();
                site.users[0].active = false;
                site
            },
            config: cloud_token,
            state: State::Invalid,
            reason: Reason::Unauthorized,
            sent: Some("api_token"),
        },
        Row {
            what: "Cloud anonymous-permitted answer with a dead token (200 + AUTHENTICATED_FAILED)",
            site: {
                let mut site = cloud();
                site.anonymous_fallback = true;
                site.users[0].api_tokens[0].revoked = true;
                site
            },
            config: cloud_token,
            state: State::Invalid,
            reason: Reason::Unauthorized,
            sent: Some("api_token"),
        },
        Row {
            what: "DC anonymous fall-through with a bad PAT",
            site: {
                let mut site = dc();
                site.anonymous_fallback = true;
                site
            },
            config: bad_pat,
            state: State::Invalid,
            reason: Reason::AnonymousFallback,
            sent: Some("Bearer pat-wrong"),
        },
        Row {
            what: "authenticated without permission",
            site: {
                let mut site = dc();
                site.users[0].forbidden = true;
                site
            },
            config: pat,
            state: State::Forbidden,
            reason: Reason::Forbidden,
            sent: Some("Bearer pat-good"),
        },
        Row {
            what: "SSO redirect in front of the API",
            site: dc().with_front(Front::Redirect("https://idp.example.com/saml".into())),
            config: pat,
            state: State::Unknown,
            reason: Reason::Redirected,
            sent: Some("Bearer pat-good"),
        },
        Row {
            what: "500 from the node",
            site: dc().with_front(Front::Status(500, "Internal Server Error".into())),
            config: pat,
            state: State::Unknown,
            reason: Reason::ServerError,
            sent: Some("Bearer pat-good"),
        },
        Row {
            what: "503 maintenance without Retry-After",
            site: dc().with_front(Front::Status(503, "{\"state\":\"MAINTENANCE\"}".into())),
            config: pat,
            state: State::Unknown,
            reason: Reason::ServerError,
            sent: Some("Bearer pat-good"),
        },
        Row {
            what: "200 HTML login page",
            site: dc().with_front(Front::LoginPage),
            config: pat,
            state: State::Unknown,
            reason: Reason::UnexpectedResponse,
            sent: Some("Bearer pat-good"),
        },
        Row {
            what: "inactive account reported by myself",
            site: {
                let mut site = dc();
                site.users[0].active = false;
                site
            },
            config: pat,
            state: State::Invalid,
            reason: Reason::AccountInactive,
            sent: Some("Bearer pat-good"),
        },
        Row {
            what: "credential of another account",
            site: dc(),
            config: "auth = \"pat\"\ntoken = \"pat-good\"\nexpect_account = \"svc-other\"",
            state: State::Invalid,
            reason: Reason::WrongAccount,
            sent: Some("Bearer pat-good"),
        },
        Row {
            what: "expected account matches without case",
            site: dc(),
            config: "auth = \"pat\"\ntoken = \"pat-good\"\nexpect_account = \"SVC-JIRA\"",
            state: State::Valid,
            reason: Reason::Ok,
            sent: Some("Bearer pat-good"),
        },
        Row {
            what: "Cloud account matched by account id",
            site: cloud(),
            config: "kind = \"cloud\"\nusername = \"mia@example.com\"\ntoken = \"api-good\"\nexpect_account = \"someone@example.com\"",
            state: State::Invalid,
            reason: Reason::WrongAccount,
            sent: Some("api_token"),
        },
        Row {
            what: "nobody answers within the timeout",
            site: dc().with_front(Front::Hang),
            config: "auth = \"pat\"\ntoken = \"pat-good\"\ntimeout = \"300ms\"",
            state: State::Unknown,
            reason: Reason::Timeout,
            sent: Some("Bearer pat-good"),
        },
    ]
}

/// Resolves the Authorization shorthand used in the rows.
fn expected_authorization(sent: &str) -> String {
    match sent {
        "api_token" => basic("mia@example.com", "api-good"),
        "api_token-password" => basic("mia@example.com", "account-password"),
        "basic-right" => basic("svc-jira", "right-password"),
        "basic-wrong" => basic("svc-jira", "wrong-password"),
        literal => literal.to_owned(),
    }
}

async fn probe(prober: &Prober, connection: &Connection) -> Outcome {
    within(Duration::from_secs(10), prober.probe(connection)).await
}

#[tokio::test]
async fn every_row_of_the_classification_table() {
    let simulator = Simulator::start().await.expect("simulator starts");
    let prober = Prober::new().expect("prober");
    let mut failures = Vec::new();
    for (i, row) in rows().into_iter().enumerate() {
        let site = format!("site{i}");
        // The one row whose bucket holds a single token: a first probe empties it.
        let needs_warmup = row.site.bucket.is_some_and(|b| b.limit == 1);
        simulator.add_site(&site, row.site);
        let kind_cloud = row.config.contains("kind = \"cloud\"");
        let conn = connection(&format!(
            "name = \"row{i}\"\nurl = \"{}\"\n{}",
            simulator.url(&site),
            row.config
        ));
        if needs_warmup {
            let first = probe(&prober, &conn).await;
            assert_eq!(first.state, State::Valid, "{}: warm-up", row.what);
        }
        let before = simulator.requests_for(&site).len();
        let outcome = probe(&prober, &conn).await;
        if (outcome.state, outcome.reason) != (row.state, row.reason) {
            failures.push(format!(
                "{}: expected {}/{}, got {}/{} ({:?})",
                row.what, row.state, row.reason, outcome.state, outcome.reason, outcome.detail
            ));
            continue;
        }
        assert_eq!(
            outcome.hint.is_none(),
            row.reason == Reason::Ok,
            "{}",
            row.what
        );
        let requests = simulator.requests_for(&site);
        let Some(sent) = row.sent else { continue };
        assert_eq!(
            requests.len(),
            before + 1,
            "{}: exactly one request",
            row.what
        );
        let request = requests.last().expect("a request");
        let api = if kind_cloud { 3 } else { 2 };
        assert_eq!(request.method, "GET", "{}", row.what);
        assert_eq!(
            request.path,
            format!("/{site}/rest/api/{api}/myself"),
            "{}",
            row.what
        );
        assert_eq!(request.query, None, "{}", row.what);
        assert_eq!(
            request.authorization.as_deref(),
            Some(expected_authorization(sent).as_str()),
            "{}",
            row.what
        );
        assert_eq!(
            request.accept.as_deref(),
            Some("application/json"),
            "{}",
            row.what
        );
        assert_eq!(
            request.user_agent.as_deref(),
            Some(concat!("credwatch/", env!("CARGO_PKG_VERSION"))),
            "{}",
            row.what
        );
    }
    assert!(
        failures.is_empty(),
        "rows that failed:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn context_path_is_kept_and_an_unknown_one_is_unexpected() {
    let simulator = Simulator::start().await.expect("simulator starts");
    simulator.add_site("jira", Site::server().with_user(dc_user()));
    let prober = Prober::new().expect("prober");
    let right = connection(&format!(
        "name = \"a\"\nurl = \"{}/\"\ntoken = \"pat-good\"",
        simulator.url("jira")
    ));
    assert_eq!(probe(&prober, &right).await.reason, Reason::Ok);
    assert_eq!(simulator.requests()[0].path, "/jira/rest/api/2/myself");
    let wrong = connection(&format!(
        "name = \"b\"\nurl = \"{}\"\ntoken = \"pat-good\"",
        simulator.url("no-such-context")
    ));
    let outcome = probe(&prober, &wrong).await;
    assert_eq!(
        (outcome.state, outcome.reason),
        (State::Unknown, Reason::UnexpectedResponse)
    );
    assert_eq!(outcome.http_status, Some(404));
}

#[tokio::test]
async fn rate_limit_headers_and_identity_are_reported() {
    let simulator = Simulator::start().await.expect("simulator starts");
    let mut site = Site::server().with_user(dc_user());
    site.bucket = Some(Bucket {
        limit: 500,
        fill_rate: 500,
        interval_seconds: 60,
    });
    simulator.add_site("dc", site);
    let prober = Prober::new().expect("prober");
    let conn = connection(&format!(
        "name = \"a\"\nurl = \"{}\"\ntoken = \"pat-good\"",
        simulator.url("dc")
    ));
    let outcome = probe(&prober, &conn).await;
    assert_eq!(outcome.reason, Reason::Ok);
    assert_eq!(outcome.rate_limit.limit, Some(500));
    assert_eq!(outcome.rate_limit.remaining, Some(499));
    assert_eq!(outcome.rate_limit.fill_rate, Some(500));
    assert_eq!(outcome.rate_limit.interval_seconds, Some(60));
    assert_eq!(outcome.retry_after.map(|r| r.to_string()), Some("0".into()));
    let identity = outcome.identity.expect("identity");
    assert_eq!(identity.name.as_deref(), Some("svc-jira"));
    assert_eq!(identity.email.as_deref(), Some("svc-jira@example.com"));
    assert!(identity
        .key
        .as_deref()
        .is_some_and(|k| k.starts_with("JIRAUSER")));
}

#[tokio::test]
async fn no_http_answer_at_all() {
    let simulator = Simulator::start().await.expect("simulator starts");
    simulator.add_site("dc", Site::server().with_user(dc_user()));

    // Nobody listens: bind a port, release it, connect to it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let prober = Prober::new().expect("prober");
    let refused = connection(&format!(
        "name = \"a\"\nurl = \"http://127.0.0.1:{port}/jira\"\ntoken = \"t\""
    ));
    let outcome = probe(&prober, &refused).await;
    assert_eq!(
        (outcome.state, outcome.reason),
        (State::Unknown, Reason::ConnectError)
    );
    assert!(outcome.hint.is_some());

    // https:// to the plain-HTTP simulator: the TLS handshake fails.
    let tls = connection(&format!(
        "name = \"b\"\nurl = \"https://{}/dc\"\ntoken = \"pat-good\"",
        simulator.addr()
    ));
    let outcome = probe(&prober, &tls).await;
    assert_eq!(
        (outcome.state, outcome.reason),
        (State::Unknown, Reason::TlsError),
        "{:?}",
        outcome.detail
    );

    // A name that does not resolve, without asking any DNS server.
    let resolving = Prober::with_resolver(Arc::new(common::NoSuchHost)).expect("prober");
    let unresolved =
        connection("name = \"c\"\nurl = \"https://jira.unresolvable.example\"\ntoken = \"t\"");
    let outcome = probe(&resolving, &unresolved).await;
    assert_eq!(
        (outcome.state, outcome.reason),
        (State::Unknown, Reason::DnsError),
        "{:?}",
        outcome.detail
    );
}
