//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses its own subset

pub mod canary;
pub mod harness;
pub mod process;

use std::future::Future;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use std::time::Instant;

use credwatch::config::{Config, Connection};

/// One connection from a TOML fragment (the body of a `[[connection]]`).
pub fn connection(fragment: &str) -> Connection {
    let text = format!("[[connection]]\n{fragment}\n");
    match Config::from_sources(&[(PathBuf::from("test.toml"), text)]) {
        Ok(mut config) => config.connections.remove(0),
        Err(errors) => panic!("test configuration does not load:\n{errors}"),
    }
}

/// Awaits `future`, failing the test if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("did not finish within {limit:?}"),
    }
}

/// A resolver for which no name exists, so that tests see a DNS failure without asking a
/// DNS server.
pub struct NoSuchHost;

impl credwatch::probe::Resolve for NoSuchHost {
    fn resolve(&self, host: &str, _port: u16) -> credwatch::probe::Resolving {
        let message = format!("no such host: {host}");
        Box::pin(async move { Err(std::io::Error::new(std::io::ErrorKind::NotFound, message)) })
    }
}

/// A plain HTTP client for talking to the daemon's endpoints. credwatch builds rustls with an
/// explicit provider; a default client needs one installed process-wide.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A running `credwatch demo`, stopped with SIGTERM when dropped.
pub struct Demo {
    child: Child,
    /// The daemon's base URL, without a trailing slash.
    pub base: String,
}

