//! Confluence beside Jira, through the binary and counted at the simulator: a Confluence
//! Basic account under two names (plus a `check` from another file) gets at most 2 failed
//! logins; a Confluence PAT's expiry comes from Confluence's own token list (dates in
//! `+0000`) through both `check` and the daemon; Jira and Confluence on one host are separate
//! login accounts and separate politeness sites; configuration errors say what is not
//! supported. The classification of every Confluence answer is in `tests/agreement.rs`.

mod common;

use std::time::Duration;

use common::process::Running;
use common::{api_connection, eventually};
use credwatch::config::Config;
use credwatch::sim::{Pat, Simulator, Site, User};

fn basic(name: &str, url: &str, username: &str) -> String {
    format!(
        "[[connection]]\nname = \"{name}\"\nproduct = \"confluence\"\nurl = \"{url}\"\nauth = \"basic\"\nusername = \"{username}\"\npassword_file = \"pw\"\ninterval = \"1s\"\ntimeout = \"900ms\"\nauth_failure_interval = \"1s\"\nbackoff_initial = \"1s\"\n"
    )
}

#[tokio::test]
async fn a_confluence_account_under_two_names_and_a_check_gets_two_failed_logins() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "wiki",
        Site::confluence_server().with_user(User::new("svc-wiki").with_password("the-right-one")),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(dir.path(), "pw", "wrong\n");
    let url = simulator.url("wiki");
    let config = common::write(
        dir.path(),
        "credwatch.toml",
        &[
            basic("wiki-a", &url, "svc-wiki"),
            basic("wiki-b", &format!("{url}/"), "SVC-Wiki"),
        ]
        .concat(),
    );
    let other = common::write(
        dir.path(),
        "other.toml",
        &basic("wiki-theirs", &url, "Svc-Wiki"),
    );
    let state = dir.path().join("state");
    let running = Running::start(&config, &state, &dir.path().join("stderr.log"));
    running.first_answer().await;
    let checked = common::process::check_json(&other, &state, &[]).await;
    assert_eq!(checked.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&checked.stdout).expect("JSON");
    assert_eq!(report[0]["product"], "confluence", "{report}");
    common::all_paused(&running.base, &["wiki-a", "wiki-b"]).await;
    // Time for every name to have tried again, had the budget been per name.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spent = common::basic_logins(&simulator, "wiki");
    assert_eq!(spent, 2, "one budget of 2 for the account, used");
    let site = simulator.site("wiki").expect("site");
    assert_eq!(site.users[0].failed_logins, 2, "Confluence's own count");
    let api = api_connection(&running.base, "wiki-a").await;
    assert_eq!(api["product"], "confluence");
    assert_eq!(api["paused"], "failed_logins", "{api}");
    assert_eq!(api["login_account"], format!("{url} svc-wiki"));
    assert!(
        api["hint"].as_str().is_some_and(|h| !h.contains("Jira")),
        "the pause's hint speaks of Confluence: {api}"
    );
    let metrics = common::get_text(&format!("{}/metrics", running.base)).await;
    assert!(
        metrics.contains("atlassian_product=\"confluence\""),
        "credwatch_connection_info has the product"
    );
    running.stop("-TERM");
}

