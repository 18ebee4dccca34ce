//! The daemon against the simulator: schedules, politeness, stops, secret rotation, reload,
//! readiness, metrics and shutdown.
//!
//! The schedule tests (first-probe offsets, `Retry-After`, the Basic login budget) run on
//! tokio's paused clock, with the intervals users set (minutes, an hour): the runtime moves
//! its clock on whenever every task waits, the simulator stamps each request with that clock,
//! and hours pass in milliseconds. The others wait on real time, a second or two at most,
//! and poll a condition under a deadline.

mod common;

use common::sample;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use credwatch::config::Config;
use credwatch::daemon::{Daemon, Options};
use credwatch::probe::Prober;
use credwatch::sim::{Front, Pat, Simulator, Site, User, ALL_SITES};
use credwatch::start_offset;
use serde_json::Value;

/// A daemon over a configuration written to a temporary directory.
struct Harness {
    dir: tempfile::TempDir,
    daemon: Daemon,
    client: reqwest::Client,
    /// When it started on tokio's clock (virtual time in the paused-clock tests).
    instant: tokio::time::Instant,
}

impl Harness {
    async fn start(toml: &str, enable_lifecycle: bool) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = common::write(dir.path(), "credwatch.toml", toml);
        Self::start_in(dir, path, enable_lifecycle).await
    }

    async fn start_in(dir: tempfile::TempDir, path: PathBuf, enable_lifecycle: bool) -> Harness {
        let instant = tokio::time::Instant::now();
        let daemon = common::start_daemon(&path, enable_lifecycle).await;
        Harness {
            dir,
            daemon,
            client: common::http_client(),
            instant,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.daemon.addr())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = common::within(
            Duration::from_secs(5),
            self.client.get(self.url(path)).send(),
        )
        .await
        .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    async fn metrics(&self) -> String {
        self.get("/metrics").await.1
    }

    async fn connections(&self) -> Vec<Value> {
        let (status, body) = self.get("/api/v1/connections").await;
        assert_eq!(status, 200);
        serde_json::from_str(&body).expect("JSON")
    }

    async fn connection(&self, name: &str) -> Value {
        self.connections()
            .await
            .into_iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no connection {name}"))
    }
}

use common::eventually;

/// The identity probes a site received (valid PAT probes are followed by a token list).
fn probes(simulator: &Simulator, site: &str) -> Vec<credwatch::sim::RecordedRequest> {
    simulator
        .requests_for(site)
        .into_iter()
        .filter(|r| r.path.ends_with("/myself"))
        .collect()
}

use common::early_name;

fn pat_site(tokens: &[(&str, &str)]) -> Site {
    let mut site = Site::server();
    for (i, (user, token)) in tokens.iter().enumerate() {
        site = site.with_user(User::new(user).with_pat(Pat::new(
            i as u64 + 1,
            "credwatch",
            token,
            Some(90),
        )));
    }
    site
}

fn pat_connection(name: &str, url: &str, token: &str, extra: &str) -> String {
    format!("[[connection]]\nname = \"{name}\"\nurl = \"{url}\"\ntoken = \"{token}\"\n{extra}\n\n")
}

