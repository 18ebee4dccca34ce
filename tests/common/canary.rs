//! Running `credwatch` for the canary tests: a command to its end, or the daemon until a piece
//! of work is done, with everything it printed and served.

use std::path::Path;
use std::time::Duration;

pub async fn run(args: Vec<String>, env: Vec<(&'static str, String)>) -> std::process::Output {
    let job = tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_credwatch"));
        let state = super::isolate_state(&mut command);
        let output = command
            .args(&args)
            .envs(env)
            .output()
            .expect("credwatch runs");
        drop(state);
        output
    });
    super::within(Duration::from_secs(60), job)
        .await
        .expect("joins")
}

pub fn write_secret(dir: &Path, name: &str, secret: &str) {
    std::fs::write(dir.join(name), format!("{secret}\n")).expect("secret file");
}

/// Runs `credwatch` with `args` until `ready` answers, lets `work` poke it, then SIGTERMs it;
/// returns everything it printed and every page it served.
pub async fn daemon_outputs(
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    base: String,
    work: impl std::future::Future<Output = ()>,
) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_credwatch"));
    let _state = super::isolate_state(&mut command);
    let child = command
        .args(&args)
        .envs(env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let client = super::http_client();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "credwatch did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    work.await;
    let mut pages = String::new();
    for path in [
        "/metrics",
        "/",
        "/api/v1/connections",
        "/api/v1/orgs",
        "/readyz",
    ] {
        let body = super::get_text(&format!("{base}{path}")).await;
        assert!(!body.is_empty(), "{path}");
        pages.push_str(&body);
    }
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "credwatch panicked:\n{stderr}"
    );
    format!("{}{stderr}{pages}", String::from_utf8_lossy(&output.stdout))
}
