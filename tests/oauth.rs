//! OAuth 2.0 client credentials against the simulator (docs/jira-answers.md §10): Cloud (the
//! token from the token endpoint, the cloudId from the accessible resources, `myself` at the
//! gateway) and Data Center (`/rest/oauth2/latest/token`, then the site's `myself`); one token
//! request for several probes within its life and one new one after a 401; the token endpoint's
//! RFC 6749 errors as `client_rejected`, `scope_mismatch` and `forbidden`; its rate limits as
//! such, marked as the token endpoint's; a rejected client left alone for
//! `auth_failure_interval`; the client secret's declared expiry.

mod common;

use credwatch::probe::{Prober, Reason, State, TokenRequest};
use credwatch::sim::oauth::OAuthClient;
use credwatch::sim::{Front, Simulator, Site, User};

const CLOUD_ID: &str = "0a0a0a0a-1111-4000-8000-00000000000a";
const SECRET: &str = "client-secret-1";

fn cloud_site(client: OAuthClient) -> Site {
    Site::cloud()
        .with_cloud_id(CLOUD_ID)
        .with_user(User::new("svc").with_email("svc@serviceaccount.atlassian.com"))
        .with_oauth_client(client)
}

fn client() -> OAuthClient {
    OAuthClient::new("client-1", SECRET, "svc@serviceaccount.atlassian.com")
}

fn cloud_fragment(simulator: &Simulator, secret: &str, extra: &str) -> String {
    format!(
        "name = \"sa\"\nurl = \"{}\"\nkind = \"cloud\"\nauth = \"oauth_client_credentials\"\nclient_id = \"client-1\"\nclient_secret = \"{secret}\"\ngateway_url = \"{}\"\ntoken_url = \"{}/oauth/token\"\n{extra}",
        simulator.url("cloud"),
        simulator.url("gateway"),
        simulator.url("auth"),
    )
}

fn count(simulator: &Simulator, path: &str) -> usize {
    simulator
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .count()
}

#[tokio::test]
async fn a_cloud_service_account_gets_a_token_finds_its_site_and_is_valid() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("cloud", cloud_site(client()));
    let connection = common::connection(&cloud_fragment(&simulator, SECRET, ""));
    let prober = Prober::new().expect("prober");
    let outcome = prober.probe(&connection).await;
    assert_eq!(
        (outcome.state, outcome.reason),
        (State::Valid, Reason::Ok),
        "{outcome:?}"
    );
    let requests = simulator.requests();
    let seen: Vec<(&str, &str, Option<&str>)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.scheme()))
        .collect();
    assert_eq!(
        seen,
        [
            ("POST", "/auth/oauth/token", None),
            (
                "GET",
                "/gateway/oauth/token/accessible-resources",
                Some("Bearer")
            ),
            (
                "GET",
                &*format!("/gateway/ex/jira/{CLOUD_ID}/rest/api/3/myself"),
                Some("Bearer")
            ),
        ]
    );
}

#[tokio::test]
async fn one_token_request_serves_several_probes_and_a_401_brings_exactly_one_more() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("cloud", cloud_site(client()));
    let connection = common::connection(&cloud_fragment(
        &simulator,
        SECRET,
        &format!("cloud_id = \"{CLOUD_ID}\"\n"),
    ));
    let prober = Prober::new().expect("prober");
    for _ in 0..4 {
        assert_eq!(prober.probe(&connection).await.state, State::Valid);
    }
    assert_eq!(
        count(&simulator, "/auth/oauth/token"),
        1,
        "one token for four probes"
    );
    assert_eq!(
        count(&simulator, "/gateway/oauth/token/accessible-resources"),
        0,
        "cloud_id set"
    );

    simulator.revoke_access_tokens();
    let outcome = prober.probe(&connection).await;
    assert_eq!(outcome.state, State::Valid, "{outcome:?}");
    assert_eq!(
        count(&simulator, "/auth/oauth/token"),
        2,
        "one new token after the 401"
    );
    let myself = format!("/gateway/ex/jira/{CLOUD_ID}/rest/api/3/myself");
    assert_eq!(
        count(&simulator, &myself),
        6,
        "four probes, then the 401 and its retry"
    );
}

