//! Bitbucket Data Center, through the binary and counted at the simulator: a Basic account
//! under two names (plus a `check` from another file) gets at most 2 failed logins; a personal
//! token's expiry comes from its owner's paged token list, through `check` and the daemon,
//! the owner found by slug; a project token is valid with its expiry unknown and a note that
//! says why; what Bitbucket Data Center does not have is a configuration error. Every
//! simulator here fails its test if credwatch asked a Bitbucket site for a path outside
//! `/rest` and `/scm`; the last test proves that assertion fires. The classification of every
//! Bitbucket answer is in `tests/agreement.rs`.

mod common;

use std::time::Duration;

use common::process::Running;
use common::{api_connection, eventually};
use credwatch::config::Config;
use credwatch::sim::{Pat, Simulator, Site, User};

fn connection(name: &str, url: &str, keys: &str) -> String {
    format!(
        "[[connection]]\nname = \"{name}\"\nproduct = \"bitbucket\"\nurl = \"{url}\"\n{keys}\ninterval = \"1s\"\ntimeout = \"900ms\"\nauth_failure_interval = \"1s\"\nbackoff_initial = \"1s\"\n"
    )
}

#[tokio::test]
async fn a_bitbucket_account_under_two_names_and_a_check_gets_two_failed_logins() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "bb",
        Site::bitbucket().with_user(
            User::new("svc-mirror")
                .with_password("the-right-one")
                .with_pat(Pat::new(1, "mirror", "bb-mirror-token", Some(90))),
        ),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(dir.path(), "pw", "wrong\n");
    common::write(dir.path(), "token", "bb-wrong-token\n");
    let url = simulator.url("bb");
    // A password, and a personal token sent as the password: both are logins of the account.
    let config = common::write(
        dir.path(),
        "credwatch.toml",
        &[
            connection(
                "bb-a",
                &url,
                "auth = \"basic\"\nusername = \"svc-mirror\"\npassword_file = \"pw\"",
            ),
            connection(
                "bb-b",
                &format!("{url}/"),
                "auth = \"basic\"\nusername = \"SVC-Mirror\"\npassword_file = \"token\"",
            ),
        ]
        .concat(),
    );
    let other = common::write(
        dir.path(),
        "other.toml",
        &connection(
            "bb-theirs",
            &url,
            "auth = \"basic\"\nusername = \"Svc-Mirror\"\npassword_file = \"pw\"",
        ),
    );
    let state = dir.path().join("state");
    let running = Running::start(&config, &state, &dir.path().join("stderr.log"));
    running.first_answer().await;
    let checked = common::process::check_json(&other, &state, &[]).await;
    let report: serde_json::Value = serde_json::from_slice(&checked.stdout).expect("JSON");
    assert_eq!(report[0]["product"], "bitbucket", "{report}");
    common::all_paused(&running.base, &["bb-a", "bb-b"]).await;
    // Time for every name to have tried again, had the budget been per name.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        common::basic_logins(&simulator, "bb"),
        2,
        "one budget of 2 for the account"
    );
    let site = simulator.site("bb").expect("site");
    assert_eq!(site.users[0].failed_logins, 2, "Bitbucket's own count");
    let api = api_connection(&running.base, "bb-b").await;
    assert_eq!(api["login_account"], format!("{url} svc-mirror"), "{api}");
    assert!(
        api["hint"]
            .as_str()
            .is_some_and(|h| h.contains("Bitbucket") && !h.contains("Jira")),
        "the pause's hint speaks of Bitbucket: {api}"
    );
    let metrics = common::get_text(&format!("{}/metrics", running.base)).await;
    assert!(metrics.contains("atlassian_product=\"bitbucket\""));
    running.stop("-TERM");
    assert!(simulator.outside_rest_or_scm().is_empty());
}

