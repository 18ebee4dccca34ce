//! `GET /api/v1/connections` as a client of a large fleet reads it: the plain array without
//! parameters (as always); pages worst first then by name that a cursor walks without a gap or
//! a double; filters by state, product, label and text with exact totals; `changed_since`
//! answering only what changed (a probe that changes nothing but its times is not a change),
//! the names that left, and 410 for a token another process issued; gzip for who asks; a clear
//! 400 for a bad parameter; never a secret. A daemon in this process, against the simulator.

mod common;

use std::collections::BTreeSet;
use std::io::Read as _;
use std::time::Duration;

use credwatch::sim::{Pat, Simulator, Site, User};
use serde_json::Value;

const USERS: usize = 6;

/// Six Data Center PATs (`svc-0`..`svc-5`, team `a` for even numbers, `b` for odd) and a
/// Confluence connection (`wiki`) to a closed port; `skip` is left out of the configuration.
fn configuration(simulator: &Simulator, closed: u16, skip: Option<usize>) -> String {
    let mut toml = String::from(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\nauth_failure_interval = \"1s\"\n\n",
    );
    for i in (0..USERS).filter(|i| Some(*i) != skip) {
        let team = if i % 2 == 0 { "a" } else { "b" };
        toml.push_str(&format!(
            "[[connection]]\nname = \"svc-{i}\"\nurl = \"{}\"\ntoken = \"secret-token-{i}\"\nlabels = {{ team = \"{team}\" }}\n\n",
            simulator.url("dc")
        ));
    }
    toml.push_str(&format!(
        "[[connection]]\nname = \"wiki\"\nproduct = \"confluence\"\nurl = \"http://127.0.0.1:{closed}\"\ntoken = \"secret-token-wiki\"\n"
    ));
    toml
}

async fn get(url: &str) -> (u16, String) {
    let response = common::within(
        Duration::from_secs(30),
        common::http_client().get(url).send(),
    )
    .await
    .expect("GET");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    assert!(!body.contains("secret-token"), "a secret in {url}: {body}");
    (status, body)
}

