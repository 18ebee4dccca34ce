//! The daemon as a process: shutdown within the grace with a probe hanging, SIGTERM, systemd's
//! notifications and watchdog, and shards that split the fleet between them.

mod common;

use common::harness::{pat_connection, pat_site, probes, Harness};
use common::{early_name, eventually};

use std::time::{Duration, Instant};

use credwatch::config::Config;
use credwatch::daemon::{Daemon, Options};
use credwatch::probe::Prober;
use credwatch::sim::{Front, Simulator, Site};
use serde_json::Value;

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
