//! Token expiry against the simulator's real PAT list answers: where the expiry comes from,
//! rotation, the audit, the metrics (exact epoch seconds, absent when unknown), `expired`
//! after the date, and the token list's own, slower cadence.

mod common;

use common::sample;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use credwatch::daemon::Daemon;
use credwatch::sim::{ApiToken, Pat, Simulator, Site, User};
use serde_json::Value;

fn pat(id: u64, name: &str, secret: &str, expires_in: Option<chrono::Duration>) -> Pat {
    // Jira's dates carry milliseconds.
    let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now");
    Pat {
        id,
        name: name.to_owned(),
        secret: secret.to_owned(),
        created_at: now - chrono::Duration::days(80),
        expiring_at: expires_in.map(|d| now + d),
        last_accessed_at: Some(now - chrono::Duration::days(1)),
        revoked: false,
    }
}

fn epoch(time: DateTime<Utc>) -> f64 {
    time.timestamp_millis() as f64 / 1000.0
}

async fn start(dir: &Path, toml: &str) -> Daemon {
    let path = dir.join("credwatch.toml");
    std::fs::write(&path, toml).expect("write");
    common::start_daemon(&path, false).await
}

async fn get(daemon: &Daemon, path: &str) -> String {
    common::get_text(&format!("http://{}{path}", daemon.addr())).await
}