async fn json(url: &str) -> Value {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

fn names(answer: &Value) -> Vec<String> {
    answer["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect()
}

async fn state_of(base: &str, name: &str) -> String {
    let one = json(&format!("{base}/api/v1/connections/{name}")).await;
    one["state"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn pages_filters_changes_and_gzip() {
    let simulator = Simulator::start().await.expect("simulator");
    let mut site = Site::server();
    // No rate limit: a probe answered 429 would change a reason, and this test counts changes.
    site.bucket = None;
    for i in 0..USERS {
        let mut pat = Pat::new(
            i as u64 + 1,
            "credwatch",
            &format!("secret-token-{i}"),
            Some(90),
        );
        pat.revoked = i == 1 || i == 4;
        site = site.with_user(User::new(&format!("svc-{i}")).with_pat(pat));
    }
    simulator.add_site("dc", site);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::write(
        dir.path(),
        "credwatch.toml",
        &configuration(&simulator, closed, None),
    );
    let daemon = common::start_daemon(&path, true).await;
    let base = format!("http://{}", daemon.addr());
    for (name, state) in [
        ("svc-0", "valid"),
        ("svc-1", "invalid"),
        ("svc-4", "invalid"),
        ("svc-5", "valid"),
    ] {
        common::eventually(Duration::from_secs(20), name, || {
            let base = base.clone();
            async move { state_of(&base, name).await == state }
        })
        .await;
    }
    common::until_ready(&base, Duration::from_secs(20)).await;

    // Without parameters: the array of old, by name.
    let array: Value = json(&format!("{base}/api/v1/connections")).await;
    let listed: Vec<&str> = array
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        listed,
        ["svc-0", "svc-1", "svc-2", "svc-3", "svc-4", "svc-5", "wiki"]
    );

    // Pages of 3, worst first then by name, walked by their cursors.
    let mut walked = Vec::new();
    let mut url = format!("{base}/api/v1/connections?limit=3");
    let first = json(&url).await;
    loop {
        let page = json(&url).await;
        assert!(names(&page).len() <= 3);
        walked.extend(names(&page));
        match page["next"].as_str() {
            Some(next) => {
                let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
                url = format!("{base}/api/v1/connections?limit=3&cursor={next}");
            }
            None => break,
        }
    }
    assert_eq!(
        walked,
        ["svc-1", "svc-4", "wiki", "svc-0", "svc-2", "svc-3", "svc-5"]
    );
    let totals = &first["totals"];
    assert_eq!(
        (
            totals["valid"].as_u64(),
            totals["invalid"].as_u64(),
            totals["unknown"].as_u64(),
            totals["locked"].as_u64()
        ),
        (Some(4), Some(2), Some(1), Some(0))
    );

    // Filters; the totals count what matches every filter but the state.
    let cases: [(&str, &[&str]); 6] = [
        ("state=invalid", &["svc-1", "svc-4"]),
        ("label=team:a", &["svc-4", "svc-0", "svc-2"]),
        ("q=SVC-1", &["svc-1"]),
        ("product=confluence", &["wiki"]),
        ("product=jira&state=valid&label=team:b", &["svc-3", "svc-5"]),
        ("q=unauthorized&limit=1", &["svc-1"]),
    ];
    for (query, expected) in cases {
        let answer = json(&format!("{base}/api/v1/connections?{query}")).await;
        assert_eq!(names(&answer), expected, "{query}");
    }
    let team_a = json(&format!(
        "{base}/api/v1/connections?label=team:a&state=valid"
    ))
    .await;
    assert_eq!(team_a["totals"]["valid"], 2);
    assert_eq!(team_a["totals"]["invalid"], 1);

    // A bad parameter is a 400 that says what is wrong.
    for (query, said) in [
        ("state=fine", "state: \"fine\" is not a state"),
        (
            "limit=0",
            "limit: \"0\" is not a whole number from 1 to 1000",
        ),
        ("product=trello", "product: \"trello\" is not a product"),
        ("cursor=nothing", "is not a cursor this API hands out"),
        (
            "changed_since=yesterday",
            "is not a token this API hands out",
        ),
        ("order=name", "unknown query parameter \"order\""),
    ] {
        let (status, body) = get(&format!("{base}/api/v1/connections?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(said), "{query}: {body}");
    }

    // Nothing changed since the token, though every connection is probed each second.
    let token = first["changes"].as_str().expect("changes").to_owned();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let quiet = json(&format!("{base}/api/v1/connections?changed_since={token}")).await;
    assert_eq!(names(&quiet), Vec::<String>::new(), "{quiet}");
    assert_eq!(quiet["removed"], serde_json::json!([]));

    // One credential breaks: it alone is listed, with the totals as they now stand; a view of
    // valid credentials hears that it left.
    common::revoke(&simulator, "dc", 0);
    common::eventually(Duration::from_secs(20), "svc-0 invalid", || {
        let base = base.clone();
        async move { state_of(&base, "svc-0").await == "invalid" }
    })
    .await;
    let changed = json(&format!("{base}/api/v1/connections?changed_since={token}")).await;
    assert_eq!(names(&changed), ["svc-0"], "{changed}");
    assert_eq!(changed["connections"][0]["state"], "invalid");
    assert_eq!(changed["totals"]["invalid"], 3);
    let valid_view = json(&format!(
        "{base}/api/v1/connections?changed_since={token}&state=valid"
    ))
    .await;
    assert_eq!(names(&valid_view), Vec::<String>::new());
    assert_eq!(valid_view["removed"], serde_json::json!(["svc-0"]));

    // A reload removes svc-5: the feed names it.
    let before_reload = changed["changes"].as_str().expect("changes").to_owned();
    std::fs::write(&path, configuration(&simulator, closed, Some(5))).expect("write");
    let reloaded = common::http_client()
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .expect("reload");
    assert_eq!(reloaded.status(), 200);
    let after = json(&format!(
        "{base}/api/v1/connections?changed_since={before_reload}"
    ))
    .await;
    assert_eq!(after["removed"], serde_json::json!(["svc-5"]), "{after}");

    // A token this process did not issue (another daemon's, or one it never reached) is 410.
    let other = common::start_daemon(&path, false).await;
    let other_token = json(&format!(
        "http://{}/api/v1/connections?limit=1",
        other.addr()
    ))
    .await["changes"]
        .as_str()
        .expect("changes")
        .to_owned();
    let (status, body) = get(&format!(
        "{base}/api/v1/connections?changed_since={other_token}"
    ))
    .await;
    assert_eq!(status, 410, "{body}");
    assert!(body.contains("load the connections in full"), "{body}");
    let (epoch, _) = token.split_once('-').expect("token");
    let (status, _) = get(&format!(
        "{base}/api/v1/connections?changed_since={epoch}-999999-0"
    ))
    .await;
    assert_eq!(status, 410);

    // One connection by name; an unknown one is 404.
    assert_eq!(
        json(&format!("{base}/api/v1/connections/wiki")).await["product"],
        "confluence"
    );
    assert_eq!(
        get(&format!("{base}/api/v1/connections/nobody")).await.0,
        404
    );

    // gzip for who asks: the same array, compressed.
    let response = common::http_client()
        .get(format!("{base}/api/v1/connections"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let compressed = response.bytes().await.expect("body");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut text)
        .expect("gzip");
    let decoded: Value = serde_json::from_str(&text).expect("JSON");
    let decoded: BTreeSet<&str> = decoded
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(decoded.len(), USERS, "{decoded:?}");
    assert!(!text.contains("secret-token"));
    other.shutdown(Duration::from_secs(1)).await;
    daemon.shutdown(Duration::from_secs(1)).await;
}

/// A rotation that falls due with time, not with a probe, is a change: `changed_since` sends
/// the row (its place and its mark move) though nothing but the clock moved.
#[tokio::test]
async fn a_rotation_that_falls_due_with_time_is_a_change() {
    let simulator = Simulator::start().await.expect("simulator");
    // Due 14 days (rotate_before's default) before an expiry Jira's PAT list says is 14 days
    // and 3 seconds away.
    let expiry = chrono::Utc::now() + chrono::Duration::days(14) + chrono::Duration::seconds(3);
    let mut pat = Pat::new(1, "t", "secret-token-r", None);
    pat.expiring_at = Some(expiry);
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new("svc").with_pat(pat)),
    );
    // A name whose first probe comes early in its hour-long interval.
    let name = common::early_name("soon", Duration::from_secs(3600));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::write(
        dir.path(),
        "credwatch.toml",
        &format!(
            "[[connection]]\nname = \"{name}\"\nurl = \"{}\"\ntoken = \"secret-token-r\"\ninterval = \"1h\"\n",
            simulator.url("dc"),
        ),
    );
    let daemon = common::start_daemon(&path, true).await;
    let base = format!("http://{}", daemon.addr());
    common::eventually(Duration::from_secs(20), "probed", || {
        let base = base.clone();
        let name = name.clone();
        async move { state_of(&base, &name).await == "valid" }
    })
    .await;
    let first = json(&format!("{base}/api/v1/connections?limit=10")).await;
    assert_eq!(first["rotation_due"], 0, "{first}");
    let token = first["changes"].as_str().expect("token").to_owned();
    // Nothing probes it again within the hour: only time passes.
    common::eventually(Duration::from_secs(10), "its rotation due", || {
        let url = format!("{base}/api/v1/connections?changed_since={token}");
        let name = name.clone();
        async move {
            let changed = json(&url).await;
            names(&changed) == [name] && changed["rotation_due"] == 1
        }
    })
    .await;
    let row = json(&format!("{base}/api/v1/connections/{name}")).await;
    assert_eq!(row["rotation_due"], true, "{row}");
    assert_eq!(row["probes_total"], 1, "no probe moved it");
    daemon.shutdown(Duration::from_secs(1)).await;
}
