//! Atlassian organizations against the simulator's organization admin API: the list read over
//! several pages with a 429 in the middle, connections matched by label, by the only token or
//! not at all, a 401 explained by a block, a rejected admin key, the inventory in `/metrics`,
//! `check --orgs`, and the shard rule (every shard with the organization's connections reads
//! the list; only the owner of its name exports it).

mod common;

use std::time::Duration;

use credwatch::sim::admin::{OrgApi, OrgApiToken};
use credwatch::sim::{ApiToken, Simulator, Site, User};
use serde_json::Value;

const KEY: &str = "org-admin-key-canary";

/// A Cloud site whose users hold the API tokens `(email, token, revoked)`.
fn cloud_site(users: &[(&str, &str, bool)]) -> Site {
    let mut site = Site::cloud();
    for (email, token, revoked) in users {
        let mut api_token = ApiToken::new(token);
        api_token.revoked = *revoked;
        let login = email.split('@').next().unwrap_or(email);
        site = site.with_user(User::new(login).with_email(email).with_api_token(api_token));
    }
    site
}

fn org_table(simulator: &Simulator, key: &str) -> String {
    format!(
        "[[atlassian_org]]\nname = \"acme\"\norg_id = \"org-1\"\napi_key = \"{key}\"\napi_url = \"{}\"\ninterval = \"1h\"\nunused_after = \"30d\"\n\n",
        simulator.url("admin")
    )
}

fn cloud_connection(
    simulator: &Simulator,
    name: &str,
    email: &str,
    token: &str,
    extra: &str,
) -> String {
    format!(
        "[[connection]]\nname = \"{name}\"\nurl = \"{}\"\nkind = \"cloud\"\nusername = \"{email}\"\ntoken = \"{token}\"\norg = \"acme\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nauth_failure_interval = \"1s\"\n{extra}\n\n",
        simulator.url("cloud")
    )
}

async fn get_json(base: &str, path: &str) -> Value {
    serde_json::from_str(&common::get_text(&format!("{base}{path}")).await).expect("JSON")
}

