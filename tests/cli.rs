//! The `credwatch` binary end to end: `check` and `validate` against the simulator, their
//! outputs and exit codes, and the Retry-After rule of `check`.

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use credwatch::sim::{ApiToken, Front, Pat, Simulator, Site, User};
use serde_json::Value;

/// Runs the binary with arguments and extra environment, failing the test after 60 s.
async fn credwatch(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_credwatch"));
    command.args(args).env_remove("RUST_LOG");
    let state = common::isolate_state(&mut command);
    for (key, value) in env {
        command.env(key, value);
    }
    let run = tokio::task::spawn_blocking(move || {
        let output = command.output().expect("credwatch runs");
        drop(state);
        output
    });
    common::within(Duration::from_secs(60), run)
        .await
        .expect("joins")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A configuration directory with one secret file per connection.
struct Fleet {
    dir: tempfile::TempDir,
    toml: String,
}

impl Fleet {
    fn new() -> Fleet {
        Fleet {
            dir: tempfile::tempdir().expect("tempdir"),
            toml: String::new(),
        }
    }

    /// Adds a connection whose secret is written to a file; `extra` holds further keys.
    fn add(&mut self, name: &str, url: &str, secret: &str, extra: &str) {
        let key = if extra.contains("auth = \"basic\"") {
            "password_file"
        } else {
            "token_file"
        };
        std::fs::write(self.dir.path().join(name), format!("{secret}\n")).expect("secret");
        self.toml.push_str(&format!(
            "[[connection]]\nname = \"{name}\"\nurl = \"{url}\"\n{key} = \"{name}\"\n{extra}\n\n"
        ));
    }

    fn write(&self) -> PathBuf {
        let path = self.dir.path().join("credwatch.toml");
        std::fs::write(&path, &self.toml).expect("config");
        path
    }
}

fn dc_site() -> Site {
    Site::server()
        .with_user(User::new("svc-ci").with_pat(Pat::new(1, "credwatch", "pat-ci", Some(90))))
        .with_user(User::new("svc-legacy").with_password("legacy-password"))
}

fn by_name<'a>(reports: &'a Value, name: &str) -> &'a Value {
    reports
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no report for {name}"))
}

#[tokio::test]
async fn check_reports_json_and_exit_codes() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("dc", dc_site());
    let mut fleet = Fleet::new();
    fleet.add(
        "ci",
        &simulator.url("dc"),
        "pat-ci",
        "expires_at = \"2030-01-01\"\nlabels = { team = \"platform\" }",
    );
    fleet.add("revoked", &simulator.url("dc"), "pat-gone", "");
    let config = fleet.write();
    let config = config.to_str().expect("utf-8 path");

    let output = credwatch(&["check", "--config", config, "--output", "json"], &[]).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "one credential is not valid\n{stderr}"
    );
    let reports: Value = serde_json::from_str(&stdout).expect("JSON output");
    let ci = by_name(&reports, "ci");
    assert_eq!(ci["state"], "valid");
    assert_eq!(ci["reason"], "ok");
    assert_eq!(ci["http_status"], 200);
    assert_eq!(ci["account"], "svc-ci");
    assert!(ci["latency_ms"].is_u64());
    // Jira's PAT list (90 days) beats the declared 2030-01-01.
    assert_eq!(ci["expiry_source"], "jira");
    assert_ne!(ci["expires_at"], "2030-01-01T00:00:00+00:00");
    assert_eq!(ci["hint"], Value::Null);
    assert_eq!(ci["kind"], "server");
    assert_eq!(ci["auth"], "pat");
    assert_eq!(ci["labels"]["team"], "platform");
    let revoked = by_name(&reports, "revoked");
    assert_eq!(revoked["state"], "invalid");
    assert_eq!(revoked["reason"], "unauthorized");
    assert_eq!(revoked["http_status"], 401);
    assert_eq!(revoked["account"], Value::Null);
    assert!(revoked["hint"]
        .as_str()
        .is_some_and(|h| h.contains("revoked")));

    let only_ci = credwatch(&["check", "--config", config, "--connection", "ci"], &[]).await;
    let (table, _) = text(&only_ci);
    assert_eq!(
        only_ci.status.code(),
        Some(0),
        "the selected credential is valid"
    );
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("svc-ci"), "{table}");
    assert!(
        !table.contains("revoked"),
        "only the selected connection: {table}"
    );
    assert!(table.contains("1 connection: 1 valid"), "{table}");

    let unknown = credwatch(&["check", "--config", config, "--connection", "nope"], &[]).await;
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown).1.contains("no connection named \"nope\""));

    let invalid = credwatch(
        &[
            "check",
            "--config",
            "tests/fixtures/invalid/timeout-not-shorter.toml",
        ],
        &[],
    )
    .await;
    assert_eq!(invalid.status.code(), Some(2));
    assert!(text(&invalid)
        .1
        .contains("error: tests/fixtures/invalid/timeout-not-shorter.toml:6: connection \"jira-eu\": timeout: timeout (30s) must be shorter than interval (15s)"));

    let usage = credwatch(&["check"], &[]).await;
    assert_eq!(usage.status.code(), Some(2), "a usage error");
}

