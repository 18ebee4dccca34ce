//! The conventions a packaged tool keeps: shell completions that the shells parse, a man
//! page that renders and is current in `docs/man/`, a version that names the commit and the
//! compiler (in `--version` and `credwatch_build_info`), JSON logs with flat fields, and a
//! CPU counter with sub-second precision that moves under load.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn credwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_credwatch"))
        .args(args)
        .output()
        .expect("credwatch runs")
}

/// Whether `program` can be run.
fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn completions_parse_in_their_shells() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (shell, check) in [("bash", "bash"), ("zsh", "zsh"), ("fish", "fish")] {
        let output = credwatch(&["completions", shell]);
        assert!(output.status.success(), "{shell}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("resume"),
            "{shell}: the subcommands are completed"
        );
        let path = dir.path().join(format!("credwatch.{shell}"));
        std::fs::write(&path, &output.stdout).expect("write");
        if shell == "bash" || installed(check) {
            let parsed = Command::new(check)
                .arg("-n")
                .arg(&path)
                .output()
                .expect("shell runs");
            assert!(
                parsed.status.success(),
                "{check} -n: {}",
                String::from_utf8_lossy(&parsed.stderr)
            );
        } else {
            eprintln!("{check} is not installed: its completion script is not parsed");
        }
    }
}

#[test]
fn the_man_page_renders_and_the_committed_one_is_current() {
    let output = credwatch(&["man"]);
    assert!(output.status.success());
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/man/credwatch.1");
    let current = std::fs::read(&committed).expect("docs/man/credwatch.1");
    assert!(
        current == output.stdout,
        "docs/man/credwatch.1 is stale: run `credwatch man > docs/man/credwatch.1`"
    );
    if installed("man") {
        let rendered = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(&committed)
            .env("MANWIDTH", "80")
            .output()
            .expect("man runs");
        assert!(rendered.status.success());
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(
            text.contains("SYNOPSIS") && text.contains("credwatch"),
            "{text}"
        );
    }
}

/// The commit git names for the source tree, when it is a checkout.
fn head() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[tokio::test]
async fn the_version_names_the_commit_and_the_compiler_and_so_does_build_info() {
    let output = credwatch(&["--version"]);
    let version = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(version.starts_with(&format!("credwatch {}", env!("CARGO_PKG_VERSION"))));
    assert!(version.contains("rustc 1."), "{version}");
    match head() {
        Some(commit) => assert!(version.contains(&commit), "{version} names {commit}"),
        None => assert!(version.contains("commit unknown"), "{version}"),
    }

    let demo = common::Demo::start();
    let metrics = common::get_text(&format!("{}/metrics", demo.base)).await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("credwatch_build_info{"))
        .expect("build_info");
    assert!(line.contains("rustc=\"rustc 1."), "{line}");
    if let Some(commit) = head() {
        assert!(line.contains(&format!("revision=\"{commit}")), "{line}");
    }

    // The CPU counter has the clock tick's precision and moves under load.
    let cpu = |text: &str| common::sample(text, "process_cpu_seconds_total").expect("cpu");
    let before = cpu(&metrics);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        common::get_text(&format!("{}/metrics", demo.base)).await;
    }
    let after = cpu(&common::get_text(&format!("{}/metrics", demo.base)).await);
    assert!(after > before, "{before} -> {after}");
    assert!(
        (before.fract() != 0.0) || (after.fract() != 0.0),
        "sub-second precision: {before}, {after}"
    );
    demo.stop();
}

#[test]
fn json_logs_carry_their_fields_at_the_top_level() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("credwatch.toml");
    std::fs::write(
        &config,
        "[[connection]]\nname = \"c\"\nurl = \"http://127.0.0.1:9/jira\"\ntoken = \"t\"\ninterval = \"1m\"\n",
    )
    .expect("write");
    let mut command = Command::new(env!("CARGO_BIN_EXE_credwatch"));
    let _state = common::isolate_state(&mut command);
    let mut child = command
        .args([
            "--log-format",
            "json",
            "run",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut running = None;
    for line in BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .take(20)
    {
        let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON object per line");
        if value["message"] == "credwatch is running" {
            running = Some(value);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = running.expect("the start-up line");
    for key in [
        "timestamp",
        "level",
        "target",
        "message",
        "listen",
        "connections",
    ] {
        assert!(line.get(key).is_some(), "{key} at the top level: {line}");
    }
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["connections"], 1);
    assert!(line.get("fields").is_none(), "{line}");

    // An error printed before any log line follows the format too.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[[connection]]\nname = \"x\"\n").expect("write");
    let output = credwatch(&[
        "--log-format",
        "json",
        "validate",
        "--config",
        broken.to_str().expect("path"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("JSON");
        assert_eq!(value["level"], "ERROR", "{value}");
        assert!(value["message"]
            .as_str()
            .is_some_and(|m| m.contains("broken.toml")));
    }
}