/// On tokio's paused clock, with a realistic ten-minute interval: the first probes come at
/// their offsets to the slot, and the second exactly one interval later.
#[tokio::test(start_paused = true)]
async fn first_probes_spread_over_the_first_interval_and_never_overlap() {
    const INTERVAL: Duration = Duration::from_secs(600);
    let simulator = Simulator::start().await.expect("simulator");
    let mut toml = String::from("[defaults]\ninterval = \"10m\"\ntimeout = \"10s\"\n\n");
    let names: Vec<String> = (0..8).map(|i| format!("spread-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let site = format!("s{i}");
        let token = format!("tok-{i}");
        // Slow answers, so that an overlap would show.
        simulator.add_site(
            &site,
            pat_site(&[("svc", &token)]).with_front(Front::Slow(Duration::from_secs(3))),
        );
        toml.push_str(&pat_connection(name, &simulator.url(&site), &token, ""));
    }
    let harness = Harness::start(&toml, false).await;
    tokio::time::sleep(INTERVAL * 2 + Duration::from_secs(30)).await;

    let mut quarters = std::collections::BTreeSet::new();
    for (i, name) in names.iter().enumerate() {
        let requests = probes(&simulator, &format!("s{i}"));
        assert!(requests.len() >= 2, "{name}: {} probes", requests.len());
        let expected = start_offset(name, INTERVAL);
        let actual = requests[0].instant - harness.instant;
        // Probes start on a grid of 100 ms slots.
        let off = actual.as_millis().abs_diff(expected.as_millis());
        assert!(
            off <= 100,
            "{name}: first probe at {actual:?}, its offset is {expected:?}"
        );
        quarters.insert(expected.as_millis() / (INTERVAL.as_millis() / 4));
        let gap = requests[1].instant - requests[0].instant;
        assert!(
            gap.abs_diff(INTERVAL) <= Duration::from_millis(100),
            "{name}: probes {gap:?} apart, interval {INTERVAL:?}"
        );
        assert_eq!(
            simulator.max_in_flight(&format!("s{i}")),
            1,
            "{name}: overlapping probes"
        );
    }
    assert!(
        quarters.len() >= 3,
        "first probes spread over the interval: {quarters:?}"
    );
}

#[tokio::test]
async fn global_and_per_site_bounds_hold() {
    let simulator = Simulator::start().await.expect("simulator");
    let tokens: Vec<(String, String)> = (0..6)
        .map(|i| (format!("svc{i}"), format!("t{i}")))
        .collect();
    let pairs: Vec<(&str, &str)> = tokens
        .iter()
        .map(|(u, t)| (u.as_str(), t.as_str()))
        .collect();
    simulator.add_site(
        "crowded",
        pat_site(&pairs).with_front(Front::Slow(Duration::from_millis(400))),
    );
    // All first probes land within 100 ms: without the bound, six would be in flight at once.
    let mut toml = String::from("[defaults]\ninterval = \"100ms\"\ntimeout = \"90ms\"\nmax_concurrent_per_site = 2\nmax_concurrent_probes = 64\n\n");
    for (i, (_, token)) in tokens.iter().enumerate() {
        toml.push_str(&pat_connection(
            &format!("c{i}"),
            &simulator.url("crowded"),
            token,
            "timeout = \"900ms\"\ninterval = \"1s\"",
        ));
    }
    let harness = Harness::start(&toml, false).await;
    eventually(
        Duration::from_secs(8),
        "every connection probed",
        || async { probes(&simulator, "crowded").len() >= 6 },
    )
    .await;
    assert_eq!(simulator.max_in_flight("crowded"), 2, "per-site bound of 2");
    drop(harness);

    let simulator = Simulator::start().await.expect("simulator");
    let mut toml = String::from("[defaults]\nmax_concurrent_probes = 1\n\n");
    for i in 0..4 {
        let site = format!("site{i}");
        simulator.add_site(
            &site,
            pat_site(&[("svc", "t")]).with_front(Front::Slow(Duration::from_millis(300))),
        );
        toml.push_str(&pat_connection(
            &format!("g{i}"),
            &simulator.url(&site),
            "t",
            "interval = \"1s\"\ntimeout = \"900ms\"",
        ));
    }
    let _harness = Harness::start(&toml, false).await;
    eventually(Duration::from_secs(8), "every site probed", || async {
        (0..4).all(|i| simulator.request_count(&format!("site{i}")) >= 1)
    })
    .await;
    assert_eq!(
        simulator.max_in_flight(ALL_SITES),
        1,
        "global bound of 1 across sites"
    );
}

/// On tokio's paused clock: the runtime moves its clock on whenever every task waits, so two
/// minutes of `Retry-After` take no wall time, and the gaps are measured in that virtual time.
#[tokio::test(start_paused = true)]
async fn a_rate_limit_closes_the_site_for_all_its_connections_for_at_least_retry_after() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "busy",
        pat_site(&[("svc-a", "ta"), ("svc-b", "tb")]).with_front(Front::Throttle {
            remaining: 1,
            status: 429,
            retry_after: Some("120".into()),
        }),
    );
    let extra =
        "interval = \"10s\"\ntimeout = \"2s\"\nbackoff_initial = \"1s\"\nbackoff_max = \"5s\"";
    let toml = pat_connection("a", &simulator.url("busy"), "ta", extra)
        + &pat_connection("b", &simulator.url("busy"), "tb", extra);
    let harness = Harness::start(&toml, false).await;
    let started = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(150)).await;
    let metrics = harness.metrics().await;
    for c in ["a", "b"] {
        assert_eq!(
            sample(
                &metrics,
                &format!("credwatch_credential_state{{connection=\"{c}\",state=\"valid\"}}"),
            ),
            Some(1.0),
            "{c} is valid once the rate limit has passed"
        );
    }
    let requests = probes(&simulator, "busy");
    let limited_at = requests[0].instant;
    assert!(
        limited_at - started < Duration::from_secs(10),
        "the first probe comes within the first interval"
    );
    let after: Vec<Duration> = requests[1..]
        .iter()
        .map(|later| later.instant.saturating_duration_since(limited_at))
        .collect();
    assert!(!after.is_empty(), "probing resumed");
    for gap in &after {
        assert!(
            *gap >= Duration::from_secs(120),
            "a request {gap:?} after the 429 with Retry-After: 120 (all: {after:?})"
        );
    }
    // Probing resumes as soon as the floor has passed, not one backoff step or more later.
    assert!(after[0] < Duration::from_secs(125), "{after:?}");
    let limited = if requests[0].authorization.as_deref() == Some("Bearer ta") {
        "a"
    } else {
        "b"
    };
    assert_eq!(
        sample(
            &metrics,
            &format!("credwatch_rate_limited_total{{connection=\"{limited}\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, &format!("credwatch_probe_failures_total{{connection=\"{limited}\",reason=\"rate_limited\"}}")),
        Some(1.0)
    );
}

/// On tokio's paused clock, with the default pace (a 5-minute interval, an hour after a
/// rejection): hours of virtual time, and still only two failed logins.
#[tokio::test(start_paused = true)]
async fn basic_auth_makes_at_most_two_failed_logins_then_waits_for_a_new_password() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new("svc").with_password("right-password")),
    );
    let mut locked = User::new("svc-locked").with_password("pw");
    locked.failed_logins = 3;
    simulator.add_site("dc-locked", Site::server().with_user(locked));
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(dir.path(), "password", "wrong-password\n");
    common::write(dir.path(), "locked-password", "pw\n");
    let toml = format!(
        "[defaults]\ninterval = \"5m\"\ntimeout = \"10s\"\nauth_failure_interval = \"1h\"\n\n\
         [[connection]]\nname = \"basic\"\nurl = \"{}\"\nauth = \"basic\"\nusername = \"svc\"\npassword_file = \"password\"\n\n\
         [[connection]]\nname = \"locked\"\nurl = \"{}\"\nauth = \"basic\"\nusername = \"svc-locked\"\npassword_file = \"locked-password\"\n",
        simulator.url("dc"),
        simulator.url("dc-locked")
    );
    let path = common::write(dir.path(), "credwatch.toml", &toml);
    let harness = Harness::start_in(dir, path, false).await;

    // The first login within the first interval, the second an hour later
    // (auth_failure_interval), then nothing for hours: had credwatch gone on, the account
    // would be locked by now.
    tokio::time::sleep(Duration::from_secs(4 * 3600)).await;
    let logins = probes(&simulator, "dc");
    assert_eq!(logins.len(), 2, "no third login");
    let gap = logins[1].instant - logins[0].instant;
    assert!(
        gap.abs_diff(Duration::from_secs(3600)) <= Duration::from_secs(1),
        "the second login {gap:?} after the first, auth_failure_interval 1h"
    );
    assert_eq!(
        simulator.site("dc").expect("site").users[0].failed_logins,
        2,
        "not locked"
    );
    assert_eq!(
        probes(&simulator, "dc-locked").len(),
        1,
        "a locked account is probed once"
    );

    let basic = harness.connection("basic").await;
    assert_eq!(basic["state"], "invalid");
    assert_eq!(basic["reason"], "unauthorized");
    assert_eq!(basic["paused"], "failed_logins");
    assert_eq!(basic["next_probe_at"], Value::Null);
    assert!(
        basic["hint"]
            .as_str()
            .is_some_and(|h| h.contains("stopped probing")),
        "{basic}"
    );
    let locked = harness.connection("locked").await;
    assert_eq!(
        (locked["state"].as_str(), locked["paused"].as_str()),
        (Some("locked"), Some("locked"))
    );
    let metrics = harness.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "credwatch_next_probe_timestamp_seconds{connection=\"basic\"}"
        ),
        None
    );

    // A person fixes the password file: credwatch probes again at once.
    let fixed_at = tokio::time::Instant::now();
    common::write(harness.dir.path(), "password", "right-password\n");
    while harness.connection("basic").await["state"] != "valid" {
        assert!(
            fixed_at.elapsed() < Duration::from_secs(10), // secret files are polled every 5 s
            "no probe with the new password within the secret poll"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(probes(&simulator, "dc").len(), 3);
    assert_eq!(
        simulator.site("dc").expect("site").users[0].failed_logins,
        0
    );
    assert_eq!(harness.connection("basic").await["paused"], Value::Null);
}

#[tokio::test]
async fn a_rotated_token_file_is_picked_up_and_probed_at_once() {
    let simulator = Simulator::start().await.expect("simulator");
    let mut revoked = Pat::new(1, "old", "old-token", Some(30));
    revoked.revoked = true;
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new("svc").with_pat(revoked).with_pat(Pat::new(
            2,
            "new",
            "new-token",
            Some(90),
        ))),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(dir.path(), "token", "old-token\n");
    // After a rejection the next probe would wait an hour.
    let name = early_name("ci", Duration::from_secs(60));
    let toml = format!(
        "[[connection]]\nname = \"{name}\"\nurl = \"{}\"\ntoken_file = \"token\"\ninterval = \"1m\"\n",
        simulator.url("dc")
    );
    let path = common::write(dir.path(), "credwatch.toml", &toml);
    let harness = Harness::start_in(dir, path, false).await;
    eventually(Duration::from_secs(3), "the first probe", || async {
        probes(&simulator, "dc").len() == 1
    })
    .await;
    eventually(Duration::from_secs(2), "the rejection recorded", || async {
        harness.connection(&name).await["state"] == "invalid"
    })
    .await;
    // Kubernetes updates a mounted secret by swapping a symlink; a rename does the same here.
    let staged = common::write(harness.dir.path(), "token.new", "new-token\n");
    std::fs::rename(staged, harness.dir.path().join("token")).expect("rename");
    // Secret files are checked every 5 s.
    eventually(
        Duration::from_secs(8),
        "a probe with the new token",
        || async { harness.connection(&name).await["state"] == "valid" },
    )
    .await;
    let requests = probes(&simulator, "dc");
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].authorization.as_deref(),
        Some("Bearer new-token")
    );
}