#[tokio::test]
async fn check_waits_out_a_short_retry_after_and_nothing_else() {
    let simulator = Simulator::start().await.expect("simulator");
    let cloud = |retry_after: &str, status: u16| {
        Site::cloud()
            .with_user(
                User::new("bot")
                    .with_email("bot@acme.example")
                    .with_api_token(ApiToken::new("api-bot")),
            )
            .with_front(Front::Throttle {
                remaining: 1,
                status,
                retry_after: Some(retry_after.to_owned()),
            })
    };
    simulator.add_site("short", cloud("1", 429));
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    simulator.add_site("date", cloud(&soon, 503));
    simulator.add_site("long", cloud("120", 429));
    simulator.add_site("dc", dc_site());
    let mut fleet = Fleet::new();
    let cloud_keys = "kind = \"cloud\"\nusername = \"bot@acme.example\"";
    fleet.add("short", &simulator.url("short"), "api-bot", cloud_keys);
    fleet.add("date", &simulator.url("date"), "api-bot", cloud_keys);
    fleet.add("long", &simulator.url("long"), "api-bot", cloud_keys);
    fleet.add(
        "wrong-password",
        &simulator.url("dc"),
        "not-the-password",
        "auth = \"basic\"\nusername = \"svc-legacy\"",
    );
    let config = fleet.write();

    let output = credwatch(
        &[
            "check",
            "--config",
            config.to_str().expect("path"),
            "-o",
            "json",
        ],
        &[],
    )
    .await;
    let (stdout, stderr) = text(&output);
    let reports: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("{stdout}\n{stderr}"));

    let short = by_name(&reports, "short");
    assert_eq!(
        (short["state"].as_str(), short["attempts"].as_u64()),
        (Some("valid"), Some(2))
    );
    let date = by_name(&reports, "date");
    assert_eq!(
        (date["state"].as_str(), date["attempts"].as_u64()),
        (Some("valid"), Some(2))
    );
    let long = by_name(&reports, "long");
    assert_eq!(long["reason"], "rate_limited");
    assert_eq!(
        long["attempts"], 1,
        "a Retry-After over 30 s is not waited out"
    );
    assert_eq!(long["retry_after"], "120");
    assert_eq!(long["rate_limit"]["reason"], "jira-burst-based");
    assert_eq!(simulator.request_count("long"), 1);

    let basic = by_name(&reports, "wrong-password");
    assert_eq!(basic["reason"], "unauthorized");
    assert_eq!(basic["attempts"], 1);
    let logins = simulator.site("dc").expect("site").users[1].failed_logins;
    assert_eq!(logins, 1, "a failed password is never retried");
}

