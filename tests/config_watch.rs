//! The daemon reloads when its configuration changes on disk: a Kubernetes ConfigMap update
//! (a `..data` symlink swapped over a new directory) adds a connection, a broken edit keeps
//! the running configuration, and `--no-watch-config` turns it off.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{api_connection, eventually, get_json};
use credwatch::sim::{Pat, Simulator, Site, User};

fn connection(name: &str, url: &str) -> String {
    format!("[[connection]]\nname = \"{name}\"\nurl = \"{url}\"\ntoken = \"tok\"\ninterval = \"1m\"\n\n")
}

/// Publishes `text` as the ConfigMap's `credwatch.toml` the way the kubelet does: a new
/// timestamped directory, then an atomic swap of `..data`.
fn publish(root: &Path, version: u32, text: &str) {
    let dir = root.join(format!("..v{version}"));
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("credwatch.toml"), text).expect("write");
    let tmp = root.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..v{version}"), &tmp).expect("link");
    std::fs::rename(&tmp, root.join("..data")).expect("swap");
    let file = root.join("credwatch.toml");
    if !file.exists() {
        std::os::unix::fs::symlink("..data/credwatch.toml", &file).expect("link");
    }
}

async fn names(base: &str) -> Vec<String> {
    get_json(&format!("{base}/api/v1/connections"))
        .await
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn start(config: &Path, watch: Option<Duration>) -> credwatch::daemon::Daemon {
    let loaded = credwatch::config::Config::load(config).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let options = credwatch::daemon::Options {
        watch_config: watch,
        ..credwatch::daemon::Options::new(config.to_owned())
    };
    credwatch::daemon::Daemon::start(
        loaded,
        listener,
        options,
        credwatch::probe::Prober::new().expect("prober"),
    )
    .expect("starts")
}

#[tokio::test]
async fn a_configmap_update_is_reloaded_all_or_nothing_without_a_signal() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new("svc").with_pat(Pat::new(1, "ci", "tok", Some(90)))),
    );
    let url = simulator.url("dc");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    publish(root, 1, &connection("first", &url));
    let daemon = start(root, Some(Duration::from_millis(200))).await;
    let base = format!("http://{}", daemon.addr());
    assert_eq!(names(&base).await, ["first"]);

    publish(
        root,
        2,
        &(connection("first", &url) + &connection("second", &url)),
    );
    eventually(Duration::from_secs(5), "the new connection", || async {
        names(&base).await == ["first", "second"]
    })
    .await;

    // A broken version: the running configuration stays, and the metric says the reload failed.
    publish(root, 3, "[[connection]]\nname = \"broken\"\n");
    eventually(Duration::from_secs(5), "the failed reload", || async {
        let metrics = common::get_text(&format!("{base}/metrics")).await;
        common::sample(&metrics, "credwatch_config_last_reload_successful") == Some(0.0)
    })
    .await;
    assert_eq!(names(&base).await, ["first", "second"]);
    assert!(api_connection(&base, "second").await["name"] == "second");
    daemon.shutdown(Duration::from_secs(1)).await;

    // Turned off: a change waits for SIGHUP. A watching daemon beside it is the event: once it
    // has reloaded the change, the unwatched one has had the same chance, and kept its own.
    publish(root, 4, &connection("first", &url));
    let daemon = start(root, None).await;
    let base = format!("http://{}", daemon.addr());
    let watching = start(root, Some(Duration::from_millis(200))).await;
    let watching_base = format!("http://{}", watching.addr());
    // Both serve (and so both have looked at the files) before the change.
    assert_eq!(names(&watching_base).await, ["first"]);
    assert_eq!(names(&base).await, ["first"]);
    publish(root, 5, &connection("only", &url));
    eventually(
        Duration::from_secs(5),
        "the watching daemon reloaded",
        || async { names(&watching_base).await == ["only"] },
    )
    .await;
    watching.shutdown(Duration::from_secs(1)).await;
    assert_eq!(
        names(&base).await,
        ["first"],
        "not reloaded without the watch"
    );
    daemon.reload().await.expect("reload");
    assert_eq!(names(&base).await, ["only"]);
    daemon.shutdown(Duration::from_secs(1)).await;
}