#[tokio::test]
async fn a_new_secret_is_a_new_client_whose_token_is_asked_for_anew() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("cloud", cloud_site(client()));
    let prober = Prober::new().expect("prober");
    let wrong = common::connection(&cloud_fragment(
        &simulator,
        "stale-secret",
        &format!("cloud_id = \"{CLOUD_ID}\"\n"),
    ));
    assert_eq!(prober.probe(&wrong).await.reason, Reason::ClientRejected);
    let right = common::connection(&cloud_fragment(
        &simulator,
        SECRET,
        &format!("cloud_id = \"{CLOUD_ID}\"\n"),
    ));
    assert_eq!(prober.probe(&right).await.state, State::Valid);
    assert_eq!(count(&simulator, "/auth/oauth/token"), 2);
}

#[tokio::test]
async fn the_token_endpoints_errors_are_verdicts_with_hints() {
    let simulator = Simulator::start().await.expect("simulator");
    let no_scope = OAuthClient {
        client_id: "client-2".into(),
        scopes: Vec::new(),
        ..client()
    };
    let no_grant = OAuthClient {
        client_id: "client-3".into(),
        grant_allowed: false,
        ..client()
    };
    simulator.add_site(
        "cloud",
        cloud_site(client())
            .with_oauth_client(no_scope)
            .with_oauth_client(no_grant),
    );
    let prober = Prober::new().expect("prober");
    let cases = [
        (
            "client-1",
            "not-the-secret",
            State::Invalid,
            Reason::ClientRejected,
            "invalid_client",
        ),
        (
            "client-2",
            SECRET,
            State::Invalid,
            Reason::ScopeMismatch,
            "invalid_scope",
        ),
        (
            "client-3",
            SECRET,
            State::Forbidden,
            Reason::Forbidden,
            "unauthorized_client",
        ),
    ];
    for (id, secret, state, reason, said) in cases {
        let fragment = cloud_fragment(&simulator, secret, &format!("cloud_id = \"{CLOUD_ID}\"\n"))
            .replace("client_id = \"client-1\"", &format!("client_id = \"{id}\""));
        let outcome = prober.probe(&common::connection(&fragment)).await;
        assert_eq!(
            (outcome.state, outcome.reason),
            (state, reason),
            "{id}: {outcome:?}"
        );
        let detail = outcome.detail.clone().unwrap_or_default();
        assert!(detail.contains(said), "{id}: {detail}");
        assert!(!detail.contains(secret), "{id}: the secret is not shown");
        assert_eq!(outcome.token_request, TokenRequest::Failed, "{id}");
        let hint = outcome.hint.expect("a hint");
        if reason == Reason::ScopeMismatch {
            assert!(hint.contains("read:jira-user"), "{hint}");
        }
    }
    // Neither a retry loop nor a probe of Jira: one token request each.
    assert_eq!(count(&simulator, "/auth/oauth/token"), 3);
    assert_eq!(
        count(
            &simulator,
            &format!("/gateway/ex/jira/{CLOUD_ID}/rest/api/3/myself")
        ),
        0
    );
}

#[tokio::test]
async fn a_rate_limited_token_endpoint_is_no_verdict_on_the_client() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("cloud", cloud_site(client()));
    simulator.throttle_token_endpoint(1, 429, Some("30"));
    let connection = common::connection(&cloud_fragment(
        &simulator,
        SECRET,
        &format!("cloud_id = \"{CLOUD_ID}\"\n"),
    ));
    let prober = Prober::new().expect("prober");
    let outcome = prober.probe(&connection).await;
    assert_eq!(
        (outcome.state, outcome.reason),
        (State::Unknown, Reason::RateLimited),
        "{outcome:?}"
    );
    assert_eq!(outcome.token_request, TokenRequest::Failed);
    assert!(outcome.retry_after.is_some());
    assert_eq!(prober.probe(&connection).await.state, State::Valid);
}

#[tokio::test]
async fn a_data_center_service_account_uses_the_sites_token_endpoint() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        Site::server()
            .with_user(User::new("svc-sync"))
            .with_oauth_client(OAuthClient::new("dc-client", SECRET, "svc-sync")),
    );
    let fragment = format!(
        "name = \"dc-sa\"\nurl = \"{}\"\nauth = \"oauth_client_credentials\"\nclient_id = \"dc-client\"\nclient_secret = \"{SECRET}\"\n",
        simulator.url("dc")
    );
    let prober = Prober::new().expect("prober");
    let outcome = prober.probe(&common::connection(&fragment)).await;
    assert_eq!(
        (outcome.state, outcome.reason),
        (State::Valid, Reason::Ok),
        "{outcome:?}"
    );
    let seen: Vec<(String, String)> = simulator
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        seen,
        [
            ("POST".to_owned(), "/dc/rest/oauth2/latest/token".to_owned()),
            ("GET".to_owned(), "/dc/rest/api/2/myself".to_owned()),
        ]
    );
    // The DC site's outage in front of the token endpoint is no verdict either.
    simulator.update_site("dc", |site| site.front = Front::Status(503, "down".into()));
    let fresh = Prober::new().expect("prober");
    let outcome = fresh.probe(&common::connection(&fragment)).await;
    assert_eq!(outcome.state, State::Unknown, "{outcome:?}");
}

