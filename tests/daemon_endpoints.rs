//! The daemon's reload, readiness and metrics against the simulator, in process: reload
//! restarts only what changed and keeps the old configuration when the new one is broken;
//! `/readyz` waits for first probes; every metric is named and valued as documented.

mod common;

use common::eventually;
use common::harness::{pat_connection, pat_site, Harness};
use common::sample;

use std::time::Duration;

use chrono::Utc;
use credwatch::sim::{Front, Simulator, Site};
use serde_json::Value;

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
        "credwatch_connection_info{{connection=\"ok\",url=\"{url}\",atlassian_product=\"jira\",kind=\"server\",auth=\"pat\",account=\"svc-ok\",team=\"platform\"}}"
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