#[tokio::test]
async fn a_personal_token_s_expiry_comes_from_its_owner_s_paged_list() {
    let simulator = Simulator::start().await.expect("simulator");
    let token = Pat::new(3, "ci-clone", "bb-ci-token", Some(5));
    let expiry = token.expiring_at.expect("an expiry");
    // A username whose slug differs; the site pages lists by 2, and the token is third.
    simulator.add_site(
        "bb",
        Site::bitbucket()
            .with_user(
                User::new("Build.Bot@example.com")
                    .with_pat(Pat::new(1, "laptop", "bb-laptop", Some(30)))
                    .with_pat(Pat::new(2, "reports", "bb-reports", None))
                    .with_pat(token),
            )
            .with_user(User::token_bot(
                "project-deploy-bot",
                Pat::new(9, "deploy", "bb-project-token", Some(60)),
            )),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let url = simulator.url("bb");
    let config = common::write(
        dir.path(),
        "credwatch.toml",
        &[
            connection("bb-ci", &url, "token = \"bb-ci-token\"\ntoken_name = \"ci-clone\"\nexpect_account = \"build.bot@example.com\""),
            connection("bb-project", &url, "token = \"bb-project-token\""),
        ]
        .concat(),
    );
    let state = dir.path().join("state");
    let checked = common::process::check_json(&config, &state, &[]).await;
    let report: serde_json::Value = serde_json::from_slice(&checked.stdout).expect("JSON");
    let running = Running::start(&config, &state, &dir.path().join("stderr.log"));
    running.first_answer().await;
    eventually(Duration::from_secs(10), "the list read", || async {
        !api_connection(&running.base, "bb-ci").await["expires_at"].is_null()
    })
    .await;
    let api = api_connection(&running.base, "bb-ci").await;
    let by_check = report
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == "bb-ci"))
        .expect("reported");
    for (who, view) in [("check", by_check), ("daemon", &api)] {
        assert_eq!(view["state"], "valid", "{who}: {view}");
        assert_eq!(
            view["account"], "Build.Bot@example.com",
            "{who}: URL-decoded"
        );
        assert_eq!(view["expiry_source"], "bitbucket", "{who}: {view}");
        assert_eq!(view["rotation_due"], true, "{who}: 5 days left");
        let read = chrono::DateTime::parse_from_rfc3339(view["expires_at"].as_str().expect("time"))
            .expect("RFC 3339");
        assert_eq!(
            read.timestamp_millis(),
            expiry.timestamp_millis(),
            "{who}: createdDate + expiryDays"
        );
    }
    assert_eq!(
        api["token_audit"]["never_expiring"], 1,
        "the whole list, every page: {api}"
    );
    let paths: Vec<String> = simulator
        .requests_for("bb")
        .iter()
        .map(|r| format!("{}?{}", r.path, r.query.clone().unwrap_or_default()))
        .collect();
    assert!(
        paths
            .iter()
            .any(|p| p.contains("/rest/api/1.0/users/Build.Bot_example.com")),
        "the slug guessed from the username, confirmed: {paths:?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p.contains("/rest/access-tokens/1.0/users/build.bot_example.com?start=2")),
        "the second page, at the slug Bitbucket gave: {paths:?}"
    );

    // A project token: valid, its system-generated user has no list, and the note says so.
    eventually(
        Duration::from_secs(10),
        "the project token's list tried",
        || async { !api_connection(&running.base, "bb-project").await["expiry_note"].is_null() },
    )
    .await;
    let project = api_connection(&running.base, "bb-project").await;
    assert_eq!(project["state"], "valid", "{project}");
    assert_eq!(project["account"], "project-deploy-bot");
    assert!(project["expires_at"].is_null());
    assert!(
        project["expiry_note"]
            .as_str()
            .is_some_and(|n| n.contains("project or repository token")),
        "{project}"
    );

    // kill -9 once the store holds the expiry (its writer writes once a second): the
    // restarted daemon, with the site down, still knows the verdict and the expiry.
    let db = state.join("credwatch.db");
    eventually(
        Duration::from_secs(10),
        "the store holds the list",
        || async {
            let db = rusqlite::Connection::open(&db).expect("open");
            db.query_row(
                "SELECT record FROM connections WHERE name = 'bb-ci'",
                [],
                |row| row.get::<_, String>(0),
            )
            .is_ok_and(|record| record.contains("ci-clone"))
        },
    )
    .await;
    running.stop("-KILL");
    simulator.update_site("bb", |site| site.front = credwatch::sim::Front::Hang);
    let restarted = Running::start(&config, &state, &dir.path().join("stderr.log"));
    restarted.first_answer().await;
    let kept = api_connection(&restarted.base, "bb-ci").await;
    assert_eq!(kept["state"], "valid", "{kept}");
    assert_eq!(kept["expiry_source"], "bitbucket", "{kept}");
    assert_eq!(kept["expires_at"], api["expires_at"], "{kept}");
    restarted.stop("-TERM");
    assert!(simulator.outside_rest_or_scm().is_empty());
}

