//! The state store, in one process: verdicts, schedules and history restored after a stop,
//! a rejection after `valid` confirmed before it counts, a changed secret starting afresh
//! and a changed label not, `resume`, the history API, and no secret in the store.
//! (`tests/restarts.rs` does the same through the binary, with SIGTERM and `kill -9`.)

mod common;

use std::time::Duration;

use common::{api_connection, eventually, get_json, start_daemon_with_state};
use credwatch::sim::{Pat, Simulator, Site, User};

fn pat_site(user: &str, token: &str) -> Site {
    Site::server().with_user(User::new(user).with_pat(Pat::new(1, "credwatch", token, Some(90))))
}

fn myself_requests(simulator: &Simulator, site: &str) -> usize {
    simulator
        .requests_for(site)
        .iter()
        .filter(|r| r.path.ends_with("/myself"))
        .count()
}

fn set_revoked(simulator: &Simulator, site: &str, revoked: bool) {
    simulator.update_site(site, |site| {
        for user in &mut site.users {
            for pat in &mut user.pats {
                pat.revoked = revoked;
            }
        }
    });
}

#[tokio::test]
async fn a_401_blip_after_valid_does_not_flip_the_state_and_a_real_rejection_is_confirmed() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("dc", pat_site("svc", "tok"));
    let dir = tempfile::tempdir().expect("tempdir");
    let name = common::early_name("blip", Duration::from_secs(2));
    let (beat, heartbeat) = common::heartbeat(&simulator);
    let path = common::write(
        dir.path(),
        "credwatch.toml",
        &format!(
            "{heartbeat}[[connection]]\nname = \"{name}\"\nurl = \"{}\"\ntoken = \"tok\"\ninterval = \"2s\"\ntimeout = \"1s\"\nauth_failure_interval = \"1h\"\n",
            simulator.url("dc")
        ),
    );
    let daemon = start_daemon_with_state(&path, &dir.path().join("state"), false).await;
    let base = format!("http://{}", daemon.addr());
    eventually(Duration::from_secs(5), "valid", || async {
        api_connection(&base, &name).await["state"] == "valid"
    })
    .await;

    // One 401: the state stands, the rejection waits for its confirmation.
    set_revoked(&simulator, "dc", true);
    eventually(Duration::from_secs(5), "a rejection pending", || async {
        api_connection(&base, &name).await["pending_reason"] == "unauthorized"
    })
    .await;
    let pending = api_connection(&base, &name).await;
    assert_eq!(pending["state"], "valid", "{pending}");
    assert_eq!(pending["reason"], "unauthorized");
    assert!(pending["pending_since"].is_string());
    let metrics = common::get_text(&format!("{base}/metrics")).await;
    let series = format!("credwatch_credential_state{{connection=\"{name}\",state=\"valid\"}}");
    assert_eq!(common::sample(&metrics, &series), Some(1.0));

    // Jira answers again before the confirmation: the blip is forgotten.
    set_revoked(&simulator, "dc", false);
    eventually(Duration::from_secs(5), "the blip cleared", || async {
        let c = api_connection(&base, &name).await;
        c["reason"] == "ok" && c["pending_reason"].is_null()
    })
    .await;

    // A real rejection: confirmed by the next probe, one interval later rather than after
    // the hour of auth_failure_interval, and only then the state changes.
    set_revoked(&simulator, "dc", true);
    let revoked_at = chrono::Utc::now();
    eventually(
        Duration::from_secs(8),
        "the rejection confirmed",
        || async { api_connection(&base, &name).await["state"] == "invalid" },
    )
    .await;
    // Three more rounds of the scheduler: no third login follows the confirmation.
    common::after_rounds(&base, &beat, 3).await;
    let rejected: Vec<_> = simulator
        .requests_for("dc")
        .into_iter()
        .filter(|r| r.path.ends_with("/myself") && r.at > revoked_at)
        .collect();
    let times: Vec<_> = rejected.iter().map(|r| r.at).collect();
    assert_eq!(
        rejected.len(),
        2,
        "one rejection, one confirmation: {times:?}"
    );
    let gap = (rejected[1].at - rejected[0].at).num_milliseconds();
    assert!((1_000..3_500).contains(&gap), "confirmed {gap} ms later");
    let confirmed = api_connection(&base, &name).await;
    assert!(confirmed["pending_reason"].is_null(), "{confirmed}");

    // The history, newest first: unknown -> valid -> invalid, and nothing for the blip.
    let history = get_json(&format!("{base}/api/v1/connections/{name}/history")).await;
    assert_eq!(history["connection"], name.as_str());
    let steps: Vec<(String, String, String)> = history["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .map(|t| {
            assert!(t["at"].is_string(), "{t}");
            let s = |k: &str| t[k].as_str().unwrap_or_default().to_owned();
            (s("from"), s("to"), s("reason"))
        })
        .collect();
    let step = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        steps,
        [
            step("valid", "invalid", "unauthorized"),
            step("unknown", "valid", "ok")
        ]
    );
    let missing = common::http_client()
        .get(format!("{base}/api/v1/connections/nope/history"))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);
    daemon.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_pending_confirmation_survives_a_restart_and_is_confirmed_by_the_next_probe() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("dc", pat_site("svc", "tok"));
    let dir = tempfile::tempdir().expect("tempdir");
    let name = common::early_name("pending", Duration::from_secs(3));
    let path = common::write(
        dir.path(),
        "credwatch.toml",
        &format!(
            "[[connection]]\nname = \"{name}\"\nurl = \"{}\"\ntoken = \"tok\"\ninterval = \"3s\"\ntimeout = \"1s\"\n",
            simulator.url("dc")
        ),
    );
    let state = dir.path().join("state");
    let daemon = start_daemon_with_state(&path, &state, false).await;
    let base = format!("http://{}", daemon.addr());
    eventually(Duration::from_secs(5), "valid", || async {
        api_connection(&base, &name).await["state"] == "valid"
    })
    .await;
    set_revoked(&simulator, "dc", true);
    let revoked_at = chrono::Utc::now();
    eventually(Duration::from_secs(6), "a rejection pending", || async {
        !api_connection(&base, &name).await["pending_reason"].is_null()
    })
    .await;
    let since = api_connection(&base, &name).await["pending_since"].clone();
    daemon.shutdown(Duration::from_secs(1)).await;

    let daemon = start_daemon_with_state(&path, &state, false).await;
    let base = format!("http://{}", daemon.addr());
    let restored = api_connection(&base, &name).await;
    assert_eq!(restored["state"], "valid", "{restored}");
    assert_eq!(restored["pending_reason"], "unauthorized", "{restored}");
    assert_eq!(restored["pending_since"], since);
    eventually(
        Duration::from_secs(6),
        "confirmed after the restart",
        || async { api_connection(&base, &name).await["state"] == "invalid" },
    )
    .await;
    let rejections = simulator
        .requests_for("dc")
        .iter()
        .filter(|r| r.path.ends_with("/myself") && r.at > revoked_at)
        .count();
    assert_eq!(rejections, 2, "the first rejection, and its confirmation");
    daemon.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_stopped_daemon_comes_back_with_its_verdicts_schedule_and_history_and_probes_nothing_early(
) {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("dc", pat_site("svc", "tok"));
    let dir = tempfile::tempdir().expect("tempdir");
    let interval = Duration::from_secs(20);
    let good = common::early_name("good", interval);
    let bad = common::early_name("bad", interval);
    let (beat, heartbeat) = common::heartbeat(&simulator);
    let toml = format!(
        "[defaults]\ninterval = \"20s\"\ntimeout = \"2s\"\n\n{heartbeat}[[connection]]\nname = \"{good}\"\nurl = \"{url}\"\ntoken = \"tok\"\n\n[[connection]]\nname = \"{bad}\"\nurl = \"{url}\"\ntoken = \"revoked\"\n",
        url = simulator.url("dc")
    );
    let path = common::write(dir.path(), "credwatch.toml", &toml);
    let state = dir.path().join("state");
    let daemon = start_daemon_with_state(&path, &state, false).await;
    let base = format!("http://{}", daemon.addr());
    eventually(Duration::from_secs(5), "every verdict", || async {
        api_connection(&base, &bad).await["state"] == "invalid"
            && api_connection(&base, &good).await["state"] == "valid"
            && api_connection(&base, &beat).await["state"] == "valid"
    })
    .await;
    let before_good = api_connection(&base, &good).await;
    let before_bad = api_connection(&base, &bad).await;
    daemon.shutdown(Duration::from_secs(1)).await;
    let probed = myself_requests(&simulator, "dc");

    let daemon = start_daemon_with_state(&path, &state, false).await;
    let base = format!("http://{}", daemon.addr());
    // Ready at once: every connection has its restored verdict.
    let ready = common::http_client()
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("GET");
    assert_eq!(ready.status(), 200);
    for (name, before) in [(&good, &before_good), (&bad, &before_bad)] {
        let after = api_connection(&base, name).await;
        for key in [
            "state",
            "reason",
            "http_status",
            "account",
            "checked_at",
            "hint",
        ] {
            assert_eq!(after[key], before[key], "{name}: {key}");
        }
        assert_eq!(after["probes_total"], 0, "{name}: nothing probed yet");
        assert_eq!(after["next_probe_at"], before["next_probe_at"], "{name}");
    }
    let metrics = common::get_text(&format!("{base}/metrics")).await;
    let series = format!("credwatch_credential_state{{connection=\"{bad}\",state=\"invalid\"}}");
    assert_eq!(
        common::sample(&metrics, &series),
        Some(1.0),
        "exported at once"
    );
    let last = format!("credwatch_last_probe_timestamp_seconds{{connection=\"{good}\"}}");
    assert!(common::sample(&metrics, &last).is_some(), "with its age");
    // The next probes were 20 s away: three rounds of the scheduler later, nothing was
    // probed early.
    common::after_rounds(&base, &beat, 3).await;
    assert_eq!(
        myself_requests(&simulator, "dc"),
        probed,
        "nothing probed early"
    );
    let history = get_json(&format!("{base}/api/v1/connections/{bad}/history")).await;
    assert_eq!(history["transitions"][0]["to"], "invalid", "{history}");
    daemon.shutdown(Duration::from_secs(1)).await;
}

