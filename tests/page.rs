//! The status page as an SRE keeps it open: its rows are the API's, a state change shows up in
//! place without a reload, updates pause on request, and a stopped daemon is marked (in
//! Debian's chromium, driven by playwright-core through `tests/browser/page.mjs`); the history
//! timeline shows a credential that broke and recovered, and the filters work without script. The daemon runs in this process against the simulator, probing every second.

mod common;

use std::time::{Duration, Instant};

use credwatch::sim::{Pat, Simulator, Site, User};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// A daemon over one Data Center site with the PATs `tokens` (user, token), each connection
/// named after its user, probing every second and retrying a rejection a second later.
async fn daemon(
    simulator: &Simulator,
    tokens: &[(&str, &str)],
) -> (credwatch::daemon::Daemon, tempfile::TempDir) {
    let mut site = Site::server();
    let mut toml = String::from(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\nauth_failure_interval = \"1s\"\n\n",
    );
    for (i, (user, token)) in tokens.iter().enumerate() {
        site = site.with_user(User::new(user).with_pat(Pat::new(
            i as u64 + 1,
            "credwatch",
            token,
            Some(90),
        )));
        toml.push_str(&format!(
            "[[connection]]\nname = \"{user}\"\nurl = \"{}\"\ntoken = \"{token}\"\nlabels = {{ team = \"platform\" }}\n\n",
            simulator.url("dc")
        ));
    }
    simulator.add_site("dc", site);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::write(dir.path(), "credwatch.toml", &toml);
    (common::start_daemon(&path, false).await, dir)
}

async fn connections(base: &str) -> Vec<Value> {
    serde_json::from_str(&common::get_text(&format!("{base}/api/v1/connections")).await)
        .expect("JSON")
}

