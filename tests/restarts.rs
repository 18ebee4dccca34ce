//! The state store through the binary, as users run it: verdicts and readiness back after
//! SIGTERM and after `kill -9` (in a loop, while it writes); at most 2 failed Basic logins over
//! 5 restarts and a reload, counted at the simulator; a corrupt or newer store set aside; a
//! second process on the same directory refused; `check` spending the daemon's budget.

mod common;

use std::process::Command;
use std::time::Duration;

use common::process::Running;
use common::{api_connection, eventually};
use credwatch::sim::{Pat, Simulator, Site, User};

#[tokio::test]
async fn verdicts_and_readiness_come_back_after_sigterm_and_kill_9_while_it_writes() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new("svc").with_pat(Pat::new(1, "ci", "tok", Some(90)))),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // Probed every second, so the store is written all the time; the rejected one every
    // second too (auth_failure_interval), so its rows change as well.
    let mut toml = String::from(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"900ms\"\nauth_failure_interval = \"1s\"\n\n",
    );
    for i in 0..20_usize {
        let token = if i.is_multiple_of(4) {
            "revoked"
        } else {
            "tok"
        };
        toml.push_str(&format!(
            "[[connection]]\nname = \"c{i:02}\"\nurl = \"{}\"\ntoken = \"{token}\"\n\n",
            simulator.url("dc")
        ));
    }
    let config = common::write(dir.path(), "credwatch.toml", &toml);
    let state = dir.path().join("state");
    let log = dir.path().join("stderr.log");
    let expected = |i: usize| {
        if i.is_multiple_of(4) {
            "invalid"
        } else {
            "valid"
        }
    };

    let mut running = Running::start(&config, &state, &log);
    running.first_answer().await;
    eventually(Duration::from_secs(10), "every verdict", || async {
        let all = common::get_json(&format!("{}/api/v1/connections", running.base)).await;
        all.as_array().is_some_and(|all| {
            all.iter()
                .enumerate()
                .all(|(i, c)| c["state"] == expected(i))
        })
    })
    .await;
    // The writer writes once a second: what a kill -9 loses is at most that second. From now
    // on every row holds a verdict, and a kill at any moment leaves the old or the new one.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for round in 0..6 {
        // A random moment within the writer's second.
        tokio::time::sleep(Duration::from_millis(300 + fastrand::u64(0..900))).await;
        let signal = if round % 2 == 0 { "-KILL" } else { "-TERM" };
        let code = running.stop(signal);
        if signal == "-TERM" {
            assert_eq!(code, Some(0), "SIGTERM exits 0");
        }
        running = Running::start(&config, &state, &log);
        // Ready from the first answer, every verdict restored.
        assert_eq!(
            running.first_answer().await,
            200,
            "round {round} ({signal})"
        );
        let all = common::get_json(&format!("{}/api/v1/connections", running.base)).await;
        let all = all.as_array().expect("array");
        assert_eq!(all.len(), 20);
        for (i, c) in all.iter().enumerate() {
            assert_eq!(c["state"], expected(i), "round {round} ({signal}): {c}");
            assert!(c["checked_at"].is_string(), "round {round}: {c}");
        }
    }
    assert!(
        !running.log().contains("set aside"),
        "no store was ever torn: {}",
        running.log()
    );
    assert_eq!(running.stop("-TERM"), Some(0));
}

fn basic_toml(url: &str, label: &str) -> String {
    format!(
        "[[connection]]\nname = \"legacy\"\nurl = \"{url}\"\nauth = \"basic\"\nusername = \"svc-jira\"\npassword_file = \"password\"\ninterval = \"1s\"\ntimeout = \"900ms\"\nauth_failure_interval = \"1s\"\nbackoff_initial = \"1s\"\nlabels = {{ team = \"{label}\" }}\n"
    )
}

