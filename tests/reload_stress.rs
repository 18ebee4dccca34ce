//! 100 reloads in a row while probing, mixing SIGHUP and `POST /-/reload`, every tenth one
//! broken: no duplicate probes, no lost connection, no leaked task, and the last good
//! configuration always running.

mod common;

use common::sample;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use credwatch::sim::{Front, Pat, Simulator, Site, User};
use serde_json::Value;

const CONNECTIONS: usize = 10;

fn config(simulator: &Simulator, variant: usize) -> String {
    let mut toml = String::from("[defaults]\ntimeout = \"200ms\"\ninterval = \"300ms\"\n\n");
    for i in 0..CONNECTIONS {
        // c0's interval changes with every good reload: it restarts; the others do not.
        let interval = if i == 0 {
            format!("interval = \"{}ms\"\n", 300 + 10 * (variant % 7))
        } else {
            String::new()
        };
        toml.push_str(&format!(
            "[[connection]]\nname = \"c{i}\"\nurl = \"{}\"\ntoken = \"t{i}\"\n{interval}\n",
            simulator.url(&format!("s{i}"))
        ));
    }
    if variant.is_multiple_of(3) {
        toml.push_str(&format!(
            "[[connection]]\nname = \"extra\"\nurl = \"{}\"\ntoken = \"t10\"\n",
            simulator.url("s10")
        ));
    }
    toml
}

fn expected(variant: usize) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = (0..CONNECTIONS).map(|i| format!("c{i}")).collect();
    if variant.is_multiple_of(3) {
        names.insert("extra".into());
    }
    names
}

#[tokio::test]
async fn a_hundred_reloads_lose_nothing_duplicate_nothing_and_leak_nothing() {
    let simulator = Simulator::start().await.expect("simulator");
    for i in 0..=CONNECTIONS {
        simulator.add_site(
            &format!("s{i}"),
            Site::server()
                .with_user(User::new(&format!("svc{i}")).with_pat(Pat::new(
                    1,
                    "x",
                    &format!("t{i}"),
                    Some(90),
                )))
                // Slow enough that a second probe of the same connection would overlap.
                .with_front(Front::Slow(Duration::from_millis(80))),
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("credwatch.toml");
    std::fs::write(&path, config(&simulator, 1)).expect("write");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_credwatch"));
    let _state = common::isolate_state(&mut command);
    let mut child = command
        .args([
            "run",
            "--config",
            path.to_str().expect("path"),
            "--enable-lifecycle",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let base = format!("http://127.0.0.1:{port}");
    let client = common::http_client();
    let get = |path: &'static str| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move {
            let response = tokio::time::timeout(Duration::from_secs(5), client.get(url).send())
                .await
                .ok()?
                .ok()?;
            response.text().await.ok()
        }
    };
    let names = |api: &str| -> BTreeSet<String> {
        let all: Vec<Value> = serde_json::from_str(api).unwrap_or_default();
        all.iter()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while get("/api/v1/connections").await.map(|a| names(&a)) != Some(expected(1)) {
        assert!(Instant::now() < deadline, "the daemon did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tasks_before = sample(
        &get("/metrics").await.expect("metrics"),
        "credwatch_runtime_alive_tasks",
    )
    .expect("tasks");

    let mut good = 1;
    for round in 0..100 {
        let broken = round % 10 == 9;
        let variant = round + 2;
        if broken {
            std::fs::write(
                &path,
                "[[connection]]\nname = \"c0\"\nurl = \"ftp://nowhere\"\n",
            )
            .expect("write");
        } else {
            std::fs::write(&path, config(&simulator, variant)).expect("write");
        }
        if round % 2 == 0 {
            let pid = child.id().to_string();
            assert!(Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .expect("kill")
                .success());
        } else {
            let response = client
                .post(format!("{base}/-/reload"))
                .send()
                .await
                .expect("POST");
            assert_eq!(
                response.status().as_u16(),
                if broken { 500 } else { 200 },
                "round {round}"
            );
        }
        if !broken {
            good = variant;
        }
        // Wait until the reload shows, then check that the last good configuration runs.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let metrics = get("/metrics").await.unwrap_or_default();
            let api = get("/api/v1/connections").await.unwrap_or_default();
            let successful = sample(&metrics, "credwatch_config_last_reload_successful");
            let interval = sample(
                &metrics,
                "credwatch_probe_interval_seconds{connection=\"c0\"}",
            );
            let want_interval = (300 + 10 * (good % 7)) as f64 / 1000.0;
            if successful == Some(if broken { 0.0 } else { 1.0 })
                && names(&api) == expected(good)
                && interval.is_some_and(|i| (i - want_interval).abs() < 1e-9)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: the reload did not show: {successful:?} {:?}",
                names(&api)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // Still probing everything of the last good configuration, and no task was leaked.
    let before: Value =
        serde_json::from_str(&get("/api/v1/connections").await.expect("api")).expect("JSON");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after: Value =
        serde_json::from_str(&get("/api/v1/connections").await.expect("api")).expect("JSON");
    for name in expected(good) {
        let count = |v: &Value| {
            v.as_array()
                .and_then(|a| a.iter().find(|c| c["name"] == name.as_str()))
                .and_then(|c| c["probes_total"].as_u64())
                .unwrap_or(0)
        };
        assert!(count(&after) > count(&before), "{name} is no longer probed");
    }
    let tasks_after = sample(
        &get("/metrics").await.expect("metrics"),
        "credwatch_runtime_alive_tasks",
    )
    .expect("tasks");
    let connections_now = expected(good).len() as f64;
    let connections_then = expected(1).len() as f64;
    assert!(
        tasks_after - connections_now <= tasks_before - connections_then + 3.0,
        "tasks: {tasks_before} with {connections_then} connections, {tasks_after} with {connections_now}"
    );
    // "extra" comes and goes faster than its first probe: its site may see none at all.
    for i in 0..=CONNECTIONS {
        let most = simulator.max_in_flight(&format!("s{i}"));
        assert!(
            most <= 1,
            "two probes of one connection overlapped (s{i}: {most})"
        );
    }
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert_eq!(child.wait().expect("exit").code(), Some(0));
}
