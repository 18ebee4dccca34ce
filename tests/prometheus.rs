//! With a real Prometheus (Debian's package, which `.ci/run` installs): it scrapes
//! `credwatch demo` with the shipped rules and a 1 s evaluation interval, ingests every
//! connection's state, and fires the rejected, locked and expiring alerts for the right
//! connections and none for a healthy one. Also: `promtool check metrics` finds nothing to
//! complain about in credwatch's exposition, and every query of the shipped Grafana dashboard
//! is valid PromQL over metrics credwatch exports. At 5,000 connections, `/metrics` gzipped
//! (Prometheus asks for gzip on every scrape) is at most a fifth of its plain size, promtool
//! reads it decompressed, and a real Prometheus scrapes it (`up == 1`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use credwatch::sim::fleet;
use serde_json::Value;

use common::Demo;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

fn require(binary: &str) {
    assert!(
        Path::new(binary).exists(),
        "{binary} is missing: install Debian's prometheus package (bash .ci/run does)"
    );
}

/// A Prometheus server on a free loopback port, stopped when dropped.
struct Prometheus {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        Prometheus::scraping(target, "1s")
    }

    /// A Prometheus that scrapes `target` every `interval` (its scrape timeout too).
    fn scraping(target: &str, interval: &str) -> Prometheus {
        require(PROMETHEUS);
        let dir = tempfile::tempdir().expect("tempdir");
        let rules =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/credwatch-rules.yml");
        let config = format!(
            "global:\n  scrape_interval: {interval}\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: credwatch\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write");
        let port = common::free_port();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

async fn get_json(url: &str) -> Option<Value> {
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        common::http_client().get(url).send(),
    )
    .await
    .ok()?
    .ok()?;
    serde_json::from_str(&response.text().await.ok()?).ok()
}

/// An instant query's result; empty while Prometheus is still starting.
async fn query(prometheus: &Prometheus, promql: &str) -> Vec<Value> {
    let mut url = reqwest::Url::parse(&format!("{}/api/v1/query", prometheus.base)).expect("url");
    url.query_pairs_mut().append_pair("query", promql);
    get_json(url.as_str())
        .await
        .and_then(|body| body["data"]["result"].as_array().cloned())
        .unwrap_or_default()
}