#[tokio::test]
async fn validate_prints_effective_settings_or_every_error() {
    let credentials = tempfile::tempdir().expect("tempdir");
    for name in [
        "jira-prod",
        "jira-legacy-reports",
        "jira-lab",
        "atlassian-admin",
        "acme-cloud-automation",
        "acme-cloud-sync-sa",
        "jira-prod-etl-sa",
        "wiki-prod-publisher",
        "wiki-prod-legacy-sync",
        "wiki-cloud-docs-bot",
        "bitbucket-ci-clone",
        "bitbucket-deploy",
        "bitbucket-mirror",
    ] {
        std::fs::write(credentials.path().join(name), "validate-canary-secret\n").expect("write");
    }
    std::fs::copy(
        "tests/fixtures/test-ca.pem",
        credentials.path().join("corp-ca.pem"),
    )
    .expect("ca");
    let env = [
        (
            "CREDENTIALS_DIRECTORY",
            credentials.path().to_str().expect("path"),
        ),
        ("ACME_CLOUD_SYNC_TOKEN", "validate-canary-env"),
        ("WIKI_SCOPED_TOKEN", "validate-canary-env"),
    ];
    let output = credwatch(&["validate", "--config", "config/example.toml"], &env).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let example = std::fs::read_to_string("config/example.toml").expect("example");
    let line = example
        .lines()
        .position(|l| l.starts_with("name = \"jira-prod\""))
        .expect("jira-prod in the example");
    let header = format!(
        "# jira-prod (defined at config/example.toml:{line})\n[[connection]]\nname = \"jira-prod\""
    );
    assert!(stdout.contains(&header), "{stdout}");
    assert!(
        stdout.contains("url = \"https://jira.example.com/jira\""),
        "{stdout}"
    );
    assert!(stdout.contains("interval = \"5m\""), "{stdout}");
    assert!(
        stdout.contains("token_env = \"ACME_CLOUD_SYNC_TOKEN\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("kind = \"cloud\""),
        "defaults are shown resolved: {stdout}"
    );
    // A Basic connection's login account, with login_site standing for its site.
    assert!(
        stdout.contains("login_account = \"https://jira-legacy.example.com svc-reports\""),
        "{stdout}"
    );
    assert!(
        stderr.contains("configuration is valid: 15 connections"),
        "{stderr}"
    );
    assert!(
        stdout.contains("product = \"confluence\"") && stdout.contains("product = \"jira\""),
        "every connection's product is shown: {stdout}"
    );
    assert!(!stdout.contains("canary") && !stderr.contains("canary"));

    let inline = tempfile::tempdir().expect("tempdir");
    let path = inline.path().join("inline.toml");
    std::fs::write(
        &path,
        "[[connection]]\nname = \"a\"\nurl = \"https://jira.example.com\"\ntoken = \"inline-canary\"\n",
    )
    .expect("write");
    let output = credwatch(&["validate", "--config", path.to_str().expect("path")], &[]).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout.contains("token = \"********\""), "{stdout}");
    assert!(
        stderr.contains("the secret is written in the configuration file"),
        "{stderr}"
    );
    assert!(!stdout.contains("inline-canary") && !stderr.contains("inline-canary"));

    // --quiet, as systemd's ExecReload= runs it: nothing on stdout, the exit code says it all.
    let quiet = credwatch(
        &["validate", "--quiet", "--config", "config/example.toml"],
        &env,
    )
    .await;
    assert_eq!(quiet.status.code(), Some(0));
    assert!(quiet.stdout.is_empty());
    let quiet_broken = credwatch(
        &["validate", "--quiet", "--config", "tests/fixtures/invalid"],
        &[],
    )
    .await;
    assert_eq!(quiet_broken.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&quiet_broken.stderr).contains("error:"));

    let broken = credwatch(&["validate", "--config", "tests/fixtures/invalid"], &[]).await;
    let (_, stderr) = text(&broken);
    assert_eq!(broken.status.code(), Some(2));
    let errors = stderr.lines().filter(|l| l.starts_with("error: ")).count();
    assert!(errors >= 10, "every file's errors are listed: {stderr}");
}