fn basic_toml(url: &str, password_file: &str, label: &str) -> String {
    format!(
        "[[connection]]\nname = \"legacy\"\nurl = \"{url}\"\nauth = \"basic\"\nusername = \"svc-jira\"\npassword_file = \"{password_file}\"\ninterval = \"1s\"\ntimeout = \"900ms\"\nauth_failure_interval = \"1s\"\nlabels = {{ team = \"{label}\" }}\n"
    )
}

fn failed_logins(simulator: &Simulator) -> u32 {
    simulator.site("dc").expect("site").users[0].failed_logins
}

#[tokio::test]
async fn a_label_change_keeps_the_pause_and_a_changed_password_waits_for_resume() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new("svc-jira").with_password("right")),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(dir.path(), "password", "wrong\n");
    let url = simulator.url("dc");
    let (beat, heartbeat) = common::heartbeat(&simulator);
    let toml = |label: &str| heartbeat.clone() + &basic_toml(&url, "password", label);
    let path = common::write(dir.path(), "credwatch.toml", &toml("a"));
    let state = dir.path().join("state");
    let daemon = start_daemon_with_state(&path, &state, true).await;
    let base = format!("http://{}", daemon.addr());
    eventually(Duration::from_secs(10), "paused", || async {
        api_connection(&base, "legacy").await["paused"] == "failed_logins"
    })
    .await;
    assert_eq!(failed_logins(&simulator), 2);
    let sent = simulator.requests_for("dc").len();

    // A reload that changes a label: the connection restarts, the pause stays.
    common::write(dir.path(), "credwatch.toml", &toml("b"));
    let summary = daemon.reload().await.expect("reload");
    assert_eq!(summary.changed, ["legacy"]);
    let after = api_connection(&base, "legacy").await;
    assert_eq!(after["paused"], "failed_logins", "{after}");
    assert_eq!(after["labels"]["team"], "b");
    daemon.shutdown(Duration::from_secs(1)).await;

    // A restart with another label: still paused, no login sent.
    common::write(dir.path(), "credwatch.toml", &toml("c"));
    let daemon = start_daemon_with_state(&path, &state, true).await;
    let base = format!("http://{}", daemon.addr());
    assert_eq!(
        api_connection(&base, "legacy").await["paused"],
        "failed_logins"
    );
    common::after_rounds(&base, &beat, 3).await;
    assert_eq!(simulator.requests_for("dc").len(), sent, "no login sent");
    daemon.shutdown(Duration::from_secs(1)).await;

    // A new password does not reset Jira's count, so it does not reset the account's budget:
    // no login until a person says the count was reset, and the hint says so.
    common::write(dir.path(), "password", "right\n");
    let daemon = start_daemon_with_state(&path, &state, true).await;
    let base = format!("http://{}", daemon.addr());
    common::after_rounds(&base, &beat, 3).await;
    assert_eq!(simulator.requests_for("dc").len(), sent, "no login sent");
    let paused = api_connection(&base, "legacy").await;
    assert_eq!(paused["paused"], "failed_logins", "{paused}");
    assert!(
        paused["hint"]
            .as_str()
            .is_some_and(|h| h.contains("does not reset") && h.contains("credwatch resume")),
        "{paused}"
    );
    assert_eq!(daemon.resume("legacy").await.expect("resume"), ["legacy"]);
    eventually(
        Duration::from_secs(5),
        "valid with the new password",
        || async { api_connection(&base, "legacy").await["state"] == "valid" },
    )
    .await;
    assert!(api_connection(&base, "legacy").await["paused"].is_null());
    assert_eq!(failed_logins(&simulator), 0);
    daemon.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn resume_lifts_a_pause_after_an_admin_fixed_the_account() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new("svc-jira").with_password("right")),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(dir.path(), "password", "typo\n");
    let path = common::write(
        dir.path(),
        "credwatch.toml",
        &basic_toml(&simulator.url("dc"), "password", "a"),
    );
    let daemon = start_daemon_with_state(&path, &dir.path().join("state"), true).await;
    let base = format!("http://{}", daemon.addr());
    let resume = |name: &'static str| {
        let url = format!("{base}/api/v1/connections/{name}/resume");
        async move {
            let response = common::http_client().post(url).send().await.expect("POST");
            (
                response.status().as_u16(),
                response.text().await.expect("body"),
            )
        }
    };
    // Nothing to lift yet (the first probe may not have come either).
    assert_eq!(resume("nope").await.0, 404);
    eventually(Duration::from_secs(10), "paused", || async {
        api_connection(&base, "legacy").await["paused"] == "failed_logins"
    })
    .await;
    // The admin resets the account to the password the integration uses.
    simulator.update_site("dc", |site| {
        let user = &mut site.users[0];
        user.password = Some("typo".to_owned());
        user.failed_logins = 0;
    });
    let before = simulator.requests_for("dc").len();
    // Through the binary, as a person would.
    let output = tokio::task::spawn_blocking({
        let base = base.clone();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_credwatch"))
                .args(["resume", "legacy", "--url", &base])
                .output()
                .expect("runs")
        }
    })
    .await
    .expect("joins");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("resumed legacy"));
    eventually(
        Duration::from_secs(3),
        "probed at once and valid",
        || async { api_connection(&base, "legacy").await["state"] == "valid" },
    )
    .await;
    assert_eq!(simulator.requests_for("dc").len(), before + 1);
    let resumed = api_connection(&base, "legacy").await;
    assert!(resumed["paused"].is_null(), "{resumed}");
    // Not paused any more: nothing to lift.
    let (code, text) = resume("legacy").await;
    assert_eq!(code, 409, "{text}");
    daemon.shutdown(Duration::from_secs(1)).await;

    // Without --enable-lifecycle the endpoint is refused.
    let daemon = start_daemon_with_state(&path, &dir.path().join("state2"), false).await;
    let response = common::http_client()
        .post(format!(
            "http://{}/api/v1/connections/legacy/resume",
            daemon.addr()
        ))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 403);
    daemon.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn no_secret_reaches_the_store() {
    const TOKEN: &str = "canary-token-7f3a91c2";
    const PASSWORD: &str = "canary-password-b84e";
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("dc", pat_site("svc", TOKEN));
    simulator.add_site(
        "basic",
        Site::server().with_user(User::new("svc-jira").with_password(PASSWORD)),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(dir.path(), "token", &format!("{TOKEN}\n"));
    let toml = format!(
        "[[connection]]\nname = \"pat\"\nurl = \"{}\"\ntoken_file = \"token\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n\n[[connection]]\nname = \"basic\"\nurl = \"{}\"\nauth = \"basic\"\nusername = \"svc-jira\"\npassword = \"{PASSWORD}\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n",
        simulator.url("dc"),
        simulator.url("basic"),
    );
    let path = common::write(dir.path(), "credwatch.toml", &toml);
    let state = dir.path().join("state");
    let daemon = start_daemon_with_state(&path, &state, false).await;
    let base = format!("http://{}", daemon.addr());
    eventually(Duration::from_secs(8), "both probed twice", || async {
        let pat = api_connection(&base, "pat").await;
        let basic = api_connection(&base, "basic").await;
        pat["state"] == "valid"
            && basic["state"] == "valid"
            && basic["probes_total"].as_u64() >= Some(2)
    })
    .await;
    // Read while running (the write-ahead log holds the latest writes) and after a stop.
    let mut forms = vec![TOKEN.to_owned(), PASSWORD.to_owned()];
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    forms.push(engine.encode(format!("svc-jira:{PASSWORD}")));
    forms.push(engine.encode(TOKEN));
    let scan = |when: &str| {
        let mut files = 0;
        for entry in std::fs::read_dir(&state).expect("state dir") {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read");
            files += 1;
            for form in &forms {
                assert!(
                    !bytes.windows(form.len()).any(|w| w == form.as_bytes()),
                    "{when}: {} holds a form of the secret",
                    path.display()
                );
            }
        }
        assert!(files >= 2, "the store and its lock");
    };
    scan("running");
    daemon.shutdown(Duration::from_secs(1)).await;
    scan("stopped");
}