/// Waits until the API shows connection `name` in `state`.
async fn until_state(base: &str, name: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = connections(base).await;
        if all.iter().any(|c| c["name"] == name && c["state"] == state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never became {state}: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn revoke(simulator: &Simulator, user_index: usize, revoked: bool) {
    simulator
        .update_site("dc", |site| {
            site.users[user_index].pats[0].revoked = revoked
        })
        .expect("site");
}

#[tokio::test]
async fn rows_equal_the_api_and_a_state_change_shows_up_without_a_reload() {
    let simulator = Simulator::start().await.expect("simulator");
    let (daemon, _dir) = daemon(&simulator, &[("svc-a", "token-a"), ("svc-b", "token-b")]).await;
    let base = format!("http://{}", daemon.addr());
    until_state(&base, "svc-a", "valid").await;
    until_state(&base, "svc-b", "valid").await;

    let browser_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser (bash .ci/run does)"
    );
    let mut child = tokio::process::Command::new("node")
        .arg(browser_dir.join("page.mjs"))
        .args(["live", &format!("{base}/?refresh=1"), "svc-b", "invalid"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next_line = async || {
        common::within(Duration::from_secs(60), lines.next_line())
            .await
            .expect("read")
            .expect("a line from page.mjs")
    };
    let first: Value = serde_json::from_str(&next_line().await).expect("rows and API");
    assert_eq!(first["rows"], first["api"], "the page's rows are the API's");
    assert_eq!(first["rows"]["svc-b"]["state"], "valid");
    assert_eq!(next_line().await, "ready");

    revoke(&simulator, 1, true);
    let changed: Value = serde_json::from_str(&next_line().await).expect("the change");
    assert_eq!(changed["changed"], true);
    let history = changed["history"].as_str().expect("history text");
    assert!(
        history.contains("valid → invalid (unauthorized)"),
        "the timeline's list was redrawn in place: {history}"
    );
    let paused: Value = serde_json::from_str(&next_line().await).expect("the pause");
    assert_eq!(paused["paused"]["pressed"], "true");
    assert_eq!(paused["paused"]["note"], "Updates are paused.");

    // The daemon stops answering: the page says so, and what it shows is as of when.
    daemon.shutdown(Duration::from_secs(1)).await;
    let stale: Value = serde_json::from_str(&next_line().await).expect("the stale mark");
    let text = stale["stale"].as_str().expect("text");
    assert!(
        text.starts_with("credwatch is not answering: what you see is as of "),
        "{text}"
    );
    let status = common::within(Duration::from_secs(30), child.wait())
        .await
        .expect("exit");
    assert!(status.success(), "page.mjs live: {status}");
}

/// The part of the page that is connection `name`'s row.
fn row<'a>(page: &'a str, name: &str) -> &'a str {
    let start = page
        .find(&format!("<tr data-connection=\"{name}\""))
        .unwrap_or_else(|| panic!("no row for {name}"));
    let end = page[start..].find("</tr>").expect("row end");
    &page[start..start + end]
}

#[tokio::test]
async fn the_timeline_shows_a_credential_that_broke_and_recovered() {
    let simulator = Simulator::start().await.expect("simulator");
    let (daemon, _dir) = daemon(
        &simulator,
        &[("svc-ci", "token-ci"), ("svc-ok", "token-ok")],
    )
    .await;
    let base = format!("http://{}", daemon.addr());
    until_state(&base, "svc-ci", "valid").await;
    revoke(&simulator, 0, true);
    until_state(&base, "svc-ci", "invalid").await;
    revoke(&simulator, 0, false);
    until_state(&base, "svc-ci", "valid").await;

    let history: Value = serde_json::from_str(
        &common::get_text(&format!("{base}/api/v1/connections/svc-ci/history")).await,
    )
    .expect("history JSON");
    let changes: Vec<(String, String)> = history["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .map(|t| (t["from"].to_string(), t["to"].to_string()))
        .collect();
    assert_eq!(
        changes,
        [
            ("\"invalid\"".into(), "\"valid\"".into()),
            ("\"valid\"".into(), "\"invalid\"".into()),
            ("\"unknown\"".into(), "\"valid\"".into()),
        ],
        "newest first"
    );

    let page = common::get_text(&format!("{base}/")).await;
    let broke = row(&page, "svc-ci");
    assert_eq!(broke.matches("<span class=\"d s-").count(), 30, "{broke}");
    // Today had an invalid verdict: the worst of the day colours it; the 29 days before
    // credwatch watched the connection are unknown.
    assert!(
        broke.contains("aria-label=\"last 30 days: 29 unknown, 1 invalid\""),
        "{broke}"
    );
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(
        broke.contains(&format!(
            "<span class=\"d s-invalid\" title=\"{today}: invalid\"></span></div>"
        )),
        "{broke}"
    );
    assert!(broke.contains("State changes (3)"), "{broke}");
    let listed: Vec<&str> = broke
        .split("</time>: ")
        .skip(1)
        .filter_map(|item| item.split(" (").next())
        .collect();
    assert_eq!(
        listed,
        ["invalid → valid", "valid → invalid", "unknown → valid"],
        "{broke}"
    );
    let steady = row(&page, "svc-ok");
    assert!(
        steady.contains("aria-label=\"last 30 days: 29 unknown, 1 valid\""),
        "{steady}"
    );

    // The filters work without the script: a plain GET form.
    let invalid_only = common::get_text(&format!("{base}/?state=invalid")).await;
    assert!(
        !invalid_only.contains("<tr data-connection="),
        "nothing is invalid now"
    );
    assert!(invalid_only.contains("No connection matches the filters."));
    let by_text = common::get_text(&format!("{base}/?q=SVC-OK&team=platform")).await;
    assert!(by_text.contains("<tr data-connection=\"svc-ok\""));
    assert!(!by_text.contains("<tr data-connection=\"svc-ci\""));
    // ... and so do the pages: a page of one row links to the next, which links to none.
    let next_link = |page: &str| {
        let at = page
            .find("id=\"next-page\" rel=\"next\" href=\"")
            .expect("next link");
        let rest = &page[at..];
        let href = rest
            .split("href=\"")
            .nth(1)
            .and_then(|h| h.split('"').next());
        let hidden = rest
            .split('>')
            .next()
            .is_some_and(|tag| tag.contains(" hidden"));
        (href.expect("href").replace("&#38;", "&"), hidden)
    };
    let first = common::get_text(&format!("{base}/?limit=1&label=team:platform")).await;
    assert_eq!(first.matches("<tr data-connection=").count(), 1);
    assert!(
        first.contains("<tr data-connection=\"svc-ci\""),
        "by name, both valid"
    );
    let (href, hidden) = next_link(&first);
    assert!(!hidden && href.contains("cursor="), "{href}");
    let second = common::get_text(&format!("{base}{href}")).await;
    assert_eq!(second.matches("<tr data-connection=").count(), 1);
    assert!(second.contains("<tr data-connection=\"svc-ok\""));
    assert!(second.contains("Rows 2–2"));
    assert!(next_link(&second).1, "the last page links to no next one");
    let bad = common::http_client()
        .get(format!("{base}/?state=broken"))
        .send()
        .await
        .expect("GET");
    assert_eq!(bad.status(), 400);
    assert!(bad
        .text()
        .await
        .expect("body")
        .contains("\"broken\" is not a state"));
    daemon.shutdown(Duration::from_secs(1)).await;
}

/// The rows a line of `page.mjs scale` lists: (name, state, shown in the first screen).
fn listed(rows: &Value) -> Vec<(String, String, bool)> {
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().expect("name").to_owned(),
                r["state"].as_str().expect("state").to_owned(),
                r["visible"].as_bool().expect("visible"),
            )
        })
        .collect()
}

