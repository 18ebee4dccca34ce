//! Scoped API tokens and the API gateway, against the simulator (docs/jira-answers.md §9): the
//! gateway's `myself` with a configured and with a discovered cloudId (read once from the site's
//! `tenant_info`, without credentials); a scoped token pointed at the site URL, tried at the
//! gateway once per secret and reported as `scoped_token_site_url`; a revoked token tried once
//! and left `unauthorized`; no gateway try for Basic; and two tenants behind the gateway, one
//! rate-limited, the other probed on.

mod common;

use credwatch::probe::{Prober, Reason, State};
use credwatch::sim::{ApiToken, Front, Simulator, Site, User};

const SCOPED: &str = "scoped-token-1";

fn tenant(id: &str, secret: ApiToken) -> Site {
    Site::cloud().with_cloud_id(id).with_user(
        User::new("bot")
            .with_email("bot@acme.example")
            .with_api_token(secret),
    )
}

fn fragment(simulator: &Simulator, site: &str, secret: &str, extra: &str) -> String {
    format!(
        "name = \"{site}\"\nurl = \"{}\"\nkind = \"cloud\"\nusername = \"bot@acme.example\"\ntoken = \"{secret}\"\ngateway_url = \"{}\"\n{extra}",
        simulator.url(site),
        simulator.url("gateway")
    )
}

fn paths(simulator: &Simulator) -> Vec<String> {
    simulator.requests().into_iter().map(|r| r.path).collect()
}

#[tokio::test]
async fn a_scoped_token_is_probed_at_the_gateway_with_a_configured_cloud_id() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "t1",
        tenant(
            "11111111-aaaa-4000-8000-000000000001",
            ApiToken::scoped(SCOPED),
        ),
    );
    let connection = common::connection(&fragment(
        &simulator,
        "t1",
        SCOPED,
        "scoped = true\ncloud_id = \"11111111-aaaa-4000-8000-000000000001\"\n",
    ));
    let outcome = Prober::new().expect("prober").probe(&connection).await;
    assert_eq!(
        (outcome.state, outcome.reason),
        (State::Valid, Reason::Ok),
        "{outcome:?}"
    );
    assert_eq!(
        paths(&simulator),
        ["/gateway/ex/jira/11111111-aaaa-4000-8000-000000000001/rest/api/3/myself"]
    );
}

#[tokio::test]
async fn a_discovered_cloud_id_is_read_once_without_credentials() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "t1",
        tenant(
            "22222222-bbbb-4000-8000-000000000002",
            ApiToken::scoped(SCOPED),
        ),
    );
    let connection = common::connection(&fragment(&simulator, "t1", SCOPED, "scoped = true\n"));
    let prober = Prober::new().expect("prober");
    for _ in 0..3 {
        let outcome = prober.probe(&connection).await;
        assert_eq!(outcome.state, State::Valid, "{outcome:?}");
    }
    let requests = simulator.requests();
    let tenant_info: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/t1/_edge/tenant_info")
        .collect();
    assert_eq!(tenant_info.len(), 1, "read once: {:?}", paths(&simulator));
    assert_eq!(
        tenant_info[0].authorization, None,
        "tenant_info gets no credentials"
    );
    let at_gateway = requests
        .iter()
        .filter(|r| {
            r.path == "/gateway/ex/jira/22222222-bbbb-4000-8000-000000000002/rest/api/3/myself"
        })
        .count();
    assert_eq!(at_gateway, 3);
    assert!(
        requests.iter().all(|r| r.path != "/t1/rest/api/3/myself"),
        "never at the site"
    );
}

/// Runs the daemon over `fragments` (connection bodies) for `rounds` of its scheduler (a
/// heartbeat connection probed once a second), then reads the API.
async fn run_daemon(
    simulator: &Simulator,
    fragments: &[String],
    rounds: u64,
) -> (common::harness::Harness, serde_json::Value) {
    let (beat, heartbeat) = common::heartbeat(simulator);
    let mut toml = String::from("[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\nauth_failure_interval = \"1s\"\nbackoff_initial = \"1s\"\n\n");
    toml.push_str(&heartbeat);
    for fragment in fragments {
        toml.push_str(&format!("[[connection]]\n{fragment}\n"));
    }
    let harness = common::harness::Harness::start(&toml, false).await;
    common::after_rounds(&harness.url(""), &beat, rounds).await;
    let (_, body) = harness.get("/api/v1/connections").await;
    (harness, serde_json::from_str(&body).expect("JSON"))
}

fn connection_view<'a>(api: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    api.as_array()
        .or_else(|| api["connections"].as_array())
        .expect("a list")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {api}"))
}