#[test]
fn the_oauth_keys_are_checked() {
    let base = "name = \"x\"\nurl = \"https://acme.atlassian.net\"\n";
    let cases = [
        ("auth = \"oauth_client_credentials\"\nclient_secret = \"s\"\n", "client_id"),
        ("auth = \"oauth_client_credentials\"\nclient_id = \"c\"\ntoken = \"s\"\n", "token"),
        ("auth = \"oauth_client_credentials\"\nclient_id = \"c\"\nclient_secret = \"s\"\nusername = \"u\"\n", "username"),
        ("username = \"u@x\"\ntoken = \"t\"\nclient_id = \"c\"\n", "client_id"),
        ("username = \"u@x\"\ntoken = \"t\"\ncloud_id = \"abc\"\n", "cloud_id"),
        ("url = \"https://jira.example.com\"\ntoken = \"t\"\nscoped = true\n", "scoped"),
        ("username = \"u@x\"\ntoken = \"t\"\nscoped = true\ncloud_id = \"a/b\"\n", "cloud_id"),
        ("username = \"u@x\"\ntoken = \"t\"\nscoped = true\ngateway_url = \"http://gateway.example.com\"\n", "gateway_url"),
    ];
    for (extra, key) in cases {
        let text = if extra.starts_with("url") {
            format!("[[connection]]\nname = \"x\"\n{extra}")
        } else {
            format!("[[connection]]\n{base}{extra}")
        };
        let errors = credwatch::config::Config::from_sources(&[("t.toml".into(), text.clone())])
            .expect_err(&text);
        assert!(
            errors.0.iter().any(|e| e.key.as_deref() == Some(key)),
            "{key} for {text}: {errors}"
        );
    }
}

#[tokio::test]
async fn a_rejected_client_is_asked_for_again_only_after_auth_failure_interval() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("cloud", cloud_site(client()));
    let toml = format!(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\nauth_failure_interval = \"1h\"\n\n[[connection]]\n{}",
        cloud_fragment(&simulator, "revoked-secret", &format!("cloud_id = \"{CLOUD_ID}\"\n"))
    );
    let harness = common::harness::Harness::start(&toml, false).await;
    common::eventually(
        std::time::Duration::from_secs(5),
        "the first token request",
        || async { count(&simulator, "/auth/oauth/token") == 1 },
    )
    .await;
    // Probed every second otherwise: three seconds more without a second login.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        count(&simulator, "/auth/oauth/token"),
        1,
        "one login, then the wait"
    );
    let (_, body) = harness.get("/api/v1/connections").await;
    assert!(body.contains("client_rejected"), "{body}");
}

#[test]
fn the_client_secrets_declared_expiry_is_the_connections() {
    let connection = common::connection(
        "name = \"sa\"\nurl = \"https://acme.atlassian.net\"\nauth = \"oauth_client_credentials\"\nclient_id = \"c\"\nclient_secret = \"s\"\nclient_secret_expires_at = \"2027-06-01\"\n",
    );
    let (expiry, source) = credwatch::expiry::declared(&connection).expect("declared");
    assert_eq!(expiry.to_rfc3339(), "2027-06-01T00:00:00+00:00");
    assert_eq!(source, credwatch::expiry::Source::Config);
}