#[tokio::test]
async fn five_restarts_and_a_reload_make_at_most_two_failed_logins() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new("svc-jira").with_password("right")),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(dir.path(), "password", "wrong\n");
    let url = simulator.url("dc");
    let config = common::write(dir.path(), "credwatch.toml", &basic_toml(&url, "a"));
    let state = dir.path().join("state");
    let log = dir.path().join("stderr.log");
    let logins = || {
        simulator
            .requests_for("dc")
            .iter()
            .filter(|r| r.path.ends_with("/myself"))
            .count()
    };
    let mut running = Running::start(&config, &state, &log);
    for round in 0..5 {
        running.first_answer().await;
        if round == 2 {
            // A reload with a changed label, the way an operator edits the file.
            common::write(dir.path(), "credwatch.toml", &basic_toml(&url, "b"));
            running.signal("-HUP");
        }
        tokio::time::sleep(Duration::from_millis(200 + fastrand::u64(0..1_500))).await;
        let signal = if round % 2 == 0 { "-KILL" } else { "-TERM" };
        running.stop(signal);
        let failed = simulator.site("dc").expect("site").users[0].failed_logins;
        assert!(failed <= 2, "round {round}: {failed} failed logins");
        running = Running::start(&config, &state, &log);
    }
    running.first_answer().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let user = &simulator.site("dc").expect("site").users[0];
    assert!(
        user.failed_logins <= 2,
        "{} failed logins",
        user.failed_logins
    );
    assert!(logins() <= 2, "{} logins sent", logins());
    assert!(logins() >= 1, "credwatch probed at all");
    let api = api_connection(&running.base, "legacy").await;
    assert_eq!(api["paused"], "failed_logins", "{api}");
    assert_eq!(running.stop("-TERM"), Some(0));
}

#[tokio::test]
async fn check_spends_the_daemons_budget_and_refuses_a_paused_connection() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new("svc-jira").with_password("right")),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(dir.path(), "password", "wrong\n");
    let config = common::write(
        dir.path(),
        "credwatch.toml",
        &basic_toml(&simulator.url("dc"), "a"),
    );
    let state = dir.path().join("state");
    let check =
        |extra: &'static [&'static str]| common::process::check_json(&config, &state, extra);
    // One check spends one login; the daemon beside it spends the second and stops.
    let first = check(&[]).await;
    assert_eq!(first.status.code(), Some(1));
    let log = dir.path().join("stderr.log");
    let running = Running::start(&config, &state, &log);
    running.first_answer().await;
    eventually(Duration::from_secs(10), "the daemon paused", || async {
        api_connection(&running.base, "legacy").await["paused"] == "failed_logins"
    })
    .await;
    assert_eq!(
        simulator.site("dc").expect("site").users[0].failed_logins,
        2
    );
    let sent = simulator.requests_for("dc").len();
    assert_eq!(sent, 2, "one login from check, one from the daemon");

    // With the daemon running, check reads the budget and sends nothing.
    let refused = check(&[]).await;
    assert_eq!(refused.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&refused.stdout).expect("JSON");
    assert_eq!(report[0]["paused"], "failed_logins", "{report}");
    assert!(report[0]["detail"]
        .as_str()
        .is_some_and(|d| d.contains("not probed")));
    assert_eq!(report[0]["attempts"], 0);
    assert_eq!(simulator.requests_for("dc").len(), sent, "no login sent");
    let table = tokio::task::spawn_blocking({
        let (config, state) = (config.clone(), state.clone());
        move || {
            Command::new(env!("CARGO_BIN_EXE_credwatch"))
                .args(["check", "--config"])
                .arg(&config)
                .arg("--state-dir")
                .arg(&state)
                .output()
                .expect("runs")
        }
    })
    .await
    .expect("joins");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("stopped probing after 2 failed logins"),
        "{text}"
    );

    // --force sends it all the same (and it is recorded: Jira's count is at 3 now, locked).
    let forced = check(&["--force"]).await;
    assert_eq!(forced.status.code(), Some(1));
    assert_eq!(simulator.requests_for("dc").len(), sent + 1);
    drop(running);
}

