//! End to end with Debian's real Prometheus and Alertmanager (which `.ci/run` installs) and a
//! webhook receiver inside the test: two credwatch replicas over the simulator, labelled as
//! the Prometheus Operator labels them, each restarted with its own state (SIGTERM and
//! `kill -9`) and reloaded. Every rejected connection gets exactly one notification, and none
//! resolves and fires again across the restarts; the broken Basic connection spends at most
//! 2 failed logins per replica (4 for the pair), counted at the simulator. And an HA pair
//! (`--replica`) with the shipped Alertmanager example and rules generated from the mixin with
//! short durations: with one replica stopped for good, the surviving replica's probe alert is
//! delivered (a dead replica does not mute it) and one notification says a replica is missing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credwatch::sim::{Pat, Simulator, Site, User};
use serde_json::Value;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A child process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[String]) -> Process {
    assert!(
        Path::new(program).exists(),
        "{program} is missing: install Debian's prometheus and prometheus-alertmanager (bash .ci/run does)"
    );
    Process(
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts"),
    )
}

/// One credwatch replica: its port and state directory stay the same across restarts.
struct Replica {
    port: u16,
    state: PathBuf,
    config: PathBuf,
    /// More arguments (`--replica 0/2`).
    args: Vec<String>,
    process: Option<Process>,
}

impl Replica {
    fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_credwatch"))
            .args(["run", "--config"])
            .arg(&self.config)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--state-dir")
            .arg(&self.state)
            .args(&self.args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("credwatch starts");
        self.process = Some(Process(child));
    }

    fn signal(&self, signal: &str) {
        let pid = self.process.as_ref().expect("running").0.id();
        Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill");
    }

    fn stop(&mut self, signal: &str) {
        self.signal(signal);
        let mut process = self.process.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(10);
        while process.0.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "credwatch did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// What the webhook received: one entry per notification.
type Received = Arc<Mutex<Vec<Value>>>;

async fn webhook() -> (u16, Received) {
    let received: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                if let Ok(value) = serde_json::from_str::<Value>(&body) {
                    sink.lock().expect("lock").push(value);
                }
                "ok"
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, received)
}

/// (status, alertname, connection) of every alert of every notification, in order.
fn notifications(received: &Received) -> Vec<(String, String, String)> {
    let received = received.lock().expect("lock");
    let mut out = Vec::new();
    for notification in received.iter() {
        for alert in notification["alerts"].as_array().into_iter().flatten() {
            let label = |k: &str| alert["labels"][k].as_str().unwrap_or_default().to_owned();
            out.push((
                alert["status"].as_str().unwrap_or_default().to_owned(),
                label("alertname"),
                label("connection"),
            ));
        }
    }
    out
}

/// Alertmanager on a free loopback port with `config`, no cluster; returns it and its port.
fn start_alertmanager(root: &Path, config: &str) -> (Process, u16) {
    let port = common::free_port();
    std::fs::write(root.join("alertmanager.yml"), config).expect("write");
    let process = spawn(
        ALERTMANAGER,
        &[
            format!("--config.file={}", root.join("alertmanager.yml").display()),
            format!("--storage.path={}", root.join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            // No cluster: nothing listens beyond loopback.
            "--cluster.listen-address=".to_owned(),
            "--log.level=warn".to_owned(),
        ],
    );
    (process, port)
}

/// Prometheus scraping `replicas` every second as one job, with the labels the Prometheus
/// Operator puts on a pod's scrape, evaluating `rules` and alerting to Alertmanager.
fn start_prometheus(root: &Path, rules: &Path, replicas: &[Replica], am_port: u16) -> Process {
    let targets: String = replicas
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "      - targets: ['127.0.0.1:{}']\n        labels: {{namespace: e2e, service: credwatch, endpoint: http-metrics, container: credwatch, pod: credwatch-{i}}}\n",
                r.port
            )
        })
        .collect();
    let port = common::free_port();
    std::fs::write(
        root.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: credwatch\n    static_configs:\n{targets}",
            rules.display()
        ),
    )
    .expect("write");
    spawn(
        PROMETHEUS,
        &[
            format!("--config.file={}", root.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", root.join("prom-data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.level=warn".to_owned(),
        ],
    )
}

fn config(url: &str, basic_timeout: &str) -> String {
    format!(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"900ms\"\nauth_failure_interval = \"1s\"\nbackoff_initial = \"1s\"\n\n\
         [[connection]]\nname = \"good\"\nurl = \"{url}\"\ntoken = \"tok\"\nlabels = {{ team = \"platform\" }}\n\n\
         [[connection]]\nname = \"revoked\"\nurl = \"{url}\"\ntoken = \"revoked-token\"\nlabels = {{ team = \"platform\" }}\n\n\
         [[connection]]\nname = \"legacy\"\nurl = \"{url}\"\nauth = \"basic\"\nusername = \"svc-jira\"\npassword_file = \"password\"\ntimeout = \"{basic_timeout}\"\nlabels = {{ team = \"support\" }}\n"
    )
}

