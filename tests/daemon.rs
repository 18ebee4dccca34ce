//! The daemon against the simulator: schedules, politeness, stops and secret rotation.
//!
//! The schedule tests (first-probe offsets, `Retry-After`, the Basic login budget) run on
//! tokio's paused clock, with the intervals users set (minutes, an hour): the runtime moves
//! its clock on whenever every task waits, the simulator stamps each request with that clock,
//! and hours pass in milliseconds. The others wait on real time, a second or two at most,
//! and poll a condition under a deadline. Reload, readiness and metrics are in
//! `daemon_endpoints.rs`; shutdown, systemd and shards in `daemon_process.rs`.

mod common;

use common::harness::{pat_connection, pat_site, probes, Harness};
use common::sample;
use common::{early_name, eventually};

use std::time::Duration;

use credwatch::sim::{Front, Pat, Simulator, Site, User, ALL_SITES};
use credwatch::start_offset;
use serde_json::Value;

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
async fn basic_auth_makes_at_most_two_failed_logins_then_waits_for_resume() {
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

    // A person fixes the password file. Jira's count did not start over, and a second typo
    // would lock the account: the new password waits for `resume` (the secret poll, 5 s, has
    // passed many times over on this clock).
    common::write(harness.dir.path(), "password", "right-password\n");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(probes(&simulator, "dc").len(), 2, "no login before resume");
    assert_eq!(harness.connection("basic").await["paused"], "failed_logins");
    // The person reset the count (or will have the right password): resume probes at once.
    let fixed_at = tokio::time::Instant::now();
    assert_eq!(
        harness.daemon.resume("basic").await.expect("resume"),
        ["basic"]
    );
    while harness.connection("basic").await["state"] != "valid" {
        assert!(
            fixed_at.elapsed() < Duration::from_secs(10), // secret files are polled every 5 s
            "no probe after resume"
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
