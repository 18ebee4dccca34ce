//! Probes through an HTTP proxy, as `https_proxy`, `http_proxy` and `no_proxy` name it in the
//! environment of `credwatch check`, read by reqwest: `https://` through a `CONNECT` tunnel
//! (TLS end to end), `http://` in absolute form, the proxy's credentials sent to the proxy
//! alone and never shown; and the WARN for a proxy variable reqwest would ignore.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use credwatch::sim::{Pat, Simulator, Site, User};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};

const CERT: &[u8] = include_bytes!("fixtures/localhost.pem");
const KEY: &[u8] = include_bytes!("fixtures/localhost.key");
const PROXY_PASSWORD: &str = "proxy-pa55@word";

/// What the proxy saw of one request: its request line and `Proxy-Authorization`.
type Seen = (String, Option<String>);

/// A minimal HTTP proxy: `CONNECT` tunnels, absolute-form requests forwarded in origin form.
/// With `refuse`, it answers every request `407`.
struct TestProxy {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestProxy {
    async fn start(refuse: bool) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, log.clone(), refuse));
            }
        });
        TestProxy { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn serve(mut client: TcpStream, seen: Arc<Mutex<Vec<Seen>>>, refuse: bool) {
    let Some(head) = common::read_head(&mut client).await else {
        return;
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let authorization = head
        .split("\r\n")
        // Field names are case-insensitive (hyper sends them in lower case).
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("proxy-authorization")
                .then(|| value.trim())
        })
        .map(str::to_owned);
    seen.lock()
        .expect("lock")
        .push((request_line.clone(), authorization));
    if refuse {
        let _ = client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    }
    let mut parts = request_line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if method == "CONNECT" {
        let Ok(mut upstream) = TcpStream::connect(target).await else {
            return;
        };
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_ok()
        {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        return;
    }
    // Absolute form: forward to the origin in origin form, without the proxy's header.
    let Some(rest) = target.strip_prefix("http://") else {
        return;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(mut upstream) = TcpStream::connect(authority).await else {
        return;
    };
    let mut forwarded = format!("{method} {path} HTTP/1.1\r\n");
    for line in lines.filter(|line| {
        !line.is_empty() && !line.to_ascii_lowercase().starts_with("proxy-authorization")
    }) {
        forwarded.push_str(line);
        forwarded.push_str("\r\n");
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    if upstream.write_all(forwarded.as_bytes()).await.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}

/// The proxy URL, with credentials.
fn proxy_url(port: u16) -> String {
    format!(
        "http://svc-proxy:{}@127.0.0.1:{port}",
        PROXY_PASSWORD.replace('@', "%40")
    )
}

fn site() -> Site {
    Site::server().with_user(User::new("svc").with_pat(Pat::new(1, "credwatch", "pat-proxy", None)))
}

async fn tls_simulator() -> Simulator {
    let tls = Simulator::start_tls(CERT, KEY)
        .await
        .expect("TLS simulator");
    tls.add_site("dc", site());
    tls
}

/// A configuration with a connection to `tls`'s site "dc" (trusting the test CA) and, with
/// `plain`, one to its plain-HTTP site.
fn config(dir: &std::path::Path, tls: &Simulator, plain: Option<&Simulator>) -> std::path::PathBuf {
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-ca.pem");
    let mut text = format!(
        "[[connection]]\nname = \"https\"\nurl = \"{}\"\ntoken = \"pat-proxy\"\nca_file = \"{}\"\n\n",
        tls.url("dc"),
        ca.display()
    );
    if let Some(plain) = plain {
        text.push_str(&format!(
            "[[connection]]\nname = \"http\"\nurl = \"{}\"\ntoken = \"pat-proxy\"\nallow_insecure_http = true\n",
            plain.url("dc")
        ));
    }
    let path = dir.join("credwatch.toml");
    std::fs::write(&path, text).expect("write");
    path
}

/// Runs `credwatch check --output json` with exactly these proxy variables.
async fn check(config: &std::path::Path, vars: &[(&str, String)]) -> (Vec<Value>, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_credwatch"));
    let state = common::isolate_state(&mut command);
    for name in [
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
        "REQUEST_METHOD",
    ] {
        command.env_remove(name);
    }
    command
        .args(["check", "--output", "json", "--config"])
        .arg(config)
        .envs(vars.iter().map(|(k, v)| (k, v)));
    let output = common::within(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let output = command.output().expect("runs");
            drop(state);
            output
        }),
    )
    .await
    .expect("joins");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let reports: Vec<Value> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("JSON: {}", String::from_utf8_lossy(&output.stdout)));
    (reports, stderr)
}

