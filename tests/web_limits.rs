//! The daemon's HTTP server against idle clients, as `credwatch run` under a low open-file
//! limit (`prlimit --nofile=128`): more half-sent request heads than the process has file
//! descriptors do not keep a scrape out, and the head deadline closes them; `--web.disable-ui`
//! serves only the metrics, health and lifecycle endpoints.

mod common;

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use credwatch::sim::{Simulator, Site};

/// `credwatch run` on a free port with `args`, under `prlimit --nofile=N` when given.
struct Run {
    child: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
    _state: tempfile::TempDir,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn run(simulator: &Simulator, nofile: Option<u32>, args: &[&str]) -> Run {
    simulator.add_site("dc", Site::server());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::write(
        dir.path(),
        "credwatch.toml",
        &format!(
            "[[connection]]\nname = \"c\"\nurl = \"{}\"\ntoken = \"t\"\ninterval = \"1m\"\n",
            simulator.url("dc")
        ),
    );
    let port = common::free_port();
    let mut command = match nofile {
        Some(n) => {
            let mut command = std::process::Command::new("prlimit");
            command
                .arg(format!("--nofile={n}:{n}"))
                .arg(env!("CARGO_BIN_EXE_credwatch"));
            command
        }
        None => std::process::Command::new(env!("CARGO_BIN_EXE_credwatch")),
    };
    let state = common::isolate_state(&mut command);
    let child = command
        .args(["run", "--config", path.to_str().expect("path")])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--no-state"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("credwatch runs");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let client = common::http_client();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "credwatch did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Run {
        child,
        base,
        _dir: dir,
        _state: state,
    }
}

#[tokio::test]
async fn idle_half_requests_beyond_the_file_limit_neither_keep_a_scrape_out_nor_stay_open() {
    let simulator = Simulator::start().await.expect("simulator");
    let daemon = run(&simulator, Some(128), &["--web.head-timeout", "2s"]).await;
    let port: u16 = daemon
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");

    // 200 clients, each with half a request head, more than the 128 files credwatch may open.
    let idle = tokio::task::spawn_blocking(move || {
        let mut idle = Vec::new();
        for _ in 0..200 {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: credwatch\r\n")
                .expect("half a head");
            idle.push(stream);
        }
        idle
    })
    .await
    .expect("join");

    // A scrape still gets through, at once.
    let started = Instant::now();
    let metrics = common::within(
        Duration::from_secs(2),
        common::http_client()
            .get(format!("{}/metrics", daemon.base))
            .send(),
    )
    .await
    .expect("a scrape answered");
    assert_eq!(metrics.status().as_u16(), 200);
    let body = metrics.text().await.expect("body");
    assert!(body.contains("credwatch_connections 1"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // And every idle client is closed: made room for, or past the 2 s head deadline.
    let closed = tokio::task::spawn_blocking(move || {
        let mut closed = 0;
        for mut stream in idle {
            stream
                .set_read_timeout(Some(Duration::from_secs(6)))
                .expect("timeout");
            let mut buffer = [0u8; 256];
            // EOF, or an answer and then EOF, or a reset: closed either way; a read that
            // times out is a connection still open.
            let gone = loop {
                match stream.read(&mut buffer) {
                    Ok(0) => break true,
                    Ok(_) => continue,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break false
                    }
                    Err(_) => break true,
                }
            };
            closed += usize::from(gone);
        }
        closed
    })
    .await
    .expect("join");
    assert_eq!(closed, 200, "every idle connection was closed");

    // The process is healthy afterwards.
    let health = common::get_text(&format!("{}/healthz", daemon.base)).await;
    assert!(!health.is_empty());
}

#[tokio::test]
async fn without_the_ui_only_metrics_health_and_lifecycle_are_served() {
    let simulator = Simulator::start().await.expect("simulator");
    let daemon = run(
        &simulator,
        None,
        &["--web.disable-ui", "--enable-lifecycle"],
    )
    .await;
    let client = common::http_client();
    let status = |path: &'static str| {
        let client = client.clone();
        let url = format!("{}{path}", daemon.base);
        async move { client.get(url).send().await.expect("GET").status().as_u16() }
    };
    assert_eq!(status("/metrics").await, 200);
    assert_eq!(status("/healthz").await, 200);
    assert!(matches!(status("/readyz").await, 200 | 503));
    for hidden in [
        "/",
        "/api/v1/connections",
        "/api/v1/connections/c/history",
        "/api/v1/orgs",
    ] {
        assert_eq!(status(hidden).await, 404, "{hidden}");
    }
    let reload = client
        .post(format!("{}/-/reload", daemon.base))
        .send()
        .await
        .expect("POST");
    assert_eq!(reload.status().as_u16(), 200, "the lifecycle API stays");
}