#[tokio::test]
async fn a_change_in_the_myself_answer_is_read_by_the_next_probe() {
    // Each task keeps what its last `myself` body said and skips reading the same bytes
    // again; an account deactivated between two probes must still show at the next one.
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("dc", pat_site(&[("svc", "tok")]));
    let name = early_name("inactive", Duration::from_secs(1));
    let toml = pat_connection(
        &name,
        &simulator.url("dc"),
        "tok",
        "interval = \"1s\"\ntimeout = \"900ms\"",
    );
    let harness = Harness::start(&toml, false).await;
    eventually(Duration::from_secs(3), "two valid probes", || async {
        probes(&simulator, "dc").len() >= 2 && harness.connection(&name).await["state"] == "valid"
    })
    .await;
    assert_eq!(harness.connection(&name).await["account"], "svc");
    simulator.update_site("dc", |site| site.users[0].active = false);
    eventually(Duration::from_secs(3), "the deactivation seen", || async {
        let connection = harness.connection(&name).await;
        connection["state"] == "invalid" && connection["reason"] == "account_inactive"
    })
    .await;
}

fn reload_config(url: &str, change_interval: &str, with_removed: bool, with_added: bool) -> String {
    let mut toml = String::from("[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n");
    toml.push_str(&pat_connection(
        "keep",
        url,
        "tk",
        "labels = { team = \"platform\" }",
    ));
    toml.push_str(&pat_connection(
        "change",
        url,
        "tc",
        &format!("interval = \"{change_interval}\""),
    ));
    if with_removed {
        toml.push_str(&pat_connection("remove", url, "tr", ""));
    }
    if with_added {
        toml.push_str(&pat_connection("add", url, "ta", ""));
    }
    toml
}