async fn api(daemon: &Daemon, name: &str) -> Value {
    let all: Vec<Value> =
        serde_json::from_str(&get(daemon, "/api/v1/connections").await).expect("JSON");
    all.into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

use common::eventually;

fn connection(name: &str, url: &str, extra: &str) -> String {
    format!("[[connection]]\nname = \"{name}\"\nurl = \"{url}\"\n{extra}\n\n")
}

#[tokio::test]
async fn check_shows_jira_expiry_and_lists_the_account_tokens_by_name() {
    let simulator = Simulator::start().await.expect("simulator");
    let mut gone = pat(3, "old-ci", "gone", Some(chrono::Duration::days(-5)));
    gone.last_accessed_at = None;
    let mine = pat(1, "credwatch", "tok-cw", Some(chrono::Duration::days(10)));
    let expiry = mine.expiring_at.expect("expiry");
    simulator.add_site(
        "dc",
        Site::server().with_user(
            User::new("svc-jira")
                .with_pat(mine)
                .with_pat(pat(2, "laptop", "tok-laptop", None))
                .with_pat(gone),
        ),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = connection(
        "cw",
        &simulator.url("dc"),
        "token = \"tok-cw\"\ntoken_name = \"credwatch\"",
    );
    let path = dir.path().join("c.toml");
    std::fs::write(&path, toml).expect("write");
    let path = path.to_str().expect("utf-8").to_owned();
    let run = |args: Vec<String>| async move {
        let job = tokio::task::spawn_blocking(move || {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_credwatch"));
            let state = common::isolate_state(&mut command);
            let output = command.args(&args).output().expect("runs");
            drop(state);
            output
        });
        common::within(Duration::from_secs(60), job)
            .await
            .expect("joins")
    };

    let output = run(vec![
        "check".into(),
        "--config".into(),
        path.clone(),
        "-o".into(),
        "json".into(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0));
    let reports: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let report = &reports[0];
    let expected = expiry.to_rfc3339();
    assert_eq!(report["expires_at"], expected.as_str());
    assert_eq!(report["expiry_source"], "jira");
    assert_eq!(
        report["rotation_due"], true,
        "10 days left, rotate_before 14d"
    );
    assert_eq!(report["never_expires"], false);
    assert_eq!(report["token_audit"]["active"], 2);
    assert_eq!(report["token_audit"]["expired"], 1);
    assert_eq!(report["token_audit"]["unused"], 1);
    assert_eq!(report["token_audit"]["never_expiring"], 1);
    let names: Vec<&str> = report["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["credwatch", "laptop", "old-ci"]);

    let output = run(vec![
        "check".into(),
        "--config".into(),
        path,
        "--connection".into(),
        "cw".into(),
    ])
    .await;
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(table.contains("Tokens of svc-jira (cw):"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("credwatch ") && l.contains("<- this connection")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("laptop ") && l.contains("never")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("old-ci ") && l.contains("expired, unused")),
        "{table}"
    );
    assert!(
        table.contains("(jira)") && table.contains(" due"),
        "{table}"
    );
    assert!(table.contains("cw (rotation due, expires"), "{table}");
    assert!(table.contains("1 valid, 1 rotation due"), "{table}");
    assert!(!table.contains("tok-"), "no secret in the output");
}

#[tokio::test]
async fn the_daemon_exports_expiry_exactly_and_nothing_it_does_not_know() {
    let simulator = Simulator::start().await.expect("simulator");
    let named = pat(
        1,
        "credwatch",
        "tok-named",
        Some(chrono::Duration::days(10)),
    );
    let named_expiry = named.expiring_at.expect("expiry");
    let named_created = named.created_at;
    simulator.add_site(
        "dc",
        Site::server()
            .with_user(User::new("svc-named").with_pat(named).with_pat(pat(
                2,
                "other",
                "tok-other",
                Some(chrono::Duration::days(200)),
            )))
            .with_user(User::new("svc-forever").with_pat(pat(3, "legacy", "tok-forever", None)))
            .with_user(
                User::new("svc-ambiguous")
                    .with_pat(pat(
                        4,
                        "a",
                        "tok-ambiguous",
                        Some(chrono::Duration::days(50)),
                    ))
                    .with_pat(pat(5, "b", "tok-b", Some(chrono::Duration::days(60)))),
            ),
    );
    let mut old =
        Site::server().with_user(User::new("svc-old").with_pat(pat(6, "x", "tok-old", None)));
    old.pat_api = false;
    simulator.add_site("old-jira", old);
    simulator.add_site(
        "cloud",
        Site::cloud().with_user(
            User::new("bot")
                .with_email("bot@acme.example")
                .with_api_token(ApiToken::new("api-bot")),
        ),
    );
    let dc = simulator.url("dc");
    let cloud = simulator.url("cloud");
    let toml = String::from("[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n")
        + &connection("named", &dc, "token = \"tok-named\"\ntoken_name = \"credwatch\"")
        + &connection("forever", &dc, "token = \"tok-forever\"")
        + &connection("ambiguous", &dc, "token = \"tok-ambiguous\"")
        + &connection("old-jira", &simulator.url("old-jira"), "token = \"tok-old\"")
        + &connection("cloud-derived", &cloud, "kind = \"cloud\"\nusername = \"bot@acme.example\"\ntoken = \"api-bot\"\ncreated_at = \"2026-03-01T08:30:00Z\"")
        + &connection("cloud-declared", &cloud, "kind = \"cloud\"\nusername = \"bot@acme.example\"\ntoken = \"api-bot\"\nexpires_at = \"2027-02-01\"\nmax_token_age = \"90d\"\ncreated_at = \"2026-11-01\"");
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start(dir.path(), &toml).await;
    eventually(Duration::from_secs(5), "every token list fetched", || async {
        let metrics = get(&daemon, "/metrics").await;
        sample(&metrics, "credwatch_token_never_expires{connection=\"forever\"}").is_some()
            && sample(&metrics, "credwatch_token_expiry_timestamp_seconds{connection=\"named\",source=\"jira\"}").is_some()
            && sample(&metrics, "credwatch_account_tokens{connection=\"ambiguous\",status=\"active\"}").is_some()
            && get_note_ready(&metrics)
    })
    .await;
    let metrics = get(&daemon, "/metrics").await;
    let close = |series: &str, expected: f64| {
        let value = sample(&metrics, series).unwrap_or_else(|| panic!("missing {series}"));
        assert!(
            (value - expected).abs() < 0.0005,
            "{series}: {value} != {expected}"
        );
    };
    close(
        "credwatch_token_expiry_timestamp_seconds{connection=\"named\",source=\"jira\"}",
        epoch(named_expiry),
    );
    close(
        "credwatch_token_created_timestamp_seconds{connection=\"named\"}",
        epoch(named_created),
    );
    // credwatch's own probes use the token, and Jira (like the simulator) records that.
    let used = sample(
        &metrics,
        "credwatch_token_last_used_timestamp_seconds{connection=\"named\"}",
    )
    .expect("last used");
    assert!(
        (epoch(Utc::now()) - used).abs() < 10.0,
        "used by the probe just now: {used}"
    );
    close("credwatch_token_rotation_due{connection=\"named\"}", 1.0);
    close("credwatch_token_never_expires{connection=\"named\"}", 0.0);
    close(
        "credwatch_account_tokens{connection=\"named\",status=\"active\"}",
        2.0,
    );
    close(
        "credwatch_account_tokens{connection=\"named\",status=\"expired\"}",
        0.0,
    );
    close(
        "credwatch_account_tokens{connection=\"named\",status=\"unused\"}",
        0.0,
    );
    close(
        "credwatch_account_tokens{connection=\"named\",status=\"never_expiring\"}",
        0.0,
    );

    close("credwatch_token_never_expires{connection=\"forever\"}", 1.0);
    close("credwatch_token_rotation_due{connection=\"forever\"}", 0.0);
    assert!(
        !metrics.contains("credwatch_token_expiry_timestamp_seconds{connection=\"forever\""),
        "no placeholder"
    );

    for absent in [
        "credwatch_token_expiry_timestamp_seconds{connection=\"ambiguous\"",
        "credwatch_token_rotation_due{connection=\"ambiguous\"}",
        "credwatch_token_never_expires{connection=\"ambiguous\"}",
    ] {
        assert!(
            !metrics.contains(absent),
            "{absent} while the list is ambiguous"
        );
    }
    close(
        "credwatch_account_tokens{connection=\"ambiguous\",status=\"active\"}",
        2.0,
    );
    let ambiguous = api(&daemon, "ambiguous").await;
    assert!(
        ambiguous["expiry_note"]
            .as_str()
            .is_some_and(|n| n.contains("set token_name")),
        "{ambiguous}"
    );
    assert_eq!(ambiguous["state"], "valid");

    let old = api(&daemon, "old-jira").await;
    assert_eq!(
        old["state"], "valid",
        "an old Jira is not a credential failure"
    );
    assert!(
        old["expiry_note"]
            .as_str()
            .is_some_and(|n| n.contains("404")),
        "{old}"
    );
    assert!(!metrics.contains("connection=\"old-jira\",source="));
    assert!(!metrics.contains("credwatch_account_tokens{connection=\"old-jira\""));

    let derived = "2027-03-01T08:30:00Z"
        .parse::<DateTime<Utc>>()
        .expect("time");
    close(
        "credwatch_token_expiry_timestamp_seconds{connection=\"cloud-derived\",source=\"derived\"}",
        epoch(derived),
    );
    close(
        "credwatch_token_created_timestamp_seconds{connection=\"cloud-derived\"}",
        epoch("2026-03-01T08:30:00Z".parse().expect("time")),
    );
    let declared = "2027-02-01T00:00:00Z"
        .parse::<DateTime<Utc>>()
        .expect("time");
    close(
        "credwatch_token_expiry_timestamp_seconds{connection=\"cloud-declared\",source=\"config\"}",
        epoch(declared),
    );
    assert!(
        !metrics.contains("credwatch_token_never_expires{connection=\"cloud-declared\""),
        "Cloud cannot tell"
    );
    let cloud_view = api(&daemon, "cloud-derived").await;
    assert_eq!(cloud_view["expiry_source"], "derived");
    assert_eq!(cloud_view["expires_at"], derived.to_rfc3339());
    // The list is Data Center's API: Cloud connections never ask for it.
    assert!(simulator
        .requests_for("cloud")
        .iter()
        .all(|r| !r.path.contains("/rest/pat/")));
}

/// The old Jira's 404 is recorded once its first valid probe has run.
fn get_note_ready(metrics: &str) -> bool {
    sample(metrics, "credwatch_probes_total{connection=\"old-jira\"}").is_some_and(|n| n >= 1.0)
}

#[tokio::test]
async fn a_rejected_token_past_its_known_expiry_is_expired() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new("svc").with_pat(pat(
            1,
            "credwatch",
            "short-lived",
            Some(chrono::Duration::seconds(3)),
        ))),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = connection(
        "short",
        &simulator.url("dc"),
        "token = \"short-lived\"\ninterval = \"1s\"\ntimeout = \"500ms\"",
    );
    let daemon = start(dir.path(), &toml).await;
    eventually(
        Duration::from_secs(3),
        "valid, with the expiry from Jira",
        || async {
            let view = api(&daemon, "short").await;
            view["state"] == "valid" && view["expiry_source"] == "jira"
        },
    )
    .await;
    eventually(Duration::from_secs(6), "expired after the date", || async {
        api(&daemon, "short").await["state"] == "expired"
    })
    .await;
    let view = api(&daemon, "short").await;
    assert_eq!(view["reason"], "unauthorized");
    assert_eq!(view["http_status"], 401);
}

#[tokio::test]
async fn the_token_list_is_fetched_on_its_own_slower_cadence_and_after_a_secret_change() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        Site::server().with_user(
            User::new("svc")
                .with_pat(pat(1, "one", "tok-one", Some(chrono::Duration::days(90))))
                .with_pat(pat(2, "two", "tok-two", Some(chrono::Duration::days(90)))),
        ),
    );
    simulator.add_site(
        "fast",
        Site::server().with_user(User::new("svc").with_pat(pat(
            1,
            "one",
            "tok-fast",
            Some(chrono::Duration::days(90)),
        ))),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), "tok-one\n").expect("write");
    let toml = String::from("[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n")
        + &connection("slow-list", &simulator.url("dc"), "token_file = \"token\"\ntoken_name = \"one\"\ntoken_list_interval = \"4s\"")
        // A list cadence shorter than the probe's: the list still follows the probe.
        + &connection("fast-list", &simulator.url("fast"), "token = \"tok-fast\"\ntoken_list_interval = \"100ms\"");
    let daemon = start(dir.path(), &toml).await;
    let count = |site: &str, path: &str| {
        simulator
            .requests_for(site)
            .iter()
            .filter(|r| r.path.ends_with(path))
            .count()
    };
    eventually(Duration::from_secs(8), "six probes", || async {
        count("dc", "/myself") >= 6
    })
    .await;
    let (probes, lists) = (
        count("dc", "/myself"),
        count("dc", "/rest/pat/latest/tokens"),
    );
    assert!(
        (1..=2).contains(&lists),
        "{lists} token lists for {probes} probes at a 4 s cadence"
    );
    let (fast_probes, fast_lists) = (
        count("fast", "/myself"),
        count("fast", "/rest/pat/latest/tokens"),
    );
    assert!(
        fast_lists <= fast_probes && fast_lists >= fast_probes.saturating_sub(1),
        "{fast_lists} lists, {fast_probes} probes"
    );

    // A rotated secret: the list is fetched with the very next probe.
    let before = count("dc", "/rest/pat/latest/tokens");
    std::fs::write(dir.path().join("token"), "tok-two\n").expect("write");
    eventually(
        Duration::from_secs(4),
        "a list right after the new secret's probe",
        || async { count("dc", "/rest/pat/latest/tokens") > before },
    )
    .await;
    let requests = simulator.requests_for("dc");
    let last_list = requests
        .iter()
        .rev()
        .find(|r| r.path.ends_with("/tokens"))
        .expect("a list");
    assert_eq!(last_list.authorization.as_deref(), Some("Bearer tok-two"));
    drop(daemon);
}