#[tokio::test]
async fn two_replicas_restarted_with_their_state_notify_once_per_rejected_connection() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        Site::server()
            .with_user(User::new("svc").with_pat(Pat::new(1, "ci", "tok", Some(90))))
            .with_user(User::new("svc-jira").with_password("right")),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(root.join("password"), "wrong\n").expect("write");
    let config_path = root.join("credwatch.toml");
    std::fs::write(&config_path, config(&simulator.url("dc"), "900ms")).expect("write");

    let mut replicas: Vec<Replica> = (0..2)
        .map(|i| Replica {
            port: common::free_port(),
            state: root.join(format!("state-{i}")),
            config: config_path.clone(),
            args: Vec::new(),
            process: None,
        })
        .collect();
    for replica in &mut replicas {
        replica.start();
    }

    let (hook, received) = webhook().await;
    let alertmanager = format!(
        "route:\n  receiver: hook\n  group_by: [alertname, job, namespace, connection]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{hook}/hook\n        send_resolved: true\n"
    );
    let (_alertmanager, am_port) = start_alertmanager(root, &alertmanager);
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/credwatch-rules.yml");
    let _prometheus = start_prometheus(root, &rules, &replicas, am_port);

    let rejected = ["legacy", "revoked"];
    let firing_for = |connection: &str| {
        notifications(&received)
            .iter()
            .filter(|(status, alert, c)| {
                status == "firing" && alert == "CredwatchCredentialRejected" && c == connection
            })
            .count()
    };
    common::eventually(
        Duration::from_secs(60),
        "a notification for each rejected connection",
        || async { rejected.iter().all(|c| firing_for(c) >= 1) },
    )
    .await;

    // Five restarts, each replica in turn, SIGTERM and kill -9 alternating, and a reload.
    for round in 0..5 {
        let replica = &mut replicas[round % 2];
        let signal = if round % 2 == 0 { "-KILL" } else { "-TERM" };
        tokio::time::sleep(Duration::from_millis(500 + fastrand::u64(0..1_500))).await;
        replica.stop(signal);
        tokio::time::sleep(Duration::from_secs(2)).await;
        replica.start();
        if round == 2 {
            // A reload that changes the Basic connection's settings, not its credential.
            tokio::time::sleep(Duration::from_secs(1)).await;
            std::fs::write(&config_path, config(&simulator.url("dc"), "800ms")).expect("write");
            for replica in &replicas {
                replica.signal("-HUP");
            }
        }
    }
    // Long enough for a flap to show: group_interval is 1 s.
    tokio::time::sleep(Duration::from_secs(10)).await;

    let all = notifications(&received);
    let mut per_connection: BTreeMap<&str, Vec<&(String, String, String)>> = BTreeMap::new();
    for n in &all {
        if n.1 == "CredwatchCredentialRejected" {
            per_connection.entry(n.2.as_str()).or_default().push(n);
        }
    }
    for connection in rejected {
        let seen = per_connection.get(connection).cloned().unwrap_or_default();
        assert_eq!(
            seen.len(),
            1,
            "{connection}: exactly one notification, no resolve and fire again: {seen:?}"
        );
        assert_eq!(seen[0].0, "firing");
    }
    assert!(
        !per_connection.contains_key("good"),
        "the valid connection never alerts: {all:?}"
    );
    // Each replica spent at most 2 failed logins on the wrong password: 4 for the pair.
    let logins = simulator
        .requests_for("dc")
        .iter()
        .filter(|r| r.path.ends_with("/myself") && r.scheme() == Some("Basic"))
        .count();
    assert!(logins <= 4, "{logins} Basic logins by the pair");
    assert!(logins >= 2, "both replicas probed it");
    for replica in &mut replicas {
        replica.stop("-TERM");
    }
}

/// The shipped Alertmanager example (deploy/alertmanager/alertmanager.yml), its routes and
/// inhibitions as they are, every receiver a webhook to `hook`, and its waits shortened.
fn shipped_alertmanager(hook: u16) -> String {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/alertmanager/alertmanager.yml"),
    )
    .expect("the example");
    let (head, receivers) = shipped.split_once("\nreceivers:\n").expect("receivers");
    let head = head
        .replace("group_wait: 30s", "group_wait: 1s")
        .replace("group_interval: 5m", "group_interval: 1s");
    let mut out = format!("{head}\nreceivers:\n");
    for line in receivers
        .lines()
        .filter(|l| l.trim_start().starts_with("- name:"))
    {
        out.push_str(&format!(
            "{line}\n    webhook_configs: [{{url: 'http://127.0.0.1:{hook}/hook', send_resolved: true}}]\n"
        ));
    }
    out
}