impl Demo {
    /// Starts `credwatch demo` on a free loopback port, probing every 2 s.
    pub fn start() -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_credwatch"))
            .args(["demo", "--listen", "127.0.0.1:0", "--interval", "2s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("demo starts");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("status page: ") {
                    let _ = sender.send(url.trim_end_matches('/').to_owned());
                }
            }
        });
        let base = receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("the demo prints its status page URL");
        Demo { child, base }
    }

    /// Stops the demo and returns its exit code.
    pub fn stop(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not stop within 5 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the daemon in this process on 127.0.0.1 (port 0) with the configuration at `path`,
/// keeping no state.
pub async fn start_daemon(
    path: &std::path::Path,
    enable_lifecycle: bool,
) -> credwatch::daemon::Daemon {
    start_daemon_at(path, credwatch::store::Location::Disabled, enable_lifecycle).await
}

async fn start_daemon_at(
    path: &std::path::Path,
    state: credwatch::store::Location,
    enable_lifecycle: bool,
) -> credwatch::daemon::Daemon {
    let config = Config::load(path).unwrap_or_else(|e| panic!("config:\n{e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let options = credwatch::daemon::Options {
        enable_lifecycle,
        grace: Duration::from_secs(1),
        state,
        ..credwatch::daemon::Options::new(path.to_owned())
    };
    let prober = credwatch::probe::Prober::new().expect("prober");
    credwatch::daemon::Daemon::start(config, listener, options, prober).expect("daemon starts")
}

/// The value of the sample with exactly this name and these labels in a text exposition.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// GETs a URL and returns the body, failing the test after 30 s.
pub async fn get_text(url: &str) -> String {
    let response = within(Duration::from_secs(30), http_client().get(url).send())
        .await
        .expect("GET");
    response.text().await.expect("body")
}

/// Points a `credwatch` command's default state directory at a fresh temporary one, so that
/// test runs of the binary never share a store (or its lock) with each other or the user's.
/// Keep the returned directory until the command has ended.
pub fn isolate_state(command: &mut Command) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    command
        .env("XDG_STATE_HOME", home.path())
        .env_remove("STATE_DIRECTORY")
        .env_remove("CREDWATCH_STATE_DIR");
    home
}

/// Polls `check` every 50 ms until it holds, failing after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A connection name whose first probe, at `interval`, comes within the first 800 ms.
pub fn early_name(prefix: &str, interval: Duration) -> String {
    (0..10_000)
        .map(|i| format!("{prefix}-{i}"))
        .find(|name| credwatch::start_offset(name, interval) < Duration::from_millis(800))
        .expect("some name starts early")
}

/// Starts the daemon in this process, keeping its state in `state_dir`.
pub async fn start_daemon_with_state(
    path: &std::path::Path,
    state_dir: &std::path::Path,
    enable_lifecycle: bool,
) -> credwatch::daemon::Daemon {
    let state = credwatch::store::Location::Explicit(state_dir.to_owned());
    start_daemon_at(path, state, enable_lifecycle).await
}

/// Reads one request head from a test server's client; `None` at the end of the connection.
pub async fn read_head(stream: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt as _;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// GETs a daemon's JSON endpoint.
pub async fn get_json(url: &str) -> serde_json::Value {
    serde_json::from_str(&get_text(url).await).expect("JSON")
}

/// One connection's object in `/api/v1/connections`.
pub async fn api_connection(base: &str, name: &str) -> serde_json::Value {
    let all = get_json(&format!("{base}/api/v1/connections")).await;
    all.as_array()
        .expect("array")
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no connection {name}"))
}

/// A free port on 127.0.0.1 (for a child process that takes its port from the command line).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

/// Runs `tests/browser/page.mjs` with `args` (Node.js, playwright-core and Debian's chromium;
/// `.ci/run` installs them), failing the test if it fails or takes over two minutes.
pub async fn browser(args: &[&str]) -> std::process::Output {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists()
            && dir.join("node_modules/axe-core").exists(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser (bash .ci/run does)"
    );
    let output = within(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(dir.join("page.mjs"))
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("node runs");
    assert!(
        output.status.success(),
        "page.mjs {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A heartbeat for tests that prove an absence: a valid PAT connection on a site of its own
/// (`beat`, added to `simulator`), probed every second from early in its first interval.
/// Returns its name and its `[[connection]]`; [`after_rounds`] waits on its probes.
pub fn heartbeat(simulator: &credwatch::sim::Simulator) -> (String, String) {
    use credwatch::sim::{Pat, Site, User};
    simulator.add_site(
        "beat",
        Site::server().with_user(User::new("beat").with_pat(Pat::new(
            1,
            "beat",
            "beat-tok",
            Some(90),
        ))),
    );
    let name = early_name("beat", Duration::from_secs(1));
    let toml = format!(
        "[[connection]]\nname = \"{name}\"\nurl = \"{}\"\ntoken = \"beat-tok\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n\n",
        simulator.url("beat")
    );
    (name, toml)
}

/// Waits until connection `name` of the daemon at `base` was probed `rounds` more times: the
/// event after which a test asserts that something did not happen (the scheduler went on for
/// that many rounds), rather than a fixed sleep.
pub async fn after_rounds(base: &str, name: &str, rounds: u64) {
    let probes = |c: serde_json::Value| c["probes_total"].as_u64().unwrap_or(0);
    let from = probes(api_connection(base, name).await);
    let deadline = Instant::now() + Duration::from_secs(30);
    while probes(api_connection(base, name).await) < from + rounds {
        assert!(
            Instant::now() < deadline,
            "{name} was not probed {rounds} more times"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The simulator's scale fleet of `connections` valid PATs over 10 sites (no rate limit), and
/// a daemon in this process probing them every `interval` (a rejection again a second later),
/// keeping no state. `revoke` (connection numbers) are revoked before the first probe.
pub async fn scale_daemon(
    connections: usize,
    interval: Duration,
    revoke: &[usize],
) -> (
    credwatch::sim::Simulator,
    credwatch::daemon::Daemon,
    tempfile::TempDir,
) {
    const SITES: usize = 10;
    let simulator = credwatch::sim::Simulator::start().await.expect("simulator");
    credwatch::sim::fleet::install_scale(&simulator, connections, SITES, false);
    for i in revoke {
        revoke_scale(&simulator, *i, true);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = credwatch::sim::fleet::write_scale_config(
        dir.path(),
        &simulator,
        connections,
        SITES,
        interval,
    )
    .expect("scale configuration");
    let text = std::fs::read_to_string(&path).expect("read");
    let text = text.replacen(
        "[defaults]\n",
        "[defaults]\nauth_failure_interval = \"1s\"\n",
        1,
    );
    std::fs::write(&path, text).expect("write");
    let daemon = start_daemon(&path, false).await;
    (simulator, daemon, dir)
}

/// Revokes (or restores) the PAT of the scale fleet's connection number `i` (`scale-{i}`).
pub fn revoke_scale(simulator: &credwatch::sim::Simulator, i: usize, revoked: bool) {
    simulator
        .update_site(&format!("site-{}", i % 10), |site| {
            site.users[i / 10].pats[0].revoked = revoked
        })
        .expect("site");
}

/// Waits until `/readyz` answers 200: every connection had its first probe.
pub async fn until_ready(base: &str, limit: Duration) {
    let client = http_client();
    eventually(limit, "the daemon is ready", || {
        let request = client.get(format!("{base}/readyz")).send();
        async move { matches!(request.await, Ok(r) if r.status() == 200) }
    })
    .await;
}

/// Revokes the first PAT of user number `user` of simulated site `site`.
pub fn revoke(simulator: &credwatch::sim::Simulator, site: &str, user: usize) {
    simulator
        .update_site(site, |site| site.users[user].pats[0].revoked = true)
        .expect("site");
}

/// The Basic logins a simulated site received (in the tests that use it, every one a failed
/// login: the count the product keeps per account).
pub fn basic_logins(simulator: &credwatch::sim::Simulator, site: &str) -> usize {
    simulator
        .requests_for(site)
        .iter()
        .filter(|r| {
            r.authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Basic "))
        })
        .count()
}

/// The errors a configuration file of `text` is refused with, as `validate` prints them (the
/// test fails if it loads).
pub fn refused(text: &str) -> String {
    credwatch::config::Config::from_sources(&[("t.toml".into(), text.to_owned())])
        .expect_err("the configuration is refused")
        .to_string()
}

/// Waits until every connection of `names` at the daemon at `base` is paused (its login
/// account's budget spent).
pub async fn all_paused(base: &str, names: &[&str]) {
    eventually(Duration::from_secs(10), "every name paused", || async {
        for name in names {
            if api_connection(base, name).await["paused"].is_null() {
                return false;
            }
        }
        true
    })
    .await;
}