#[tokio::test]
async fn a_confluence_pat_expiry_comes_from_confluence_s_token_list() {
    let simulator = Simulator::start().await.expect("simulator");
    let pat = Pat::new(7, "publisher", "wiki-pat", Some(5));
    let expiry = pat.expiring_at.expect("an expiry");
    simulator.add_site(
        "wiki",
        Site::confluence_server()
            .with_user(User::new("svc-wiki").with_pat(pat))
            .with_user(User::new("svc-other").with_pat(Pat::new(8, "x", "other", Some(50)))),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let url = simulator.url("wiki");
    let config = common::write(
        dir.path(),
        "credwatch.toml",
        &format!("[[connection]]\nname = \"wiki-publisher\"\nproduct = \"confluence\"\nurl = \"{url}\"\ntoken = \"wiki-pat\"\ntoken_name = \"publisher\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n"),
    );
    let state = dir.path().join("state");
    let checked = common::process::check_json(&config, &state, &[]).await;
    let report: serde_json::Value = serde_json::from_slice(&checked.stdout).expect("JSON");
    let running = Running::start(&config, &state, &dir.path().join("stderr.log"));
    running.first_answer().await;
    eventually(Duration::from_secs(10), "the list read", || async {
        !api_connection(&running.base, "wiki-publisher").await["expires_at"].is_null()
    })
    .await;
    let api = api_connection(&running.base, "wiki-publisher").await;
    for (who, view) in [("check", &report[0]), ("daemon", &api)] {
        assert_eq!(view["state"], "valid", "{who}: {view}");
        assert_eq!(view["expiry_source"], "confluence", "{who}: {view}");
        assert_eq!(view["rotation_due"], true, "{who}: 5 days left");
        let read = chrono::DateTime::parse_from_rfc3339(view["expires_at"].as_str().expect("time"))
            .expect("RFC 3339");
        assert_eq!(
            read.timestamp(),
            expiry.timestamp(),
            "{who}: the +0000 date, read to the second"
        );
    }
    let listed = simulator
        .requests_for("wiki")
        .iter()
        .filter(|r| r.path.ends_with("/rest/pat/latest/tokens"))
        .count();
    assert!(listed >= 2, "check and the daemon both read the list");
    let identity = simulator
        .requests_for("wiki")
        .iter()
        .filter(|r| r.path.ends_with("/rest/api/user/current"))
        .count();
    assert!(identity >= 2, "the identity probe is Confluence's");

    // The store keeps what Confluence told across a restart: with the site hanging now,
    // the restarted daemon still knows the verdict and the expiry.
    running.stop("-TERM");
    simulator.update_site("wiki", |site| site.front = credwatch::sim::Front::Hang);
    let restarted = Running::start(&config, &state, &dir.path().join("stderr.log"));
    restarted.first_answer().await;
    let kept = api_connection(&restarted.base, "wiki-publisher").await;
    assert_eq!(kept["state"], "valid", "{kept}");
    assert_eq!(kept["product"], "confluence");
    assert_eq!(kept["expiry_source"], "confluence", "{kept}");
    assert_eq!(kept["expires_at"], api["expires_at"], "{kept}");
    restarted.stop("-TERM");
}

#[test]
fn jira_and_confluence_on_one_host_are_separate_accounts_and_sites() {
    let config = Config::from_sources(&[(
        "t.toml".into(),
        "[[connection]]\nname = \"jira\"\nurl = \"https://atlassian.example.com/jira\"\nauth = \"basic\"\nusername = \"svc\"\npassword = \"p\"\n\n\
         [[connection]]\nname = \"wiki\"\nproduct = \"confluence\"\nurl = \"https://atlassian.example.com/confluence\"\nauth = \"basic\"\nusername = \"svc\"\npassword = \"p\"\n"
            .to_owned(),
    )])
    .expect("loads");
    let [jira, wiki] = [&config.connections[0], &config.connections[1]];
    assert_ne!(jira.login_account(), wiki.login_account());
    assert_ne!(jira.site(), wiki.site(), "one host, two politeness sites");
    assert_eq!(
        wiki.myself_url().as_str(),
        "https://atlassian.example.com/confluence/rest/api/user/current"
    );
}

#[test]
fn what_confluence_does_not_support_is_a_configuration_error() {
    let load = |keys: &str| {
        common::refused(&format!(
            "[[connection]]\nname = \"wiki\"\nproduct = \"confluence\"\n{keys}\n"
        ))
    };
    let oauth = load("url = \"https://acme.atlassian.net/wiki\"\nauth = \"oauth_client_credentials\"\nclient_id = \"c\"\nclient_secret = \"s\"");
    assert!(
        oauth.contains("not supported for confluence yet"),
        "{oauth}"
    );
    let no_wiki = load("url = \"https://acme.atlassian.net\"\nusername = \"a@b.c\"\ntoken = \"t\"");
    assert!(no_wiki.contains("/wiki"), "{no_wiki}");
    let unknown = common::refused(
        "[[connection]]\nname = \"x\"\nproduct = \"bamboo\"\nurl = \"https://x.example.com\"\ntoken = \"t\"\n",
    );
    assert!(unknown.contains("unknown product \"bamboo\""), "{unknown}");
}