/// The mixin's rules, generated with every `for` and `keep_firing_for` at a hundredth
/// (15m is 9 s), into `root`.
fn scaled_rules(root: &Path) -> PathBuf {
    let out = root.join("rules");
    let status = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/generate.py"))
        .arg("--out")
        .arg(&out)
        .args(["--config", "{ alertDurationScale: 0.01 }"])
        .stdout(Stdio::null())
        .status()
        .expect("python3 runs deploy/generate.py");
    assert!(status.success(), "the mixin generates");
    out.join("credwatch-rules.yml")
}

#[tokio::test]
async fn one_dead_replica_of_an_ha_pair_is_one_notification_and_mutes_no_probe_alert() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new("svc").with_pat(Pat::new(1, "ci", "tok", Some(90)))),
    );
    simulator.add_site(
        "flaky",
        Site::server().with_user(User::new("svc").with_pat(Pat::new(1, "ci", "tok", Some(90)))),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let config_path = root.join("credwatch.toml");
    std::fs::write(
        &config_path,
        format!(
            "[defaults]\ninterval = \"1s\"\ntimeout = \"900ms\"\nauth_failure_interval = \"1s\"\nbackoff_initial = \"1s\"\nbackoff_max = \"1s\"\n\n\
             [[connection]]\nname = \"revoked\"\nurl = \"{}\"\ntoken = \"revoked-token\"\nlabels = {{ team = \"platform\" }}\n\n\
             [[connection]]\nname = \"flaky\"\nurl = \"{}\"\ntoken = \"tok\"\nlabels = {{ team = \"platform\" }}\n",
            simulator.url("dc"),
            simulator.url("flaky")
        ),
    )
    .expect("write");
    let mut replicas: Vec<Replica> = (0..2)
        .map(|i| Replica {
            port: common::free_port(),
            state: root.join(format!("state-{i}")),
            config: config_path.clone(),
            args: vec!["--replica".to_owned(), format!("{i}/2")],
            process: None,
        })
        .collect();
    for replica in &mut replicas {
        replica.start();
    }
    let (hook, received) = webhook().await;
    let (_alertmanager, am_port) = start_alertmanager(root, &shipped_alertmanager(hook));
    let _prometheus = start_prometheus(root, &scaled_rules(root), &replicas, am_port);
    let count = |alertname: &str, connection: &str| {
        notifications(&received)
            .iter()
            .filter(|(status, alert, c)| {
                status == "firing" && alert == alertname && c == connection
            })
            .count()
    };

    // Both up: one notification per cause, though both replicas export the connection.
    common::eventually(
        Duration::from_secs(60),
        "the rejected token's notification",
        || async { count("CredwatchCredentialRejected", "revoked") >= 1 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count("CredwatchCredentialRejected", "revoked"), 1);

    // Replica 1 stops for good. CredwatchDown says so; CredwatchReplicaMissing (the same
    // cause, for the group) is inhibited by it.
    replicas[1].stop("-TERM");
    common::eventually(Duration::from_secs(60), "CredwatchDown", || async {
        count("CredwatchDown", "") >= 1
    })
    .await;
    // Now a token connection starts failing: the surviving replica's probe alert is delivered
    // (a per-instance CredwatchDown as the inhibition source would mute it).
    simulator.update_site("flaky", |site| {
        site.front = credwatch::sim::Front::Status(500, "<h1>oops</h1>".to_owned());
    });
    common::eventually(
        Duration::from_secs(90),
        "the surviving replica's CredwatchProbeFailing",
        || async { count("CredwatchProbeFailing", "flaky") >= 1 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let all = notifications(&received);
    let missing: Vec<_> = all
        .iter()
        .filter(|(status, alert, _)| {
            status == "firing" && (alert == "CredwatchDown" || alert == "CredwatchReplicaMissing")
        })
        .collect();
    assert_eq!(
        missing.len(),
        1,
        "one notification for one dead replica: {all:?}"
    );
    assert_eq!(missing[0].1, "CredwatchDown");
    assert_eq!(count("CredwatchProbeFailing", "flaky"), 1, "{all:?}");
    assert_eq!(
        count("CredwatchCredentialRejected", "revoked"),
        1,
        "{all:?}"
    );
    assert!(
        !all.iter()
            .any(|(_, alert, _)| alert == "CredwatchAllReplicasDown"),
        "{all:?}"
    );
    replicas[0].stop("-TERM");
}