#[tokio::test]
async fn a_list_the_token_may_not_read_leaves_the_expiry_unknown_with_a_note() {
    let simulator = Simulator::start().await.expect("simulator");
    let mut site = Site::bitbucket().with_user(User::new("svc-ci").with_pat(Pat::new(
        1,
        "ci",
        "bb-ci-token",
        Some(50),
    )));
    site.tokens_readable = false;
    simulator.add_site("bb", site);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::write(
        dir.path(),
        "credwatch.toml",
        &connection(
            "bb-ci",
            &simulator.url("bb"),
            "token = \"bb-ci-token\"\ntoken_owner_slug = \"svc-ci\"",
        ),
    );
    let checked = common::process::check_json(&config, &dir.path().join("state"), &[]).await;
    let report: serde_json::Value = serde_json::from_slice(&checked.stdout).expect("JSON");
    assert_eq!(report[0]["state"], "valid", "{report}");
    assert!(report[0]["expires_at"].is_null());
    assert!(
        report[0]["expiry_note"]
            .as_str()
            .is_some_and(|n| n.contains("may not read")),
        "{report}"
    );
    let asked: Vec<String> = simulator
        .requests_for("bb")
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(
        !asked.iter().any(|p| p.contains("/rest/api/1.0/users/")),
        "token_owner_slug spares the user lookup: {asked:?}"
    );
}

#[test]
fn what_bitbucket_data_center_does_not_have_is_a_configuration_error() {
    let load = |keys: &str| {
        common::refused(&format!(
            "[[connection]]\nname = \"bb\"\nproduct = \"bitbucket\"\n{keys}\n"
        ))
    };
    for (keys, says) in [
        ("url = \"https://bitbucket.org/acme\"\ntoken = \"t\"", "Bitbucket Cloud is not supported"),
        ("url = \"https://api.bitbucket.org/2.0\"\ntoken = \"t\"", "Bitbucket Cloud is not supported"),
        ("url = \"https://git.example.com\"\nkind = \"cloud\"\nusername = \"a@b.c\"\ntoken = \"t\"", "Bitbucket Cloud is not supported"),
        ("url = \"https://git.example.com\"\nauth = \"api_token\"\nusername = \"a@b.c\"\ntoken = \"t\"", "no Atlassian API tokens"),
        ("url = \"https://git.example.com\"\nauth = \"oauth_client_credentials\"\nclient_id = \"c\"\nclient_secret = \"s\"", "not supported for bitbucket"),
        ("url = \"https://git.example.com\"\ntoken = \"t\"\nscoped = true", "scoped API tokens are Atlassian Cloud's"),
        ("url = \"https://git.example.com\"\nauth = \"basic\"\nusername = \"u\"\npassword = \"p\"\ntoken_name = \"t\"", "does not read Bitbucket's token list over Basic"),
        ("url = \"https://git.example.com\"\ntoken = \"t\"\ntoken_owner_slug = \"..\"", "not a path"),
    ] {
        let error = load(keys);
        assert!(error.contains(says), "{keys}: {error}");
    }
    let jira = common::refused(
        "[[connection]]\nname = \"j\"\nurl = \"https://jira.example.com\"\ntoken = \"t\"\ntoken_owner_slug = \"x\"\n",
    );
    assert!(jira.contains("bitbucket"), "{jira}");
    let loaded = Config::from_sources(&[(
        "t.toml".into(),
        "[[connection]]\nname = \"bb\"\nproduct = \"bitbucket\"\nurl = \"https://git.example.com/bitbucket\"\ntoken = \"t\"\n".to_owned(),
    )])
    .expect("loads");
    assert_eq!(
        loaded.connections[0].myself_url().as_str(),
        "https://git.example.com/bitbucket/rest/api/latest/profile/recent/repos?limit=1"
    );
}

#[tokio::test]
#[should_panic(expected = "outside /rest and /scm")]
async fn the_simulator_fails_a_test_that_asked_bitbucket_outside_rest_and_scm() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site("bb", Site::bitbucket());
    let whoami = format!("{}/plugins/servlet/applinks/whoami", simulator.url("bb"));
    common::http_client();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let answer = client
        .get(&whoami)
        .bearer_auth("a-token")
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), 302, "a token outside /rest is redirected");
    drop(simulator);
}