/// `(alertname, connection)` of every firing alert.
async fn firing(prometheus: &Prometheus) -> BTreeSet<(String, String)> {
    let Some(body) = get_json(&format!("{}/api/v1/alerts", prometheus.base)).await else {
        return BTreeSet::new();
    };
    body["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "firing")
        .map(|a| {
            (
                a["labels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                a["labels"]["connection"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_real_prometheus_ingests_the_states_and_fires_the_shipped_alerts_for_the_right_connections(
) {
    let demo = Demo::start();
    let target = demo.base.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&target);

    // Every connection's state, ingested as credwatch reports it.
    let expected: BTreeMap<String, String> = fleet::members()
        .iter()
        .map(|m| (m.name.to_owned(), m.expected_state.to_owned()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let result = query(&prometheus, "credwatch_credential_state == 1").await;
        let ingested: BTreeMap<String, String> = result
            .iter()
            .map(|r| {
                (
                    r["metric"]["connection"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    r["metric"]["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        if ingested == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "states not ingested as expected: {ingested:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let must_fire: BTreeSet<(String, String)> = [
        ("CredwatchCredentialRejected", "dc-revoked-bot"),
        ("CredwatchCredentialRejected", "dc-borrowed-token"),
        ("CredwatchCredentialRejected", "cloud-password"),
        ("CredwatchCredentialLocked", "dc-locked-basic"),
        ("CredwatchTokenExpiryImminent", "dc-sync-expiring"),
        // The demo organization: an admin blocked a watched token, the list counts a token
        // expiring within 7 days, and the admin key itself expires in 10 days.
        ("CredwatchCredentialRejected", "cloud-blocked-bot"),
        ("CredwatchOrgTokensExpiringSoon", ""),
        ("CredwatchOrgApiKeyExpiring", ""),
    ]
    .iter()
    .map(|(a, c)| (a.to_string(), c.to_string()))
    .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = BTreeSet::new();
    loop {
        seen.extend(firing(&prometheus).await);
        if must_fire.is_subset(&seen) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "missing alerts: {:?}; firing: {seen:?}",
            must_fire.difference(&seen).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A few more evaluations, then: nothing ever fired for a healthy connection, and one
    // cause paged once (the expiring token's rotation is due too, but its expiry alert says it).
    tokio::time::sleep(Duration::from_secs(3)).await;
    seen.extend(firing(&prometheus).await);
    assert!(
        !seen.contains(&(
            "CredwatchTokenRotationDue".to_owned(),
            "dc-sync-expiring".to_owned()
        )),
        "rotation due paged beside the expiry: {seen:?}"
    );
    for healthy in ["dc-ci-pipeline", "dc-reports", "cloud-ops", "dc-legacy-bot"] {
        let fired: Vec<_> = seen.iter().filter(|(_, c)| c == healthy).collect();
        assert!(
            fired.is_empty(),
            "alerts fired for the healthy {healthy}: {fired:?}"
        );
    }
    assert!(
        !seen
            .iter()
            .any(|(alert, _)| alert == "CredwatchOrgApiKeyRejected"
                || alert == "CredwatchOrgTokenListStale"),
        "the demo organization's key works and its list is read: {seen:?}"
    );
    // The expiry alert is the imminent one, not also the 'soon' one.
    assert!(!seen.contains(&(
        "CredwatchTokenExpiringSoon".to_owned(),
        "dc-sync-expiring".to_owned()
    )));
    assert_eq!(demo.stop(), Some(0));
}

/// Every `expr` in a Grafana dashboard, recursively.
fn expressions(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => found.push(expr.clone()),
                    _ => expressions(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| expressions(v, found)),
        _ => {}
    }
}

/// `promtool check metrics` on an exposition: whether it parsed, and what promtool said.
fn promtool_check_metrics(metrics: &str) -> (bool, String) {
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(metrics.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

#[tokio::test]
async fn promtool_accepts_the_exposition_and_every_dashboard_query() {
    require(PROMTOOL);
    let demo = Demo::start();
    // Let every connection be probed once, so that every family has samples.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = common::get_text(&format!("{}/metrics", demo.base)).await;
    let (parsed, complaints) = promtool_check_metrics(&metrics);
    assert!(
        parsed && complaints.trim().is_empty(),
        "promtool check metrics: {complaints}"
    );

    let exported: BTreeSet<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/credwatch.json"),
        )
        .expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    expressions(&dashboard["panels"], &mut exprs);
    // The state-change annotations and the variables' queries are PromQL too.
    expressions(&dashboard["annotations"], &mut exprs);
    assert!(exprs.len() >= 20, "{} queries", exprs.len());
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        for name in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|t| t.starts_with("credwatch_") || t.starts_with("process_"))
        {
            // A histogram's samples are named after its family.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|family| exported.contains(family))
                .unwrap_or(name);
            assert!(
                exported.contains(family),
                "the dashboard queries {name}, which credwatch does not export"
            );
        }
        let concrete = expr
            .replace("$__rate_interval", "5m")
            .replace("$__range", "1h")
            .replace("$connection", ".*")
            .replace("$namespace", ".*")
            .replace("$team", ".*")
            .replace("$product", ".*")
            .replace("$job", ".*");
        assert!(
            !concrete.contains('$'),
            "a variable the test does not know: {expr}"
        );
        let quoted = serde_json::to_string(&concrete).expect("quote");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {quoted}\n"
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dashboard-rules.yml");
    std::fs::write(&path, rules).expect("write");
    let output = Command::new(PROMTOOL)
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("promtool");
    assert!(
        output.status.success(),
        "a dashboard query is not valid PromQL:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    for name in ["datasource", "job", "namespace", "team", "connection"] {
        assert!(
            variables.iter().any(|v| v["name"] == name),
            "no ${name} variable"
        );
    }
    let variable = variables
        .iter()
        .find(|v| v["name"] == "connection")
        .and_then(|v| v["definition"].as_str())
        .expect("connection variable");
    assert!(
        variable.contains("credwatch_connection_info")
            && exported.contains("credwatch_connection_info")
    );
    assert_eq!(demo.stop(), Some(0));
}

/// The exposition is the project's own writer: label values that Jira chose (an account name
/// with quotes, a backslash and a line feed) and that users wrote (a static label) go through
/// its escaping, promtool parses the result, and a real Prometheus reads the values back as
/// they were.
#[tokio::test]
async fn hostile_label_values_survive_promtool_and_a_real_prometheus() {
    use credwatch::sim::{Pat, Simulator, Site, User};
    require(PROMTOOL);
    let account = "svc \"ci\" \\ bot\nsecond line";
    let label = "a\"b\\c\nd}e";
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new(account).with_pat(Pat::new(
            1,
            "credwatch",
            "hostile-token",
            Some(90),
        ))),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("credwatch.toml");
    let quoted = serde_json::to_string(label).expect("quote");
    std::fs::write(
        &path,
        format!(
            "[[connection]]\nname = \"hostile\"\nurl = \"{}\"\ntoken = \"hostile-token\"\ninterval = \"2s\"\ntimeout = \"1s\"\nlabels = {{ team = {quoted} }}\n",
            simulator.url("dc")
        ),
    )
    .expect("write");
    let daemon = common::start_daemon(&path, false).await;
    let base = format!("http://{}", daemon.addr());
    let wanted = "account=\"svc \\\"ci\\\" \\\\ bot\\nsecond line\"";
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = common::get_text(&format!("{base}/metrics")).await;
        if metrics.contains(wanted) {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "no account as Jira named it:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        metrics.contains("team=\"a\\\"b\\\\c\\nd}e\""),
        "{}",
        metrics
            .lines()
            .find(|l| l.starts_with("credwatch_connection_info"))
            .unwrap_or_default()
    );

    let (parsed, complaints) = promtool_check_metrics(&metrics);
    assert!(parsed, "promtool cannot parse the exposition: {complaints}");

    let prometheus = Prometheus::start(&daemon.addr().to_string());
    let deadline = Instant::now() + Duration::from_secs(30);
    let info = loop {
        let result = query(
            &prometheus,
            "credwatch_connection_info{connection=\"hostile\"}",
        )
        .await;
        if let Some(series) = result.into_iter().next() {
            break series;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped credwatch"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(info["metric"]["account"], account);
    assert_eq!(info["metric"]["team"], label);
    daemon.shutdown(Duration::from_secs(5)).await;
}

/// GETs `url` with `Accept-Encoding: encoding`: the body as sent, and its Content-Encoding.
async fn get_encoded(url: &str, encoding: &str) -> (Vec<u8>, Option<String>, bool) {
    let response = common::within(
        Duration::from_secs(60),
        common::http_client()
            .get(url)
            .header("accept-encoding", encoding)
            .send(),
    )
    .await
    .expect("GET");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let encoded = header("content-encoding");
    let streamed = header("content-length").is_none();
    let body = response.bytes().await.expect("body").to_vec();
    (body, encoded, streamed)
}

#[tokio::test]
async fn five_thousand_connections_scraped_gzipped() {
    use std::io::Read as _;
    require(PROMTOOL);
    let (_simulator, daemon, _dir) =
        common::scale_daemon(5_000, Duration::from_secs(10), &[]).await;
    let base = format!("http://{}", daemon.addr());
    common::until_ready(&base, Duration::from_secs(120)).await;
    let url = format!("{base}/metrics");
    let (plain, encoding, _) = get_encoded(&url, "identity").await;
    assert_eq!(encoding, None);
    let (gzipped, encoding, streamed) = get_encoded(&url, "gzip").await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert!(
        streamed,
        "the gzipped exposition is streamed, not sized in memory first"
    );
    eprintln!(
        "/metrics at 5,000 connections: {} bytes plain, {} gzipped",
        plain.len(),
        gzipped.len()
    );
    assert!(
        gzipped.len() * 5 <= plain.len(),
        "{} bytes gzipped against {} plain",
        gzipped.len(),
        plain.len()
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gzipped[..])
        .read_to_string(&mut text)
        .expect("gzip");
    let plain = String::from_utf8(plain).expect("UTF-8");
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("credwatch_credential_state{"))
            .count()
    };
    assert_eq!(series(&text), series(&plain));
    assert_eq!(series(&text), 5_000 * 6, "every connection's state set");
    let (parsed, complaints) = promtool_check_metrics(&text);
    assert!(
        parsed && complaints.trim().is_empty(),
        "promtool check metrics: {complaints}"
    );

    let prometheus = Prometheus::scraping(&daemon.addr().to_string(), "5s");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = query(&prometheus, "up{job=\"credwatch\"}").await;
        let samples = query(&prometheus, "scrape_samples_scraped{job=\"credwatch\"}").await;
        let value = |result: &[Value]| {
            result
                .first()
                .and_then(|r| r["value"][1].as_str())
                .and_then(|v| v.parse::<f64>().ok())
        };
        if value(&up) == Some(1.0) {
            assert!(
                value(&samples).is_some_and(|n| n >= 30_000.0),
                "scraped {samples:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped credwatch: up = {up:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    daemon.shutdown(Duration::from_secs(5)).await;
}
