//! `credwatch demo` end to end, and the status page in a real browser (Debian's headless
//! chromium, which `.ci/run` installs): the rendered rows match the API, axe-core (driven by
//! playwright-core, `tests/browser/page.mjs`) finds no violation of any impact at a desktop
//! (1280×900) and a phone (390×844) width, screenshots of both are saved under `artifacts/`
//! (docs/ shows them), and markup
//! from the configuration or from Jira is shown as text.

mod common;

use common::sample;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use credwatch::sim::{fleet, Pat, Simulator, Site, User};
use serde_json::Value;

use common::Demo;

const CHROMIUM: &str = "/usr/bin/chromium";

async fn get(url: &str) -> String {
    common::get_text(url).await
}

async fn api(base: &str) -> Vec<Value> {
    serde_json::from_str(&get(&format!("{base}/api/v1/connections")).await).expect("JSON")
}

/// Waits until every member of the fleet shows the state and reason it is there to show.
/// The demo's connections whose rotation is due: dc-sync-expiring (Jira's list),
/// cloud-sync-bot (the organization's list), wiki-dc-export-expiring (Confluence's list) and
/// bb-release-expiring (its owner's list in Bitbucket).
const ROTATION_DUE: [&str; 4] = [
    "dc-sync-expiring",
    "cloud-sync-bot",
    "wiki-dc-export-expiring",
    "bb-release-expiring",
];