#[tokio::test]
async fn a_corrupt_or_newer_store_is_set_aside_with_a_warning_and_a_second_process_is_refused() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new("svc").with_pat(Pat::new(1, "ci", "tok", Some(90)))),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::write(
        dir.path(),
        "credwatch.toml",
        &format!(
            "[[connection]]\nname = \"c\"\nurl = \"{}\"\ntoken = \"tok\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n",
            simulator.url("dc")
        ),
    );
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("mkdir");
    let db = state.join("credwatch.db");
    std::fs::write(&db, b"this is not a database, just some bytes ".repeat(200)).expect("write");
    let log = dir.path().join("stderr.log");
    let running = Running::start(&config, &state, &log);
    running.first_answer().await;
    eventually(
        Duration::from_secs(5),
        "probing as on a first run",
        || async { api_connection(&running.base, "c").await["state"] == "valid" },
    )
    .await;
    let text = running.log();
    assert!(text.contains("WARN"), "{text}");
    assert!(
        text.contains(&db.display().to_string()),
        "names the file: {text}"
    );
    let aside: Vec<String> = std::fs::read_dir(&state)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("credwatch.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the corrupt file is kept aside");

    // A second process on the same directory: exit 2, naming it.
    let second = Command::new(env!("CARGO_BIN_EXE_credwatch"))
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .expect("runs");
    assert_eq!(second.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains(&state.display().to_string()), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    assert_eq!(running.stop("-TERM"), Some(0));

    // A store from a newer credwatch is set aside too, not read.
    {
        let db = rusqlite::Connection::open(&db).expect("open");
        db.pragma_update(None, "user_version", 99).expect("pragma");
    }
    let running = Running::start(&config, &state, &log);
    running.first_answer().await;
    assert!(running.log().contains("format 99"), "{}", running.log());
    assert_eq!(running.stop("-TERM"), Some(0));

    // An explicit directory that cannot be used: exit 2, naming it.
    let file = common::write(dir.path(), "not-a-dir", "x");
    let refused = Command::new(env!("CARGO_BIN_EXE_credwatch"))
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("CREDWATCH_STATE_DIR", &file)
        .output()
        .expect("runs");
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains(&file.display().to_string()));
}

#[tokio::test]
async fn the_gateway_is_asked_once_per_secret_across_sigterm_and_kill_9() {
    use credwatch::sim::ApiToken;
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "cloud",
        Site::cloud().with_user(
            User::new("sa")
                .with_email("sa@serviceaccount.atlassian.com")
                .with_api_token(ApiToken::scoped("scoped-tok")),
        ),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::write(
        dir.path(),
        "credwatch.toml",
        &format!(
            "[defaults]\ninterval = \"1s\"\ntimeout = \"900ms\"\nauth_failure_interval = \"1s\"\n\n[[connection]]\nname = \"sa\"\nurl = \"{}\"\nkind = \"cloud\"\nusername = \"sa@serviceaccount.atlassian.com\"\ntoken = \"scoped-tok\"\ngateway_url = \"{}\"\n",
            simulator.url("cloud"),
            simulator.url("gateway"),
        ),
    );
    let state = dir.path().join("state");
    let log = dir.path().join("stderr.log");
    let gateway_tries = || {
        simulator
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/gateway/"))
            .count()
    };
    let site_probes = || {
        simulator
            .requests()
            .iter()
            .filter(|r| r.path == "/cloud/rest/api/3/myself")
            .count()
    };
    for signal in ["-TERM", "-KILL", "-TERM"] {
        let running = Running::start(&config, &state, &log);
        running.first_answer().await;
        let before = site_probes();
        eventually(Duration::from_secs(10), "two more probes", || async {
            site_probes() >= before + 2
        })
        .await;
        let api = api_connection(&running.base, "sa").await;
        assert_eq!(api["reason"], "scoped_token_site_url", "{api}");
        // Written before the kill: the store's writer runs within a second of a change.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tokio::task::spawn_blocking(move || running.stop(signal))
            .await
            .expect("join");
        assert_eq!(
            gateway_tries(),
            1,
            "after {signal}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}