/// Polls `path` until `check` holds, for up to 20 s.
async fn until(base: &str, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let value = get_json(base, path).await;
        if check(&value) {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {value:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `credwatch check --config PATH ARGS`, its own state directory, without blocking the
/// simulator that runs in this test's runtime.
async fn check(path: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_credwatch"));
    let state = common::isolate_state(&mut command);
    command
        .args(["check", "--config", path.to_str().expect("path")])
        .args(args)
        .env_remove("RUST_LOG");
    let run = tokio::task::spawn_blocking(move || {
        let output = command.output().expect("check runs");
        drop(state);
        output
    });
    common::within(Duration::from_secs(60), run)
        .await
        .expect("joins")
}

fn by_name<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|items| items.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {list:#}"))
}

#[tokio::test]
async fn the_list_is_read_over_pages_through_a_429_and_matched_to_each_connection() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "cloud",
        cloud_site(&[
            ("bot@acme.example", "tok-bot", false),
            ("solo@acme.example", "tok-solo", false),
            ("twin@acme.example", "tok-twin", false),
            ("old@acme.example", "tok-old", true),
        ]),
    );
    let mut blocked = OrgApiToken::new("old@acme.example", "legacy", 60);
    blocked.blocked = true;
    let mut never = OrgApiToken::new("intern@acme.example", "intern", 90);
    never.last_active_at = None;
    let mut api = OrgApi::new("org-1", KEY)
        .with_token(OrgApiToken::new("bot@acme.example", "ci", 5))
        .with_token(OrgApiToken::new("Bot@Acme.example", "sync", 200))
        .with_token(OrgApiToken::new("solo@acme.example", "only", 25))
        .with_token(OrgApiToken::new("twin@acme.example", "a", 100))
        .with_token(OrgApiToken::new("twin@acme.example", "b", 100))
        .with_token(blocked)
        .with_token(never);
    // Seven tokens, three per page: three pages, the second refused once.
    api.page_size = 3;
    api.throttle_once = Some((2, 1));
    simulator.add_org_api("admin", api);
    let toml = org_table(&simulator, KEY)
        + &cloud_connection(
            &simulator,
            "by-label",
            "bot@acme.example",
            "tok-bot",
            "token_label = \"sync\"",
        )
        + &cloud_connection(&simulator, "only", "solo@acme.example", "tok-solo", "")
        + &cloud_connection(&simulator, "ambiguous", "twin@acme.example", "tok-twin", "")
        + &cloud_connection(&simulator, "blocked", "old@acme.example", "tok-old", "");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::write(dir.path(), "credwatch.toml", &toml);
    let daemon = common::start_daemon(&path, false).await;
    let base = format!("http://{}", daemon.addr());

    let orgs = until(&base, "/api/v1/orgs", "the list is read", |orgs| {
        orgs[0]["last_list_success_at"].is_string()
    })
    .await;
    let acme = &orgs[0];
    assert_eq!(acme["api_key_state"], "valid");
    assert_eq!(
        acme["tokens"],
        serde_json::json!({"allowed": 6, "blocked": 1, "expired": 0, "expiring_7d": 1, "expiring_30d": 2, "unused": 1}),
        "{acme:#}"
    );
    // Page 1, page 2 refused with Retry-After: 1, page 2 again a second later, page 3.
    let requests = simulator.requests_for("admin");
    let cursors: Vec<Option<String>> = requests.iter().map(|r| r.query.clone()).collect();
    assert_eq!(
        cursors,
        [
            None,
            Some("cursor=offset-3".into()),
            Some("cursor=offset-3".into()),
            Some("cursor=offset-6".into())
        ]
    );
    assert!(requests[2].instant - requests[1].instant >= Duration::from_millis(950));
    assert!(requests
        .iter()
        .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {KEY}"))));

    let connections = until(&base, "/api/v1/connections", "matched and probed", |all| {
        by_name(all, "only")["expiry_source"] == "org_admin"
            && by_name(all, "blocked")["reason"] == "blocked_by_admin"
    })
    .await;
    let labelled = by_name(&connections, "by-label");
    assert_eq!(labelled["expiry_source"], "org_admin");
    let days = |c: &Value| {
        let at = chrono::DateTime::parse_from_rfc3339(c["expires_at"].as_str().expect("expiry"))
            .expect("time");
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_days()
    };
    assert_eq!(
        days(labelled),
        199,
        "the token labelled sync, not ci: {labelled:#}"
    );
    assert!(labelled["token_last_used_at"].is_string());
    assert_eq!(days(by_name(&connections, "only")), 24);
    let ambiguous = by_name(&connections, "ambiguous");
    assert_eq!(ambiguous["expiry_source"], Value::Null);
    assert!(
        ambiguous["expiry_note"]
            .as_str()
            .is_some_and(|n| n.contains("2 API tokens") && n.contains("set token_label")),
        "{ambiguous:#}"
    );
    let blocked = by_name(&connections, "blocked");
    assert_eq!(blocked["state"], "invalid");
    assert!(
        blocked["hint"]
            .as_str()
            .is_some_and(|h| h.contains("organization admin blocked")),
        "{blocked:#}"
    );

    let metrics = common::get_text(&format!("{base}/metrics")).await;
    for line in [
        "credwatch_org_tokens{org=\"acme\",status=\"allowed\"} 6",
        "credwatch_org_tokens{org=\"acme\",status=\"blocked\"} 1",
        "credwatch_org_tokens_expiring{org=\"acme\",within=\"7d\"} 1",
        "credwatch_org_tokens_expiring{org=\"acme\",within=\"30d\"} 2",
        "credwatch_org_tokens_unused{org=\"acme\"} 1",
        "credwatch_org_api_key_state{org=\"acme\",state=\"valid\"} 1",
        "credwatch_token_expiry_timestamp_seconds{connection=\"only\",source=\"org_admin\"}",
        "credwatch_probe_reason{connection=\"blocked\",reason=\"blocked_by_admin\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    assert!(!metrics.contains(KEY), "the admin key never shows");
    daemon.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_rejected_or_unscoped_admin_key_is_classified_and_the_last_good_list_stands() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "cloud",
        cloud_site(&[("bot@acme.example", "tok-bot", false)]),
    );
    simulator.add_org_api(
        "admin",
        OrgApi::new("org-1", KEY).with_token(OrgApiToken::new("bot@acme.example", "ci", 40)),
    );
    let toml = org_table(&simulator, "a-wrong-key")
        + &cloud_connection(&simulator, "bot", "bot@acme.example", "tok-bot", "");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::write(dir.path(), "credwatch.toml", &toml);

    // `check --orgs` reads the list once and says why not, exit 1.
    let output = check(&path, &["--orgs", "--output", "json"]).await;
    assert_eq!(output.status.code(), Some(1));
    let orgs: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(orgs[0]["api_key_state"], "invalid", "{orgs:#}");
    assert!(orgs[0]["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("401")));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("a-wrong-key")
            && !String::from_utf8_lossy(&output.stdout).contains("a-wrong-key")
    );

    // The daemon: invalid, then a key without the scope: forbidden.
    let daemon = common::start_daemon(&path, false).await;
    let base = format!("http://{}", daemon.addr());
    until(&base, "/api/v1/orgs", "the key is rejected", |orgs| {
        orgs[0]["api_key_state"] == "invalid"
    })
    .await;
    let metrics = common::get_text(&format!("{base}/metrics")).await;
    assert!(metrics.contains("credwatch_org_api_key_state{org=\"acme\",state=\"invalid\"} 1"));
    assert!(
        !metrics.contains("credwatch_org_tokens{"),
        "no inventory without a list"
    );
    daemon.shutdown(Duration::from_secs(1)).await;

    simulator.update_org_api("admin", |api| api.scoped = false);
    let right = org_table(&simulator, KEY)
        + &cloud_connection(&simulator, "bot", "bot@acme.example", "tok-bot", "");
    let path = common::write(dir.path(), "credwatch.toml", &right);
    let output = check(&path, &[]).await;
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("ORGANIZATION"), "{table}");
    assert!(
        table.contains("forbidden") && table.contains("read:tokens:admin"),
        "{table}"
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "the connection itself is valid: {table}"
    );
}

#[tokio::test]
async fn every_shard_with_the_organizations_connections_reads_it_and_only_its_owner_exports_it() {
    use credwatch::shard::Shard;
    let simulator = Simulator::start().await.expect("simulator");
    let users: Vec<(String, String)> = (0..12)
        .map(|i| (format!("bot{i}@acme.example"), format!("tok-{i}")))
        .collect();
    let refs: Vec<(&str, &str, bool)> = users
        .iter()
        .map(|(e, t)| (e.as_str(), t.as_str(), false))
        .collect();
    simulator.add_site("cloud", cloud_site(&refs));
    let mut api = OrgApi::new("org-1", KEY);
    for (email, _) in &users {
        api = api.with_token(OrgApiToken::new(email, "ci", 100));
    }
    // Three pages whose `next` is a URL.
    api.page_size = 5;
    api.next_as_url = true;
    simulator.add_org_api("admin", api);
    let mut toml = org_table(&simulator, KEY);
    for (i, (email, token)) in users.iter().enumerate() {
        toml.push_str(&cloud_connection(
            &simulator,
            &format!("c{i}"),
            email,
            token,
            "",
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::write(dir.path(), "credwatch.toml", &toml);
    let config = credwatch::config::Config::load(&path).expect("config");

    let mut daemons = Vec::new();
    for index in 0..2 {
        let options = credwatch::daemon::Options {
            shard: Some(Shard { index, count: 2 }),
            ..credwatch::daemon::Options::new(path.clone())
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let prober = credwatch::probe::Prober::new().expect("prober");
        daemons.push(
            credwatch::daemon::Daemon::start(config.clone(), listener, options, prober)
                .expect("daemon"),
        );
    }
    let owner = (0..2u32)
        .find(|&i| Shard { index: i, count: 2 }.owns("acme"))
        .expect("an owner") as usize;
    let mut read_by = 0;
    for (index, daemon) in daemons.iter().enumerate() {
        let base = format!("http://{}", daemon.addr());
        // Every connection of this shard is matched: the shard read the list itself.
        let connections = until(&base, "/api/v1/connections", "matched", |all| {
            all.as_array().is_some_and(|items| {
                !items.is_empty() && items.iter().all(|c| c["expiry_source"] == "org_admin")
            })
        })
        .await;
        assert!(!connections.as_array().expect("array").is_empty());
        read_by += 1;
        let metrics = common::get_text(&format!("{base}/metrics")).await;
        let exports = metrics.contains("credwatch_org_tokens{org=\"acme\",status=\"allowed\"} 12");
        assert_eq!(
            exports,
            index == owner,
            "shard {index} of 2 (owner {owner}):\n{metrics}"
        );
        let orgs = get_json(&base, "/api/v1/orgs").await;
        assert_eq!(
            orgs.as_array().map(Vec::len),
            Some(usize::from(index == owner))
        );
    }
    assert_eq!(read_by, 2);
    assert_eq!(
        simulator.requests_for("admin").len(),
        6,
        "one read of three pages per shard"
    );
    for daemon in daemons {
        daemon.shutdown(Duration::from_secs(1)).await;
    }
}
