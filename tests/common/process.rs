//! `credwatch run` as a child process, the way users run it: started with a configuration and
//! a state directory, stopped with a signal (SIGTERM, or `kill -9`), killed when dropped; and
//! `credwatch check --output json` beside it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `credwatch run` child, killed when dropped.
pub struct Running {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: PathBuf,
}

impl Running {
    /// Starts `credwatch run` on a free loopback port with the lifecycle API, its stderr
    /// appended to `log`.
    pub fn start(config: &Path, state: &Path, log: &Path) -> Running {
        Running::start_with(config, state, log, &[])
    }

    /// As [`Running::start`], with more arguments (`--shard 0/2`, say).
    pub fn start_with(config: &Path, state: &Path, log: &Path, extra: &[&str]) -> Running {
        let port = super::free_port();
        let stderr = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_credwatch"))
            .args(["run", "--config"])
            .arg(config)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--enable-lifecycle",
            ])
            .arg("--state-dir")
            .arg(state)
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn");
        Running {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_owned(),
        }
    }

    /// Waits until the endpoints answer; returns `/readyz`'s status then.
    pub async fn first_answer(&self) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(response) = super::http_client()
                .get(format!("{}/readyz", self.base))
                .send()
                .await
            {
                return response.status().as_u16();
            }
            assert!(Instant::now() < deadline, "no answer: {}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (`-HUP`, `-TERM`, `-KILL`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Sends `signal` and waits for the exit; returns the exit code.
    pub fn stop(mut self, signal: &str) -> Option<i32> {
        self.signal(signal);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `credwatch check --output json` over `config` with the store in `state` (and `extra`
/// arguments), off the test's runtime, with no shard or replica from the environment; returns
/// what it printed and its exit status.
pub async fn check_json(config: &Path, state: &Path, extra: &[&str]) -> std::process::Output {
    let (config, state) = (config.to_owned(), state.to_owned());
    let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_credwatch"))
            .args(["check", "--output", "json", "--config"])
            .arg(&config)
            .arg("--state-dir")
            .arg(&state)
            .args(&extra)
            .env_remove("RUST_LOG")
            .env_remove("CREDWATCH_SHARD")
            .env_remove("CREDWATCH_REPLICA")
            .output()
            .expect("runs")
    })
    .await
    .expect("joins")
}