async fn settled(base: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let connections = api(base).await;
        let wrong: Vec<String> = fleet::members()
            .iter()
            .filter_map(|member| {
                let found = connections.iter().find(|c| c["name"] == member.name)?;
                let ok = found["state"] == member.expected_state
                    && found["reason"] == member.expected_reason;
                (!ok).then(|| format!("{}: {} {}", member.name, found["state"], found["reason"]))
            })
            .collect();
        // The token lists are read too: every product's list that says rotation is due.
        let listed = ROTATION_DUE.iter().all(|name| {
            connections
                .iter()
                .any(|c| c["name"] == *name && c["rotation_due"] == true)
        });
        if wrong.is_empty() && listed && connections.len() == fleet::members().len() {
            return connections;
        }
        assert!(
            Instant::now() < deadline,
            "the demo fleet did not settle: {wrong:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs headless chromium with the flags a closed network and root need, and `args`.
async fn chromium(args: Vec<String>) -> std::process::Output {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (bash .ci/run does)"
    );
    let profile = tempfile::tempdir().expect("profile dir");
    let mut all: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    all.push(format!("--user-data-dir={}", profile.path().display()));
    all.extend(args);
    let job = tokio::task::spawn_blocking(move || {
        let output = Command::new(CHROMIUM)
            .args(&all)
            .output()
            .expect("chromium runs");
        drop(profile);
        output
    });
    common::within(Duration::from_secs(90), job)
        .await
        .expect("joins")
}

/// The `(state, reason)` of every row in a rendered DOM, by connection name.
fn rendered_rows(dom: &str) -> BTreeMap<String, (String, String)> {
    let attribute = |tag: &str, name: &str| -> String {
        let start = tag
            .find(&format!("{name}=\""))
            .map(|i| i + name.len() + 2)
            .expect(name);
        tag[start..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    dom.split("<tr ")
        .skip(1)
        .filter(|chunk| chunk.starts_with("data-connection="))
        .map(|chunk| {
            let tag = chunk.split('>').next().unwrap_or_default();
            (
                attribute(tag, "data-connection"),
                (attribute(tag, "data-state"), attribute(tag, "data-reason")),
            )
        })
        .collect()
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

#[tokio::test]
async fn the_demo_shows_every_state_and_reason_through_the_api_and_the_metrics() {
    let demo = Demo::start();
    let connections = settled(&demo.base).await;
    assert!(connections.len() >= 10, "a fleet of at least 10");
    let states: std::collections::BTreeSet<&str> = connections
        .iter()
        .filter_map(|c| c["state"].as_str())
        .collect();
    for state in ["valid", "invalid", "locked", "forbidden", "unknown"] {
        assert!(states.contains(state), "the fleet shows {state}");
    }
    let metrics = get(&format!("{}/metrics", demo.base)).await;
    for member in fleet::members() {
        let series = format!(
            "credwatch_credential_state{{connection=\"{}\",state=\"{}\"}}",
            member.name, member.expected_state
        );
        assert_eq!(sample(&metrics, &series), Some(1.0), "{series}");
    }
    assert_eq!(
        sample(
            &metrics,
            "credwatch_token_rotation_due{connection=\"dc-sync-expiring\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "credwatch_token_rotation_due{connection=\"dc-reports\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "credwatch_token_never_expires{connection=\"dc-legacy-bot\"}"
        ),
        Some(1.0)
    );
    for (connection, source) in [
        ("dc-reports", "jira"),
        ("cloud-ops", "config"),
        ("cloud-burst-limited", "derived"),
    ] {
        let series = format!("credwatch_token_expiry_timestamp_seconds{{connection=\"{connection}\",source=\"{source}\"}}");
        assert!(sample(&metrics, &series).is_some(), "{series}");
    }
    assert!(
        sample(
            &metrics,
            "credwatch_rate_limited_total{connection=\"cloud-burst-limited\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "the burst-limited site was rate limited before it recovered"
    );
    assert_eq!(demo.stop(), Some(0));
}

#[tokio::test]
async fn the_status_page_renders_in_a_real_browser_as_the_api_says() {
    let demo = Demo::start();
    let connections = settled(&demo.base).await;
    let page = format!("{}/", demo.base);
    let output = chromium(vec!["--dump-dom".into(), page.clone()]).await;
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    let rows = rendered_rows(&dom);
    let expected: BTreeMap<String, (String, String)> = connections
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_owned(),
                (
                    c["state"].as_str().expect("state").to_owned(),
                    c["reason"].as_str().unwrap_or("not probed yet").to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(rows, expected, "the rendered rows are the API's");
    let order: Vec<&str> = dom
        .split("data-connection=\"")
        .skip(1)
        .filter_map(|chunk| chunk.split('"').next())
        .collect();
    assert_eq!(
        order.first(),
        Some(&"bb-legacy-basic"),
        "worst first (locked), then by name: {order:?}"
    );
    assert!(
        dom.contains(&format!(
            "data-summary-rotation-due=\"{}\"",
            ROTATION_DUE.len()
        )),
        "{ROTATION_DUE:?}"
    );
    for source in ["(confluence)", "(bitbucket)"] {
        assert!(dom.contains(source), "an expiry from {source}'s list");
    }
    assert!(dom.contains("policy: the token never expires"));
    assert!(dom.contains("stopped (locked)"));
    assert!(dom.contains("(derived)") && dom.contains("(jira)") && dom.contains("(config)"));
    // The demo organization, in a section of its own.
    assert!(
        dom.contains("<tr data-org=\"acme\">"),
        "the organizations' section"
    );
    assert!(
        dom.contains("data-field=\"blocked\">1<"),
        "one blocked token"
    );
    assert!(
        dom.contains("(org_admin)"),
        "an expiry from the organization's list"
    );

    // axe-core in chromium, at a desktop and a phone width; the screenshots of both (the first
    // screen) land in artifacts/ (and, copied by hand, in docs/).
    let dir = artifacts();
    for name in ["status-page-desktop.png", "status-page-phone.png"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let output = common::browser(&["audit", &page, dir.to_str().expect("path")]).await;
    let found: Value = serde_json::from_slice(&output.stdout).expect("the audit's JSON");
    for width in ["desktop", "phone"] {
        let violations = found[width].as_array().expect("violations");
        assert!(
            violations.is_empty(),
            "axe-core at the {width} width: {}",
            serde_json::to_string_pretty(violations).expect("json")
        );
    }
    for name in ["status-page-desktop.png", "status-page-phone.png"] {
        let png = std::fs::read(dir.join(name)).unwrap_or_else(|_| panic!("{name} was written"));
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{name}: {} bytes",
            png.len()
        );
    }
    assert_eq!(demo.stop(), Some(0));
}

#[tokio::test]
async fn markup_from_the_configuration_or_from_jira_is_shown_as_text() {
    let simulator = Simulator::start().await.expect("simulator");
    let hostile = "<script>alert('jira')</script>";
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new(hostile).with_pat(Pat::new(
            1,
            "credwatch",
            "tok",
            Some(30),
        ))),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("credwatch.toml");
    std::fs::write(
        &path,
        format!(
            "[[connection]]\nname = \"hostile\"\nurl = \"{}\"\ntoken = \"tok\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nlabels = {{ note = \"<script>alert('label')</script>\", team = \"a&b\\\"c\" }}\n",
            simulator.url("dc")
        ),
    )
    .expect("write");
    let daemon = common::start_daemon(&path, false).await;
    let base = format!("http://{}", daemon.addr());
    let deadline = Instant::now() + Duration::from_secs(5);
    while api(&base).await[0]["state"] != "valid" {
        assert!(Instant::now() < deadline, "not probed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let html = get(&format!("{base}/")).await;
    // The page's one script is its own refresh; nothing from Jira or the configuration is
    // markup.
    assert_eq!(
        html.matches("<script").count(),
        1,
        "raw markup reached the page"
    );
    assert!(
        !html.contains("<script>alert"),
        "raw markup reached the page"
    );
    assert!(
        html.contains("note=&#60;script&#62;alert(&#39;label&#39;)&#60;/script&#62;"),
        "the label is escaped: {}",
        &html[html.find("note=").unwrap_or(0)..][..80]
    );
    assert!(
        html.contains("&#60;script&#62;alert(&#39;jira&#39;)&#60;/script&#62;"),
        "Jira's account is escaped"
    );
    assert!(html.contains("team=a&#38;b&#34;c"));
    assert!(
        !html.contains("tok<") && !html.contains(">tok"),
        "no secret on the page"
    );

    let output = chromium(vec!["--dump-dom".into(), format!("{base}/")]).await;
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        dom.contains("<tr data-connection=\"hostile\""),
        "the page rendered: {dom}"
    );
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "the browser built no script element but the page's own"
    );
    assert!(
        !dom.contains("<script>alert"),
        "the browser built no script element"
    );
    assert!(
        dom.contains("&lt;script&gt;alert('label')&lt;/script&gt;"),
        "shown as text"
    );
    assert!(
        dom.contains("&lt;script&gt;alert('jira')&lt;/script&gt;"),
        "shown as text"
    );
}
