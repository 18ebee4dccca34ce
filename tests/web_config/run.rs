//! The harness of the web configuration's tests: `credwatch run --web.config.file` as a child
//! process, the test CA's clients, and the log lines they read.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use credwatch::sim::{Simulator, Site};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::common;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `credwatch run` with a web configuration; killed when dropped.
pub struct Run {
    pub child: Option<std::process::Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    _state: tempfile::TempDir,
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Run {
    /// Starts credwatch with `web` as its web configuration (relative paths resolve against
    /// tests/fixtures, where the file is written), without waiting for it.
    pub fn spawn(simulator: &Simulator, web: &str, env: &[(&str, &str)]) -> Run {
        simulator.add_site("dc", Site::server());
        let dir = tempfile::tempdir().expect("tempdir");
        let config = common::write(
            dir.path(),
            "credwatch.toml",
            &format!(
                "[[connection]]\nname = \"c\"\nurl = \"{}\"\ntoken = \"t\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
                simulator.url("dc")
            ),
        );
        let web_path = dir.path().join("web.yml");
        std::fs::write(&web_path, absolute(web)).expect("write");
        let port = common::free_port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_credwatch"));
        let state = common::isolate_state(&mut command);
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr");
        let child = command
            .args(["run", "--config", config.to_str().expect("path")])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--no-state"])
            .args(["--web.config.file", web_path.to_str().expect("path")])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("credwatch runs");
        Run {
            child: Some(child),
            port,
            dir,
            _state: state,
        }
    }

    /// Starts it and waits until `client` gets any HTTP answer at `scheme`.
    pub async fn start(
        simulator: &Simulator,
        web: &str,
        scheme: &str,
        client: &reqwest::Client,
    ) -> Run {
        Run::start_with(simulator, web, scheme, client, &[]).await
    }

    /// [`Run::start`] with environment variables.
    pub async fn start_with(
        simulator: &Simulator,
        web: &str,
        scheme: &str,
        client: &reqwest::Client,
        env: &[(&str, &str)],
    ) -> Run {
        let run = Run::spawn(simulator, web, env);
        let deadline = Instant::now() + Duration::from_secs(15);
        while client
            .get(run.url(scheme, "/healthz"))
            .send()
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "credwatch did not start:\n{}",
                run.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        run
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        let host = if scheme == "https" {
            "localhost"
        } else {
            "127.0.0.1"
        };
        format!("{scheme}://{host}:{}{path}", self.port)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    pub fn rewrite(&self, web: &str) {
        std::fs::write(self.dir.path().join("web.yml"), absolute(web)).expect("write");
    }

    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGTERM, then everything it logged.
    pub async fn stop(mut self) -> String {
        self.signal("TERM");
        let mut child = self.child.take().expect("running");
        let status = tokio::task::spawn_blocking(move || child.wait().expect("wait"))
            .await
            .expect("join");
        assert_eq!(status.code(), Some(0));
        self.stderr()
    }
}

/// The web configuration with the fixture paths made absolute.
pub fn absolute(web: &str) -> String {
    web.replace("FIXTURES/", &format!("{}/", fixture("").display()))
}

/// A client trusting the test CA, presenting `identity` (certificate, key) when given.
pub fn tls_client(identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("test-ca.pem")).expect("CA") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_file_iter(fixture(cert))
                .expect("cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("certs");
            let key = PrivateKeyDer::from_pem_file(fixture(key)).expect("key");
            builder.with_client_auth_cert(certs, key).expect("identity")
        }
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

pub fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// A bcrypt hash of `password` at the cheapest cost, to keep the tests fast.
pub fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).expect("hash")
}

pub async fn status(
    client: &reqwest::Client,
    url: &str,
    auth: Option<&str>,
) -> Result<u16, String> {
    let mut request = client.get(url);
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    request
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

pub const TLS: &str =
    "tls_server_config:\n  cert_file: FIXTURES/localhost.pem\n  key_file: FIXTURES/localhost.key\n";

impl Run {
    /// Waits for it to exit by itself: its exit code and everything it logged.
    pub async fn exit(mut self) -> (Option<i32>, String) {
        let mut child = self.child.take().expect("running");
        let code = tokio::task::spawn_blocking(move || child.wait().expect("wait"))
            .await
            .expect("join")
            .code();
        (code, self.stderr())
    }
}

/// The `key=value` fields of each log line holding `message`, in order.
pub fn events(stderr: &str, message: &str) -> Vec<std::collections::HashMap<String, String>> {
    stderr
        .lines()
        .filter(|line| line.contains(message))
        .map(|line| {
            line.split_whitespace()
                .filter_map(|field| field.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// A client trusting the test CA that speaks only `version` with `suites` (all when empty).
pub fn tls_client_speaking(
    version: &'static rustls::SupportedProtocolVersion,
    suites: &[rustls::CipherSuite],
) -> reqwest::Client {
    let mut provider = rustls::crypto::ring::default_provider();
    if !suites.is_empty() {
        provider
            .cipher_suites
            .retain(|s| suites.contains(&s.suite()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("test-ca.pem")).expect("CA") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}
