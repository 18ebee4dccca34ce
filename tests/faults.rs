//! Every fault a Jira site, a network or a middlebox can produce, against the daemon: the
//! right reason, no crash, bounded memory; and isolation: with half of 200 connections hanging,
//! the healthy half keeps its schedule and `/metrics` keeps answering.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use credwatch::daemon::Daemon;
use credwatch::sim::fault::{Fault, FaultServer, HUGE_BODY};
use credwatch::sim::{Front, Pat, Simulator, Site, User};
use credwatch::start_offset;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture")
}

async fn start_daemon(dir: &Path, toml: &str) -> Daemon {
    let path = dir.join("credwatch.toml");
    std::fs::write(&path, toml).expect("write");
    common::start_daemon(&path, false).await
}

async fn get(daemon: &Daemon, path: &str) -> (u16, String) {
    let url = format!("http://{}{path}", daemon.addr());
    let response = common::within(
        Duration::from_secs(5),
        common::http_client().get(url).send(),
    )
    .await
    .expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

async fn connections(daemon: &Daemon) -> Vec<Value> {
    serde_json::from_str(&get(daemon, "/api/v1/connections").await.1).expect("JSON")
}

fn connection(name: &str, url: &str, extra: &str) -> String {
    format!("[[connection]]\nname = \"{name}\"\nurl = \"{url}\"\ntoken = \"tok\"\n{extra}\n\n")
}

#[tokio::test]
async fn every_fault_yields_its_reason_and_the_daemon_keeps_serving() {
    let mut servers = Vec::new();
    let mut toml = String::from("[defaults]\ninterval = \"3s\"\ntimeout = \"1s\"\n\n");
    // (connection, expected reason, a word the detail must hold)
    let mut expected: Vec<(&str, &str, &str)> = Vec::new();
    for (name, fault, scheme, reason, word) in [
        (
            "silent",
            Fault::Silent,
            "http",
            "timeout",
            "no complete answer",
        ),
        (
            "trickle",
            Fault::Trickle,
            "http",
            "timeout",
            "no complete answer",
        ),
        (
            "reset",
            Fault::ResetMidResponse,
            "http",
            "unexpected_response",
            "broke off",
        ),
        (
            "not-http",
            Fault::NotHttp,
            "http",
            "unexpected_response",
            "invalid HTTP",
        ),
        (
            "huge-body",
            Fault::HugeBody,
            "http",
            "unexpected_response",
            "broke off",
        ),
        (
            "invalid-utf8",
            Fault::InvalidUtf8,
            "http",
            "unexpected_response",
            "not a user object",
        ),
        (
            "tls-alert",
            Fault::TlsAlert,
            "https",
            "tls_error",
            "HandshakeFailure",
        ),
    ] {
        let server = FaultServer::start(fault).await.expect("fault server");
        toml.push_str(&connection(name, &server.url(scheme), ""));
        expected.push((name, reason, word));
        servers.push((name, server));
    }
    let mut tls_sims = Vec::new();
    for (name, cert, ca, word) in [
        (
            "expired-cert",
            "faults/expired",
            true,
            "certificate expired",
        ),
        (
            "wrong-host",
            "faults/wrong-host",
            true,
            "not valid for name",
        ),
        ("self-signed", "faults/self-signed", false, "unknownissuer"),
    ] {
        let simulator =
            Simulator::start_tls(&read(&format!("{cert}.pem")), &read(&format!("{cert}.key")))
                .await
                .expect("TLS simulator");
        simulator.add_site(
            "jira",
            Site::server().with_user(User::new("svc").with_pat(Pat::new(1, "x", "tok", None))),
        );
        let extra = if ca {
            format!("ca_file = \"{}\"", fixture("faults/fault-ca.pem").display())
        } else {
            String::new()
        };
        toml.push_str(&connection(name, &simulator.url("jira"), &extra));
        expected.push((name, "tls_error", word));
        tls_sims.push(simulator);
    }
    let simulator = Simulator::start().await.expect("simulator");
    let looping = format!("{}/rest/api/2/myself", simulator.url("loop"));
    simulator.add_site("loop", Site::server().with_front(Front::Redirect(looping)));
    simulator.add_site("login", Site::server().with_front(Front::LoginPage));
    toml.push_str(&connection("redirect-loop", &simulator.url("loop"), ""));
    toml.push_str(&connection("login-page", &simulator.url("login"), ""));
    expected.push(("redirect-loop", "redirected", "Location:"));
    expected.push(("login-page", "unexpected_response", "not a user object"));

    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(dir.path(), &toml).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let by_name = loop {
        let all = connections(&daemon).await;
        let probed: BTreeMap<String, Value> = all
            .into_iter()
            .filter(|c| !c["reason"].is_null())
            .map(|c| (c["name"].as_str().expect("name").to_owned(), c))
            .collect();
        if probed.len() == expected.len() {
            break probed;
        }
        assert!(
            Instant::now() < deadline,
            "not every fault was probed: {:?}",
            probed.keys()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (name, reason, word) in &expected {
        let view = &by_name[*name];
        assert_eq!(view["state"], "unknown", "{name}: {view}");
        assert_eq!(view["reason"], *reason, "{name}: {view}");
        let detail = view["detail"].as_str().unwrap_or_default();
        assert!(
            detail.to_lowercase().contains(&word.to_lowercase()),
            "{name}: detail {detail:?} lacks {word:?}"
        );
        assert!(view["hint"].as_str().is_some(), "{name} has a hint");
    }

    // Bounded memory: the probe stopped reading at the body cap, so the server could write
    // only the cap plus what socket buffers hold, not 500 MiB.
    let huge = servers
        .iter()
        .find(|(n, _)| *n == "huge-body")
        .map(|(_, s)| s)
        .expect("server");
    assert!(
        huge.bytes_written() < 32 * 1024 * 1024,
        "{} bytes of {HUGE_BODY} were read",
        huge.bytes_written()
    );
    // No crash: the daemon still serves.
    assert_eq!(get(&daemon, "/healthz").await.0, 200);
    let (status, metrics) = get(&daemon, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains(
        "credwatch_probe_failures_total{connection=\"tls-alert\",reason=\"tls_error\"} 1"
    ));
    daemon.shutdown(Duration::from_secs(1)).await;
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[rank]
}

#[tokio::test]
async fn half_the_fleet_hanging_does_not_delay_the_healthy_half() {
    let hanging = FaultServer::start(Fault::Silent)
        .await
        .expect("fault server");
    let healthy = Simulator::start().await.expect("simulator");
    let mut site = Site::server();
    site.bucket = None;
    let mut toml = String::from("[defaults]\ninterval = \"2s\"\ntimeout = \"1500ms\"\n\n");
    for i in 0..100 {
        site = site.with_user(User::new(&format!("svc{i}")).with_pat(Pat::new(
            i,
            "x",
            &format!("tok{i}"),
            Some(90),
        )));
        toml.push_str(&format!(
            "[[connection]]\nname = \"healthy-{i}\"\nurl = \"{}\"\ntoken = \"tok{i}\"\ntoken_list_interval = \"1h\"\n\n",
            healthy.url("jira")
        ));
        toml.push_str(&connection(
            &format!("hanging-{i}"),
            &hanging.url("http"),
            "",
        ));
    }
    healthy.add_site("jira", site);
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Utc::now();
    let daemon = start_daemon(dir.path(), &toml).await;

    // Scrape while the hanging half piles up; every scrape must answer promptly.
    let mut scrapes = Vec::new();
    let run_until = Instant::now() + Duration::from_secs(9);
    while Instant::now() < run_until {
        let began = Instant::now();
        let (status, _) = get(&daemon, "/metrics").await;
        assert_eq!(status, 200);
        scrapes.push(began.elapsed().as_secs_f64());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    daemon.shutdown(Duration::from_secs(1)).await;

    let interval = Duration::from_secs(2);
    let mut lateness = Vec::new();
    let mut per_connection: BTreeMap<String, Vec<chrono::DateTime<Utc>>> = BTreeMap::new();
    for request in healthy
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/myself"))
    {
        let token = request
            .authorization
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches("Bearer tok");
        per_connection
            .entry(format!("healthy-{token}"))
            .or_default()
            .push(request.at);
    }
    assert_eq!(
        per_connection.len(),
        100,
        "every healthy connection was probed"
    );
    for (name, times) in &per_connection {
        assert!(
            times.len() >= 3,
            "{name}: only {} probes in 9 s at a 2 s interval",
            times.len()
        );
        let first_due =
            started + chrono::Duration::from_std(start_offset(name, interval)).expect("offset");
        for (k, at) in times.iter().enumerate() {
            let due = first_due + chrono::Duration::from_std(interval * k as u32).expect("k");
            lateness.push((*at - due).num_milliseconds() as f64 / 1000.0);
        }
    }
    let p50 = percentile(&mut lateness.clone(), 0.50);
    let p99 = percentile(&mut lateness, 0.99);
    let scrape_max = scrapes.iter().cloned().fold(0.0, f64::max);
    println!("healthy probe lateness: p50 {p50:.3} s, p99 {p99:.3} s; /metrics max {scrape_max:.3} s over {} scrapes; hanging connections accepted: {}", scrapes.len(), hanging.connections());
    assert!(p99 < 1.0, "p99 lateness {p99:.3} s");
    assert!(scrape_max < 1.0, "a scrape took {scrape_max:.3} s");
    assert!(
        hanging.connections() >= 8,
        "the hanging half was probed too"
    );
}
