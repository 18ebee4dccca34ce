//! The in-process daemon the daemon tests drive: a configuration in a temporary directory, the
//! daemon on a free loopback port, and readers of its endpoints; with the simulator helpers
//! those tests share.

use std::path::PathBuf;
use std::time::Duration;

use credwatch::daemon::Daemon;
use credwatch::sim::{Pat, Simulator, Site, User};
use serde_json::Value;

/// A daemon over a configuration written to a temporary directory.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub daemon: Daemon,
    pub client: reqwest::Client,
    /// When it started on tokio's clock (virtual time in the paused-clock tests).
    pub instant: tokio::time::Instant,
}

impl Harness {
    pub async fn start(toml: &str, enable_lifecycle: bool) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = super::write(dir.path(), "credwatch.toml", toml);
        Self::start_in(dir, path, enable_lifecycle).await
    }

    pub async fn start_in(
        dir: tempfile::TempDir,
        path: PathBuf,
        enable_lifecycle: bool,
    ) -> Harness {
        let instant = tokio::time::Instant::now();
        let daemon = super::start_daemon(&path, enable_lifecycle).await;
        Harness {
            dir,
            daemon,
            client: super::http_client(),
            instant,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.daemon.addr())
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = super::within(
            Duration::from_secs(5),
            self.client.get(self.url(path)).send(),
        )
        .await
        .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.1
    }

    pub async fn connections(&self) -> Vec<Value> {
        let (status, body) = self.get("/api/v1/connections").await;
        assert_eq!(status, 200);
        serde_json::from_str(&body).expect("JSON")
    }

    pub async fn connection(&self, name: &str) -> Value {
        self.connections()
            .await
            .into_iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no connection {name}"))
    }
}

/// The identity probes a site received (valid PAT probes are followed by a token list).
pub fn probes(simulator: &Simulator, site: &str) -> Vec<credwatch::sim::RecordedRequest> {
    simulator
        .requests_for(site)
        .into_iter()
        .filter(|r| r.path.ends_with("/myself"))
        .collect()
}

pub fn pat_site(tokens: &[(&str, &str)]) -> Site {
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

pub fn pat_connection(name: &str, url: &str, token: &str, extra: &str) -> String {
    format!("[[connection]]\nname = \"{name}\"\nurl = \"{url}\"\ntoken = \"{token}\"\n{extra}\n\n")
}