fn by_name<'a>(reports: &'a [Value], name: &str) -> &'a Value {
    reports
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[tokio::test]
async fn probes_go_through_the_proxy_unless_no_proxy_names_the_host() {
    let plain = Simulator::start().await.expect("simulator");
    plain.add_site("dc", site());
    let tls = tls_simulator().await;
    let proxy = TestProxy::start(false).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = config(dir.path(), &tls, Some(&plain));

    let through = [
        ("https_proxy", proxy_url(proxy.port)),
        ("http_proxy", proxy_url(proxy.port)),
    ];
    let (reports, stderr) = check(&path, &through).await;
    for name in ["https", "http"] {
        let report = by_name(&reports, name);
        assert_eq!(report["state"], "valid", "{name}: {report}");
    }
    assert!(!stderr.contains("pa55"), "{stderr}");
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("svc-proxy:{PROXY_PASSWORD}"))
    );
    let tls_port = tls.addr().port();
    let plain_port = plain.addr().port();
    // The token list that check fetches after a valid PAT probe goes the same way; the
    // probes are what this test follows.
    let mut seen: Vec<Seen> = proxy
        .seen()
        .into_iter()
        .filter(|(line, _)| !line.contains("/rest/pat/"))
        .collect();
    seen.sort();
    let mut expected = vec![
        (
            format!("CONNECT 127.0.0.1:{tls_port} HTTP/1.1"),
            Some(expected_auth.clone()),
        ),
        (
            format!("GET http://127.0.0.1:{plain_port}/dc/rest/api/2/myself HTTP/1.1"),
            Some(expected_auth),
        ),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    // Each Jira saw one probe, with the credential and without the proxy's.
    for simulator in [&plain, &tls] {
        let requests: Vec<_> = simulator
            .requests_for("dc")
            .into_iter()
            .filter(|r| r.path.ends_with("/myself"))
            .collect();
        assert_eq!(requests.len(), 1);
        assert_eq!(
            requests[0].authorization.as_deref(),
            Some("Bearer pat-proxy")
        );
    }

    // `no_proxy` sends both straight to Jira.
    let mut bypassing = through.to_vec();
    bypassing.push(("no_proxy", "localhost, 127.0.0.0/8".to_owned()));
    let (reports, _) = check(&path, &bypassing).await;
    for name in ["https", "http"] {
        assert_eq!(by_name(&reports, name)["state"], "valid");
    }
    let seen_before = 3; // CONNECT, the plain probe and the plain token list
    assert_eq!(
        proxy.seen().len(),
        seen_before,
        "the proxy saw nothing more"
    );
    let probes = |s: &Simulator| {
        s.requests_for("dc")
            .iter()
            .filter(|r| r.path.ends_with("/myself"))
            .count()
    };
    assert_eq!(probes(&plain) + probes(&tls), 4);
}

#[tokio::test]
async fn a_refusing_proxy_is_a_connect_error_that_names_it_and_not_its_password() {
    let tls = tls_simulator().await;
    let proxy = TestProxy::start(true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = config(dir.path(), &tls, None);
    let (reports, stderr) = check(&path, &[("HTTPS_PROXY", proxy_url(proxy.port))]).await;
    let report = by_name(&reports, "https");
    assert_eq!(report["state"], "unknown", "{report}");
    assert_eq!(report["reason"], "connect_error", "{report}");
    let detail = report["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("127.0.0.1:{}", proxy.port)),
        "{detail}"
    );
    assert!(detail.contains("proxy authorization required"), "{detail}");
    assert!(
        !detail.contains("pa55") && !stderr.contains("pa55"),
        "{detail}"
    );
    assert!(tls.requests_for("dc").is_empty(), "Jira was never reached");
}

#[tokio::test]
async fn a_proxy_variable_reqwest_would_ignore_or_cannot_use_is_a_warning_at_start() {
    let tls = tls_simulator().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = config(dir.path(), &tls, None);
    let (reports, stderr) = check(
        &path,
        &[
            (
                "https_proxy",
                "socks5://svc:hunter2@127.0.0.1:1080".to_owned(),
            ),
            ("http_proxy", "ftp://127.0.0.1:21".to_owned()),
        ],
    )
    .await;
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(
        stderr.contains("https_proxy names a socks5:// proxy"),
        "{stderr}"
    );
    assert!(
        stderr.contains("http_proxy names a ftp:// proxy"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    // The SOCKS proxy cannot be used: the probe fails, and says so without its password.
    let report = by_name(&reports, "https");
    assert_eq!(report["reason"], "connect_error", "{report}");
    assert!(!report.to_string().contains("hunter2"));
}
