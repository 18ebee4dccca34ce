//! Politeness that survives restarts, through the binary and counted at two simulators (two
//! sites): a site's `Retry-After` kept in the state store holds across a restart for every
//! connection of the site, while the other site is probed on; one that lifts lets probing
//! resume; `check` beside the daemon honours a stored gate (`gated_until`, nothing sent) unless
//! `--ignore-rate-limits`, and a 429 that `check` gets quiets the running daemon; what the
//! gateway said of a scoped token is asked again after `gateway_recheck_interval`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::process::Running;
use common::{api_connection, eventually};
use credwatch::sim::{ApiToken, Front, Pat, Simulator, Site, User};

fn pat_site() -> Site {
    Site::server().with_user(User::new("svc").with_pat(Pat::new(1, "ci", "tok", Some(90))))
}

fn pat(name: &str, url: &str) -> String {
    format!("[[connection]]\nname = \"{name}\"\nurl = \"{url}\"\ntoken = \"tok\"\ninterval = \"1s\"\ntimeout = \"900ms\"\nbackoff_initial = \"1s\"\n\n")
}

/// Requests the simulator received (every site).
fn requests(simulator: &Simulator) -> usize {
    simulator.requests().len()
}

async fn check(config: &Path, state: &Path, extra: &[&str]) -> serde_json::Value {
    let output = common::process::check_json(config, state, extra).await;
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn row<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == name))
        .expect("reported")
}

#[tokio::test]
async fn a_retry_after_holds_across_a_restart_and_for_check_while_the_other_site_is_probed() {
    let site_a = Simulator::start().await.expect("simulator");
    let site_b = Simulator::start().await.expect("simulator");
    // Site A answers one 429 with Retry-After: 600, then would answer again.
    site_a.add_site(
        "dc",
        pat_site().with_front(Front::Throttle {
            remaining: 1,
            status: 429,
            retry_after: Some("600".into()),
        }),
    );
    site_b.add_site("dc", pat_site());
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = pat("a1", &site_a.url("dc"))
        + &pat("a2", &site_a.url("dc"))
        + &pat("b1", &site_b.url("dc"));
    let config = common::write(dir.path(), "credwatch.toml", &toml);
    let state = dir.path().join("state");
    let log = dir.path().join("stderr.log");
    let running = Running::start(&config, &state, &log);
    running.first_answer().await;
    eventually(Duration::from_secs(10), "site A's 429", || async {
        requests(&site_a) >= 1
    })
    .await;
    // Written by the daemon's writer within a second; then restarted.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(running.stop("-TERM"), Some(0));
    let at_a = requests(&site_a);
    assert_eq!(at_a, 1, "one request, then the site's gate");
    let running = Running::start(&config, &state, &log);
    running.first_answer().await;
    let at_b = requests(&site_b);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        requests(&site_a),
        at_a,
        "nothing to site A after the restart"
    );
    assert!(requests(&site_b) >= at_b + 3, "site B probed as usual");

    // check beside it: both site-A connections gated, nothing sent.
    let report = check(&config, &state, &[]).await;
    for name in ["a1", "a2"] {
        let gated = row(&report, name);
        assert_eq!(gated["state"], "unknown", "{gated}");
        assert_eq!(gated["reason"], "rate_limited", "{gated}");
        assert!(gated["gated_until"].is_string(), "{gated}");
        assert_eq!(gated["attempts"], 0);
    }
    assert!(row(&report, "b1")["gated_until"].is_null());
    assert_eq!(requests(&site_a), at_a, "check sent nothing to site A");
    // --ignore-rate-limits sends anyway.
    let forced = check(
        &config,
        &state,
        &["--ignore-rate-limits", "--connection", "a1"],
    )
    .await;
    assert_eq!(row(&forced, "a1")["state"], "valid", "{forced}");
    assert_eq!(requests(&site_a), at_a + 2, "myself and the token list");
    assert_eq!(running.stop("-TERM"), Some(0));
}