#[tokio::test]
async fn reload_restarts_only_what_changed_and_a_broken_one_keeps_the_old_configuration() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        pat_site(&[("k", "tk"), ("c", "tc"), ("r", "tr"), ("a", "ta")]),
    );
    let url = simulator.url("dc");
    let harness = Harness::start(&reload_config(&url, "1s", true, false), true).await;
    eventually(
        Duration::from_secs(5),
        "every connection probed twice",
        || async {
            let metrics = harness.metrics().await;
            ["keep", "change", "remove"].iter().all(|c| {
                sample(
                    &metrics,
                    &format!("credwatch_probes_total{{connection=\"{c}\"}}"),
                )
                .is_some_and(|n| n >= 2.0)
            })
        },
    )
    .await;
    assert_eq!(harness.daemon.live_tasks(), 3);
    let before = harness.metrics().await;
    let keep_probes = sample(&before, "credwatch_probes_total{connection=\"keep\"}").expect("keep");

    let config = harness.dir.path().join("credwatch.toml");
    std::fs::write(&config, reload_config(&url, "2s", false, true)).expect("write");
    let summary = harness.daemon.reload().await.expect("reload succeeds");
    assert_eq!(summary.added, ["add"]);
    assert_eq!(summary.changed, ["change"]);
    assert_eq!(summary.removed, ["remove"]);
    assert_eq!(summary.unchanged, 1);
    assert_eq!(harness.daemon.live_tasks(), 3);

    let after = harness.metrics().await;
    assert!(
        !after.contains("connection=\"remove\""),
        "the removed connection's series are gone"
    );
    assert!(after.contains("credwatch_connection_info{connection=\"add\""));
    let keep_after = sample(&after, "credwatch_probes_total{connection=\"keep\"}").expect("keep");
    assert!(
        keep_after >= keep_probes,
        "the unchanged connection kept its counters: {keep_after} < {keep_probes}"
    );
    assert_eq!(
        sample(&after, "credwatch_probes_total{connection=\"change\"}"),
        Some(0.0),
        "restarted fresh"
    );
    assert_eq!(sample(&after, "credwatch_connections"), Some(3.0));
    assert_eq!(
        sample(&after, "credwatch_config_last_reload_successful"),
        Some(1.0)
    );

    // A broken configuration: nothing changes, the error is reported, the gauge drops to 0.
    std::fs::write(
        &config,
        "[[connection]]\nname = \"keep\"\nurl = \"ftp://x\"\ntoken = \"tk\"\n",
    )
    .expect("write");
    let error = harness.daemon.reload().await.expect_err("reload fails");
    let credwatch::daemon::ReloadError::Config(errors) = &error else {
        panic!("not a configuration error: {error}");
    };
    assert_eq!(errors.0.len(), 1, "{error}");
    assert_eq!(errors.0[0].key.as_deref(), Some("url"));
    assert!(
        error
            .to_string()
            .contains("credwatch.toml:3: connection \"keep\": url:"),
        "{error}"
    );
    let response = harness
        .client
        .post(harness.url("/-/reload"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 500);
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("the running configuration stays"));
    let broken = harness.metrics().await;
    assert_eq!(
        sample(&broken, "credwatch_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(sample(&broken, "credwatch_connections"), Some(3.0));
    assert!(broken.contains("connection=\"add\""));
    let keep_still = sample(&broken, "credwatch_probes_total{connection=\"keep\"}").expect("keep");
    assert!(keep_still >= keep_after);

    std::fs::write(&config, reload_config(&url, "2s", false, true)).expect("write");
    let response = harness
        .client
        .post(harness.url("/-/reload"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("0 added, 0 changed, 0 removed, 3 unchanged"));
    assert_eq!(
        sample(
            &harness.metrics().await,
            "credwatch_config_last_reload_successful"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn readyz_waits_for_every_first_probe_and_the_lifecycle_api_is_opt_in() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("dc", pat_site(&[("a", "ta"), ("b", "tb")]));
    simulator.add_site("hang", Site::server().with_front(Front::Hang));
    let url = simulator.url("dc");
    let toml = String::from("[defaults]\ninterval = \"2s\"\ntimeout = \"500ms\"\n\n")
        + &pat_connection("ready-a", &url, "ta", "")
        + &pat_connection("ready-b", &url, "tb", "")
        + &pat_connection("hanging", &simulator.url("hang"), "t", "");
    let harness = Harness::start(&toml, false).await;
    let (status, body) = harness.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let pending: Value = serde_json::from_str(&body).expect("JSON");
    assert!(
        !pending["pending"].as_array().expect("list").is_empty(),
        "{body}"
    );
    eventually(
        Duration::from_secs(4),
        "ready once every first probe finished or passed its deadline",
        || async { harness.get("/readyz").await.0 == 200 },
    )
    .await;
    assert_eq!(harness.connection("hanging").await["reason"], "timeout");
    assert_eq!(harness.get("/healthz").await.0, 200);
    let response = harness
        .client
        .post(harness.url("/-/reload"))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        response.status().as_u16(),
        403,
        "POST /-/reload is off unless enabled"
    );
}

#[tokio::test]
async fn metrics_are_named_and_valued_as_documented() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("dc", pat_site(&[("svc-ok", "good")]));
    let url = simulator.url("dc");
    let toml = String::from("[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n")
        + &pat_connection("ok", &url, "good", "labels = { team = \"platform\" }")
        + &pat_connection("bad", &url, "revoked", "");
    let harness = Harness::start(&toml, false).await;
    eventually(Duration::from_secs(4), "both probed", || async {
        let metrics = harness.metrics().await;
        sample(&metrics, "credwatch_probes_total{connection=\"ok\"}").is_some_and(|n| n >= 1.0)
            && sample(&metrics, "credwatch_probes_total{connection=\"bad\"}")
                .is_some_and(|n| n >= 1.0)
    })
    .await;
    let response = harness
        .client
        .get(harness.url("/metrics"))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        response.headers()["content-type"].to_str().expect("ascii"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let metrics = response.text().await.expect("body");

    for state in [
        "valid",
        "invalid",
        "expired",
        "locked",
        "forbidden",
        "unknown",
    ] {
        let expected = if state == "valid" { 1.0 } else { 0.0 };
        let series = format!("credwatch_credential_state{{connection=\"ok\",state=\"{state}\"}}");
        assert_eq!(sample(&metrics, &series), Some(expected), "{series}");
    }
    assert_eq!(
        sample(
            &metrics,
            "credwatch_credential_state{connection=\"bad\",state=\"invalid\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "credwatch_probe_success{connection=\"ok\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "credwatch_probe_reason{connection=\"ok\",reason=\"ok\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "credwatch_probe_reason{connection=\"bad\",reason=\"unauthorized\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "credwatch_probe_interval_seconds{connection=\"ok\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "credwatch_probe_success{connection=\"bad\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "credwatch_probe_http_status_code{connection=\"ok\"}"
        ),
        Some(200.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "credwatch_probe_http_status_code{connection=\"bad\"}"
        ),
        Some(401.0)
    );
    assert!(sample(
        &metrics,
        "credwatch_probe_duration_seconds{connection=\"ok\"}"
    )
    .is_some_and(|d| d > 0.0 && d < 1.0));
    assert!(sample(
        &metrics,
        "credwatch_probe_failures_total{connection=\"bad\",reason=\"unauthorized\"}"
    )
    .is_some_and(|n| n >= 1.0));
    assert!(
        !metrics.contains("credwatch_probe_failures_total{connection=\"ok\""),
        "no failures, no series"
    );
    assert_eq!(
        sample(&metrics, "credwatch_rate_limited_total{connection=\"ok\"}"),
        Some(0.0)
    );
    assert!(sample(
        &metrics,
        "credwatch_rate_limit_remaining{connection=\"ok\"}"
    )
    .is_some_and(|r| r < 500.0));
    assert_eq!(
        sample(
            &metrics,
            "credwatch_rate_limit_remaining{connection=\"bad\"}"
        ),
        None,
        "Jira sent none with the 401"
    );
    let now = Utc::now().timestamp() as f64;
    let last = sample(
        &metrics,
        "credwatch_last_probe_timestamp_seconds{connection=\"ok\"}",
    )
    .expect("last probe");
    assert!((now - last).abs() < 5.0);
    assert!(sample(
        &metrics,
        "credwatch_last_success_timestamp_seconds{connection=\"ok\"}"
    )
    .is_some());
    assert_eq!(
        sample(
            &metrics,
            "credwatch_last_success_timestamp_seconds{connection=\"bad\"}"
        ),
        None,
        "never a placeholder"
    );
    let next = sample(
        &metrics,
        "credwatch_next_probe_timestamp_seconds{connection=\"ok\"}",
    )
    .expect("next probe");
    assert!(next >= last && next < now + 5.0);
    let info = format!(
        "credwatch_connection_info{{connection=\"ok\",url=\"{url}\",kind=\"server\",auth=\"pat\",account=\"svc-ok\",team=\"platform\"}}"
    );
    assert_eq!(sample(&metrics, &info), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, "credwatch_connections"), Some(2.0));
    assert_eq!(
        sample(&metrics, "credwatch_config_last_reload_successful"),
        Some(1.0)
    );
    assert!(sample(
        &metrics,
        "credwatch_config_last_reload_success_timestamp_seconds"
    )
    .is_some());
    let build = format!(
        "credwatch_build_info{{version=\"{}\",revision=\"{}\",rustc=\"{}\"}}",
        env!("CARGO_PKG_VERSION"),
        credwatch::build::REVISION,
        credwatch::build::RUSTC
    );
    assert_eq!(sample(&metrics, &build), Some(1.0));
    assert!(sample(&metrics, "process_resident_memory_bytes").is_some_and(|b| b > 0.0));

    for family in [
        "credwatch_credential_state gauge",
        "credwatch_probe_success gauge",
        "credwatch_probe_reason gauge",
        "credwatch_probe_interval_seconds gauge",
        "credwatch_probe_duration_seconds gauge",
        "credwatch_probe_http_status_code gauge",
        "credwatch_probes_total counter",
        "credwatch_probe_failures_total counter",
        "credwatch_rate_limited_total counter",
        "credwatch_rate_limit_remaining gauge",
        "credwatch_last_probe_timestamp_seconds gauge",
        "credwatch_last_success_timestamp_seconds gauge",
        "credwatch_next_probe_timestamp_seconds gauge",
        "credwatch_connection_info gauge",
        "credwatch_connections gauge",
        "credwatch_config_last_reload_successful gauge",
        "credwatch_config_last_reload_success_timestamp_seconds gauge",
        "credwatch_build_info gauge",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family}\n")),
            "missing {family}"
        );
    }
    let help = metrics
        .lines()
        .find(|l| l.starts_with("# HELP credwatch_probe_success "))
        .expect("help");
    assert!(
        help.contains("from background probes, not from the scrape"),
        "{help}"
    );
    assert!(
        !metrics.contains("good") && !metrics.contains("revoked"),
        "no secret in the metrics"
    );
}

#[tokio::test]
async fn shutdown_cancels_a_hanging_probe_within_the_grace() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("hang", Site::server().with_front(Front::Hang));
    let name = early_name("hung", Duration::from_secs(60));
    let toml = pat_connection(
        &name,
        &simulator.url("hang"),
        "t",
        "interval = \"1m\"\ntimeout = \"50s\"",
    );
    let harness = Harness::start(&toml, false).await;
    eventually(Duration::from_secs(3), "the probe in flight", || async {
        simulator.max_in_flight("hang") == 1
    })
    .await;
    let started = Instant::now();
    harness.daemon.shutdown(Duration::from_secs(1)).await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
    // The probe was cancelled: the simulator saw the client leave.
    eventually(Duration::from_secs(2), "the connection closed", || async {
        probes(&simulator, "hang").len() == 1
    })
    .await;
}

#[tokio::test]
async fn the_binary_exits_zero_on_sigterm_with_a_probe_hanging() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("hang", Site::server().with_front(Front::Hang));
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = pat_connection(
        "hung",
        &simulator.url("hang"),
        "t",
        "interval = \"2s\"\ntimeout = \"1500ms\"",
    );
    let path = common::write(dir.path(), "credwatch.toml", &toml);
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_credwatch"));
    let _state = common::isolate_state(&mut command);
    let mut child = command
        .args([
            "run",
            "--config",
            path.to_str().expect("path"),
            "--listen",
            "127.0.0.1:0",
            "--shutdown-grace",
            "2s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    eventually(Duration::from_secs(10), "the probe in flight", || async {
        probes(&simulator, "hang").len() == 1
    })
    .await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no exit within the 2 s grace"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(code, Some(0));
}

/// `credwatch run` as systemd starts it: with `NOTIFY_SOCKET` and the `extra` variables.
struct UnderSystemd {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    _state: tempfile::TempDir,
}

impl std::ops::Deref for UnderSystemd {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.child
    }
}

impl std::ops::DerefMut for UnderSystemd {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.child
    }
}

/// Starts [`UnderSystemd`] against a simulator with one valid PAT; returns the simulator, the
/// socket the notifications arrive on (10 s read timeout) and the child.
async fn under_systemd(
    extra: &[(&str, &str)],
) -> (Simulator, std::os::unix::net::UnixDatagram, UnderSystemd) {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("dc", pat_site(&[("svc", "t")]));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::write(
        dir.path(),
        "credwatch.toml",
        &pat_connection("c", &simulator.url("dc"), "t", "interval = \"1m\""),
    );
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_credwatch"));
    let _state = common::isolate_state(&mut command);
    let child = command
        .args([
            "run",
            "--config",
            path.to_str().expect("path"),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("NOTIFY_SOCKET", &socket_path)
        .envs(extra.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let child = UnderSystemd {
        child,
        _dir: dir,
        _state,
    };
    (simulator, socket, child)
}

#[tokio::test]
async fn the_binary_tells_systemd_when_it_is_ready_reloading_and_stopping() {
    let (_simulator, socket, mut child) = under_systemd(&[]).await;
    let receive = |socket: &std::os::unix::net::UnixDatagram| {
        let mut buffer = [0u8; 256];
        let n = socket
            .recv(&mut buffer)
            .expect("a notification within 10 s");
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    };
    let signal = |name: &str| {
        std::process::Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .expect("kill");
    };
    assert!(receive(&socket).starts_with("READY=1"));
    signal("HUP");
    assert_eq!(receive(&socket), "RELOADING=1");
    assert_eq!(receive(&socket), "READY=1");
    signal("TERM");
    assert_eq!(receive(&socket), "STOPPING=1");
    assert_eq!(child.wait().expect("exit").code(), Some(0));
}

#[tokio::test]
async fn shards_split_the_fleet_between_them_and_export_only_their_own() {
    use credwatch::shard::Shard;
    let simulator = Simulator::start().await.expect("simulator");
    let tokens: Vec<(String, String)> = (0..20)
        .map(|i| (format!("svc{i}"), format!("t{i}")))
        .collect();
    let pairs: Vec<(&str, &str)> = tokens
        .iter()
        .map(|(u, t)| (u.as_str(), t.as_str()))
        .collect();
    simulator.add_site("dc", pat_site(&pairs));
    let mut toml = String::from("[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n");
    for (i, (_, token)) in tokens.iter().enumerate() {
        toml.push_str(&pat_connection(
            &format!("conn-{i}"),
            &simulator.url("dc"),
            token,
            "",
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::write(dir.path(), "credwatch.toml", &toml);
    let mut owned = Vec::new();
    for index in 0..2 {
        let config = Config::load(&path).expect("config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let options = Options {
            grace: Duration::from_secs(1),
            shard: Some(Shard { index, count: 2 }),
            ..Options::new(path.clone())
        };
        let daemon = Daemon::start(config, listener, options, Prober::new().expect("prober"))
            .expect("daemon");
        let url = format!("http://{}/api/v1/connections", daemon.addr());
        let body = common::get_text(&url).await;
        let names: std::collections::BTreeSet<String> = serde_json::from_str::<Vec<Value>>(&body)
            .expect("JSON")
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect();
        let metrics = common::http_client()
            .get(format!("http://{}/metrics", daemon.addr()))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body");
        for i in 0..20 {
            let name = format!("conn-{i}");
            let exported = metrics.contains(&format!(
                "credwatch_connection_info{{connection=\"{name}\","
            ));
            assert_eq!(exported, names.contains(&name), "{name} on shard {index}");
        }
        owned.push(names);
        daemon.shutdown(Duration::from_secs(1)).await;
    }
    assert!(
        owned[0].is_disjoint(&owned[1]),
        "no connection on two shards"
    );
    assert_eq!(
        owned[0].len() + owned[1].len(),
        20,
        "every connection on a shard"
    );
    assert!(!owned[0].is_empty() && !owned[1].is_empty());

    // The binary takes the shard from the environment, a StatefulSet pod name included.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_credwatch"));
    let _state = common::isolate_state(&mut command);
    let output = command
        .args([
            "run",
            "--config",
            path.to_str().expect("path"),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("CREDWATCH_SHARD", "credwatch-5/2")
        .output()
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(2),
        "an index beyond the count is a usage error"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("the index must be from 0 to count - 1")
    );
}

#[tokio::test]
async fn the_binary_pings_systemds_watchdog_while_its_runtime_runs() {
    // WatchdogSec=400ms: a ping every 200 ms.
    let (_simulator, socket, mut child) = under_systemd(&[("WATCHDOG_USEC", "400000")]).await;
    let started = Instant::now();
    let mut pings = 0;
    while pings < 5 {
        let mut buffer = [0u8; 256];
        let n = socket.recv(&mut buffer).expect("a notification");
        if &buffer[..n] == b"WATCHDOG=1" {
            pings += 1;
        }
    }
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        elapsed < Duration::from_secs(5),
        "5 pings took {elapsed:?} (one every 200 ms expected)"
    );
}