/// At 5,000 connections the page holds one page of rows, shows at least 15 in the first
/// screen at 1280×900, worst first, with exact totals; two refreshes while nothing changes
/// state fetch under 100 KB; the search box finds a credential of a later page; and
/// credentials that break (one of the page, one of a later page) take their place in it once
/// each, the page staying the server's first page.
#[tokio::test]
async fn five_thousand_connections_a_page_at_a_time() {
    let (simulator, daemon, _dir) =
        common::scale_daemon(5_000, Duration::from_secs(10), &[17, 4242]).await;
    let base = format!("http://{}", daemon.addr());
    common::until_ready(&base, Duration::from_secs(120)).await;
    until_state(&base, "scale-17", "invalid").await;
    until_state(&base, "scale-4242", "invalid").await;

    let browser_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let mut child = tokio::process::Command::new("node")
        .arg(browser_dir.join("page.mjs"))
        .args(["scale", &format!("{base}/?refresh=1"), "scale-3141"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next_line = async || {
        common::within(Duration::from_secs(120), lines.next_line())
            .await
            .expect("read")
            .expect("a line from page.mjs")
    };

    let loaded: Value = serde_json::from_str(&next_line().await).expect("the first screen");
    let rows = listed(&loaded["first"]["rows"]);
    assert_eq!(rows.len(), 50, "one page of rows in the DOM, not 5,000");
    let shown = rows.iter().filter(|(_, _, visible)| *visible).count();
    assert!(shown >= 15, "{shown} rows in the first screen at 1280×900");
    let top: Vec<(&str, &str)> = rows[..3]
        .iter()
        .map(|(name, state, _)| (name.as_str(), state.as_str()))
        .collect();
    assert_eq!(
        top,
        [
            ("scale-17", "invalid"),
            ("scale-4242", "invalid"),
            ("scale-0", "valid")
        ]
    );
    let totals = &loaded["first"]["totals"];
    assert_eq!(
        (totals["valid"].as_u64(), totals["invalid"].as_u64()),
        (Some(4998), Some(2))
    );
    let document: u64 = loaded["loaded"]
        .as_array()
        .expect("loaded")
        .iter()
        .filter_map(|r| r["bytes"].as_u64())
        .sum();
    eprintln!("the page's load fetched {document} bytes");

    let refreshes: Value = serde_json::from_str(&next_line().await).expect("the refreshes");
    let fetched = refreshes["refreshes"].as_array().expect("fetched");
    let asked = fetched
        .iter()
        .filter(|r| {
            r["url"]
                .as_str()
                .is_some_and(|u| u.contains("changed_since="))
        })
        .count();
    assert_eq!(asked, 2, "{refreshes}");
    let bytes: u64 = fetched.iter().filter_map(|r| r["bytes"].as_u64()).sum();
    eprintln!("two refreshes fetched {bytes} bytes: {refreshes}");
    assert!(bytes < 100_000, "two refreshes fetched {bytes} bytes");

    let filtered: Value = serde_json::from_str(&next_line().await).expect("the filter");
    let found = listed(&filtered["filtered"]);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].0.as_str(), found[0].2), ("scale-3141", true));

    assert_eq!(next_line().await, "moving");
    common::revoke_scale(&simulator, 0, true);
    common::revoke_scale(&simulator, 999, true);
    use tokio::io::AsyncWriteExt as _;
    stdin
        .write_all(b"scale-0 scale-999\n")
        .await
        .expect("write");
    drop(stdin);
    let moved: Value = serde_json::from_str(&next_line().await).expect("the moves");
    let rows = listed(&moved["moved"]["rows"]);
    let names: Vec<&str> = rows.iter().map(|(name, _, _)| name.as_str()).collect();
    let unique: std::collections::BTreeSet<&&str> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "a row doubled: {names:?}");
    assert_eq!(
        &names[..4],
        ["scale-0", "scale-17", "scale-4242", "scale-999"],
        "worst first"
    );
    let api: Vec<&str> = moved["moved"]["api"]
        .as_array()
        .expect("api")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(names, api, "the page's rows are the server's first page");
    let status = common::within(Duration::from_secs(30), child.wait())
        .await
        .expect("exit");
    assert!(status.success(), "page.mjs scale: {status}");
    daemon.shutdown(Duration::from_secs(5)).await;
}