#[tokio::test]
async fn a_short_retry_after_lifts_and_a_429_check_gets_quiets_the_daemon() {
    let site_a = Simulator::start().await.expect("simulator");
    site_a.add_site(
        "dc",
        pat_site().with_front(Front::Throttle {
            remaining: 1,
            status: 429,
            retry_after: Some("3".into()),
        }),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::write(dir.path(), "credwatch.toml", &pat("a1", &site_a.url("dc")));
    let state = dir.path().join("state");
    let log = dir.path().join("stderr.log");
    let mut running = Running::start(&config, &state, &log);
    running.first_answer().await;
    eventually(Duration::from_secs(10), "the 429", || async {
        requests(&site_a) >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    running.stop("-TERM");
    running = Running::start(&config, &state, &log);
    running.first_answer().await;
    // Retry-After: 3 lifts, and probing resumes.
    eventually(
        Duration::from_secs(10),
        "probed again after the gate",
        || async { api_connection(&running.base, "a1").await["state"] == "valid" },
    )
    .await;

    // Now a check gets a 429 with Retry-After: 600: the running daemon goes quiet.
    site_a.update_site("dc", |site| {
        site.front = Front::Throttle {
            remaining: 1,
            status: 429,
            retry_after: Some("600".into()),
        };
    });
    let report = check(&config, &state, &["--ignore-rate-limits"]).await;
    assert_eq!(row(&report, "a1")["reason"], "rate_limited", "{report}");
    // The daemon reads the stored gates once a second; a probe already admitted may go.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let quiet_from = requests(&site_a);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        requests(&site_a),
        quiet_from,
        "the daemon is silent towards the site"
    );
    assert_eq!(running.stop("-TERM"), Some(0));
}

#[tokio::test]
async fn what_the_gateway_said_of_a_scoped_token_is_asked_again_after_the_recheck_interval() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "t1",
        Site::cloud()
            .with_cloud_id("11111111-aaaa-4000-8000-000000000001")
            .with_user(
                User::new("bot")
                    .with_email("bot@acme.example")
                    .with_api_token(ApiToken::scoped("scoped-token-1")),
            ),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "[[connection]]\nname = \"scoped\"\nurl = \"{}\"\nkind = \"cloud\"\nusername = \"bot@acme.example\"\ntoken = \"scoped-token-1\"\ngateway_url = \"{}\"\ninterval = \"1s\"\ntimeout = \"900ms\"\nauth_failure_interval = \"1s\"\ngateway_recheck_interval = \"3s\"\n",
        simulator.url("t1"),
        simulator.url("gateway")
    );
    let config = common::write(dir.path(), "credwatch.toml", &toml);
    let state = dir.path().join("state");
    let running = Running::start(&config, &state, &dir.path().join("stderr.log"));
    running.first_answer().await;
    eventually(Duration::from_secs(10), "scoped_token_site_url", || async {
        api_connection(&running.base, "scoped").await["reason"] == "scoped_token_site_url"
    })
    .await;
    let gateway_asks = || {
        simulator
            .requests()
            .iter()
            .filter(|r| r.path.contains("/ex/jira/") && r.path.ends_with("/myself"))
            .count()
    };
    // Revoked: within the recheck interval (and a probe) it is reported unauthorized.
    simulator.update_site("t1", |site| site.users[0].api_tokens[0].revoked = true);
    let revoked_at = gateway_asks();
    eventually(
        Duration::from_secs(10),
        "unauthorized after the recheck",
        || async { api_connection(&running.base, "scoped").await["reason"] == "unauthorized" },
    )
    .await;
    // Rejected there too: the question is answered, and asked no more for this secret.
    let answered = gateway_asks();
    assert_eq!(answered, revoked_at + 1, "one more question to the gateway");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(gateway_asks(), answered);
}

#[tokio::test]
async fn a_rate_limited_token_endpoint_stays_gated_across_a_restart() {
    use credwatch::sim::oauth::OAuthClient;
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "cloud",
        Site::cloud()
            .with_cloud_id("22222222-bbbb-4000-8000-000000000002")
            .with_user(User::new("svc").with_email("svc@serviceaccount.atlassian.com"))
            .with_oauth_client(OAuthClient::new(
                "client-1",
                "the-secret",
                "svc@serviceaccount.atlassian.com",
            )),
    );
    simulator.throttle_token_endpoint(1, 429, Some("600"));
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "[[connection]]\nname = \"sa\"\nurl = \"{}\"\nkind = \"cloud\"\nauth = \"oauth_client_credentials\"\nclient_id = \"client-1\"\nclient_secret = \"the-secret\"\ngateway_url = \"{}\"\ntoken_url = \"{}/oauth/token\"\ncloud_id = \"22222222-bbbb-4000-8000-000000000002\"\ninterval = \"1s\"\ntimeout = \"900ms\"\nbackoff_initial = \"1s\"\n",
        simulator.url("cloud"),
        simulator.url("gateway"),
        simulator.url("auth"),
    );
    let config = common::write(dir.path(), "credwatch.toml", &toml);
    let state = dir.path().join("state");
    let log = dir.path().join("stderr.log");
    let token_requests = || {
        simulator
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/oauth/token"))
            .count()
    };
    let running = Running::start(&config, &state, &log);
    running.first_answer().await;
    eventually(
        Duration::from_secs(10),
        "the token endpoint's 429",
        || async { token_requests() >= 1 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(running.stop("-TERM"), Some(0));
    assert_eq!(token_requests(), 1);
    let running = Running::start(&config, &state, &log);
    running.first_answer().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        token_requests(),
        1,
        "nothing to the token endpoint after the restart"
    );
    assert_eq!(running.stop("-TERM"), Some(0));
}