#[tokio::test]
async fn a_rate_limited_token_endpoint_closes_its_own_gate_not_the_sites() {
    use credwatch::sim::ApiToken;
    let simulator = Simulator::start().await.expect("simulator");
    let second = OAuthClient {
        client_id: "client-2".into(),
        ..client()
    };
    simulator.add_site(
        "cloud",
        cloud_site(client()).with_oauth_client(second).with_user(
            User::new("bot")
                .with_email("bot@acme.example")
                .with_api_token(ApiToken::scoped("scoped-1")),
        ),
    );
    simulator.throttle_token_endpoint(1000, 429, Some("60"));
    let cloud_id = format!("cloud_id = \"{CLOUD_ID}\"\n");
    let first = cloud_fragment(&simulator, SECRET, &cloud_id);
    let other = first
        .replace("name = \"sa\"", "name = \"sa2\"")
        .replace("client-1", "client-2");
    let scoped = format!(
        "name = \"scoped\"\nurl = \"{}\"\nkind = \"cloud\"\nusername = \"bot@acme.example\"\ntoken = \"scoped-1\"\nscoped = true\n{cloud_id}gateway_url = \"{}\"\n",
        simulator.url("cloud"),
        simulator.url("gateway")
    );
    let toml = format!(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n[[connection]]\n{first}\n[[connection]]\n{other}\n[[connection]]\n{scoped}"
    );
    let _harness = common::harness::Harness::start(&toml, false).await;
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(
        count(&simulator, "/auth/oauth/token"),
        1,
        "the first 429 holds back both clients of the token endpoint"
    );
    let myself = format!("/gateway/ex/jira/{CLOUD_ID}/rest/api/3/myself");
    assert!(
        count(&simulator, &myself) >= 3,
        "the tenant's gate stays open for the scoped token: {}",
        count(&simulator, &myself)
    );
}

#[tokio::test]
async fn a_kept_token_due_for_renewal_serves_while_the_token_endpoint_is_down() {
    let simulator = Simulator::start().await.expect("simulator");
    // Renewed 0.4 s before its 4 s are up.
    let short = OAuthClient {
        lifetime_seconds: 4,
        ..client()
    };
    simulator.add_site("cloud", cloud_site(short));
    let connection = common::connection(&cloud_fragment(
        &simulator,
        SECRET,
        &format!("cloud_id = \"{CLOUD_ID}\"\n"),
    ));
    let prober = Prober::new().expect("prober");
    assert_eq!(prober.probe(&connection).await.state, State::Valid);
    simulator.throttle_token_endpoint(100, 503, None);
    tokio::time::sleep(std::time::Duration::from_millis(3700)).await;
    let outcome = prober.probe(&connection).await;
    assert_eq!(
        outcome.state,
        State::Valid,
        "the old token still works: {outcome:?}"
    );
    assert_eq!(
        count(&simulator, "/auth/oauth/token"),
        2,
        "a renewal was tried"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let outcome = prober.probe(&connection).await;
    assert_eq!(
        (outcome.state, outcome.reason),
        (State::Unknown, Reason::ServerError),
        "{outcome:?}"
    );
    assert_eq!(outcome.token_request, TokenRequest::Failed);
}

#[tokio::test]
async fn a_fresh_token_jira_rejects_is_not_renewed_on_every_probe() {
    let simulator = Simulator::start().await.expect("simulator");
    // The client's account has no access to the site: its tokens are rejected there.
    let stranger = OAuthClient::new(
        "client-1",
        SECRET,
        "someone-else@serviceaccount.atlassian.com",
    );
    simulator.add_site("cloud", cloud_site(stranger));
    let connection = common::connection(&cloud_fragment(
        &simulator,
        SECRET,
        &format!("cloud_id = \"{CLOUD_ID}\"\n"),
    ));
    let prober = Prober::new().expect("prober");
    for _ in 0..3 {
        let outcome = prober.probe(&connection).await;
        assert_eq!(outcome.reason, Reason::Unauthorized, "{outcome:?}");
    }
    assert_eq!(
        count(&simulator, "/auth/oauth/token"),
        1,
        "the verdict stands without new tokens"
    );
}

#[tokio::test]
async fn timeout_bounds_the_whole_probe_token_request_included() {
    let simulator = Simulator::start().await.expect("simulator");
    // Each answer takes 600 ms: the token and myself together overrun a 1 s timeout.
    simulator.add_site(
        "dc",
        Site::server()
            .with_user(User::new("svc-sync"))
            .with_oauth_client(OAuthClient::new("dc-client", SECRET, "svc-sync"))
            .with_front(Front::Slow(std::time::Duration::from_millis(600))),
    );
    let fragment = format!(
        "name = \"dc-sa\"\nurl = \"{}\"\nauth = \"oauth_client_credentials\"\nclient_id = \"dc-client\"\nclient_secret = \"{SECRET}\"\ntimeout = \"1s\"\n",
        simulator.url("dc")
    );
    let outcome = Prober::new()
        .expect("prober")
        .probe(&common::connection(&fragment))
        .await;
    assert_eq!(outcome.reason, Reason::Timeout, "{outcome:?}");
    assert!(
        outcome.latency < std::time::Duration::from_millis(1300),
        "{:?}",
        outcome.latency
    );
}