#[tokio::test]
async fn a_scoped_token_on_the_site_url_is_tried_at_the_gateway_once_and_named() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "t1",
        tenant(
            "33333333-cccc-4000-8000-000000000003",
            ApiToken::scoped(SCOPED),
        ),
    );
    let revoked = ApiToken {
        revoked: true,
        ..ApiToken::new("revoked-token")
    };
    simulator.add_site(
        "t2",
        tenant("44444444-dddd-4000-8000-000000000004", revoked),
    );
    let (_harness, api) = run_daemon(
        &simulator,
        &[
            fragment(&simulator, "t1", SCOPED, ""),
            fragment(&simulator, "t2", "revoked-token", ""),
        ],
        4,
    )
    .await;
    let scoped = connection_view(&api, "t1");
    assert_eq!(scoped["state"], "invalid", "{scoped}");
    assert_eq!(scoped["reason"], "scoped_token_site_url", "{scoped}");
    assert!(
        scoped["hint"]
            .as_str()
            .is_some_and(|h| h.contains("scoped = true")),
        "{scoped}"
    );
    let revoked = connection_view(&api, "t2");
    assert_eq!(revoked["reason"], "unauthorized", "{revoked}");
    let count = |prefix: &str| {
        simulator
            .requests()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .count()
    };
    assert!(count("/t1/rest/api/3/myself") >= 2, "probed on at the site");
    assert!(count("/t2/rest/api/3/myself") >= 2, "probed on at the site");
    assert_eq!(
        count("/gateway/ex/jira/33333333"),
        1,
        "one gateway try for the scoped token"
    );
    assert_eq!(
        count("/gateway/ex/jira/44444444"),
        1,
        "one gateway try for the revoked token"
    );
}

#[tokio::test]
async fn basic_passwords_never_get_a_gateway_try() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "cloud",
        tenant("55555555-eeee-4000-8000-000000000005", ApiToken::new("x")),
    );
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new("svc").with_password("right")),
    );
    let connections = [
        format!(
            "name = \"cloud-basic\"\nurl = \"{}\"\nkind = \"cloud\"\nauth = \"basic\"\nusername = \"bot@acme.example\"\npassword = \"wrong\"\n",
            simulator.url("cloud")
        ),
        format!(
            "name = \"dc-basic\"\nurl = \"{}\"\nauth = \"basic\"\nusername = \"svc\"\npassword = \"wrong\"\n",
            simulator.url("dc")
        ),
    ];
    let prober = Prober::new().expect("prober");
    for fragment in &connections {
        let outcome = prober.probe(&common::connection(fragment)).await;
        assert_eq!(outcome.reason, Reason::Unauthorized, "{outcome:?}");
    }
    let paths = paths(&simulator);
    assert!(
        paths
            .iter()
            .all(|p| !p.starts_with("/gateway") && !p.contains("tenant_info")),
        "{paths:?}"
    );
}

#[tokio::test]
async fn one_rate_limited_tenant_does_not_hold_back_another() {
    let simulator = Simulator::start().await.expect("simulator");
    let limited = "66666666-ffff-4000-8000-000000000006";
    let open = "77777777-0000-4000-8000-000000000007";
    simulator.add_site(
        "limited",
        tenant(limited, ApiToken::scoped(SCOPED)).with_front(Front::Throttle {
            remaining: 1000,
            status: 429,
            retry_after: Some("60".to_owned()),
        }),
    );
    simulator.add_site("open", tenant(open, ApiToken::scoped(SCOPED)));
    let (_harness, api) = run_daemon(
        &simulator,
        &[
            fragment(
                &simulator,
                "limited",
                SCOPED,
                &format!("scoped = true\ncloud_id = \"{limited}\"\n"),
            ),
            fragment(
                &simulator,
                "open",
                SCOPED,
                &format!("scoped = true\ncloud_id = \"{open}\"\n"),
            ),
        ],
        4,
    )
    .await;
    let count = |id: &str| {
        simulator
            .requests()
            .iter()
            .filter(|r| r.path.starts_with(&format!("/gateway/ex/jira/{id}")))
            .count()
    };
    assert_eq!(
        count(limited),
        1,
        "the limited tenant waits for Retry-After"
    );
    assert!(
        count(open) >= 3,
        "the other tenant is probed on: {}",
        count(open)
    );
    assert_eq!(connection_view(&api, "open")["state"], "valid");
    assert_eq!(connection_view(&api, "limited")["reason"], "rate_limited");
}

#[tokio::test]
async fn a_scoped_token_the_gateway_refuses_for_another_reason_gets_that_verdict() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "t1",
        tenant(
            "88888888-1111-4000-8000-000000000008",
            ApiToken::scoped(SCOPED),
        ),
    );
    let connection = common::connection(&fragment(
        &simulator,
        "t1",
        SCOPED,
        "expect_account = \"someone-else@acme.example\"\n",
    ));
    let outcome = Prober::new().expect("prober").probe(&connection).await;
    assert_eq!(
        (outcome.state, outcome.reason),
        (State::Invalid, Reason::WrongAccount),
        "{outcome:?}"
    );
    assert!(
        outcome
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("API gateway")),
        "{outcome:?}"
    );
}
