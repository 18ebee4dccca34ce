//! One login budget per login account, through the binary and counted at the simulator (which
//! counts failed Basic logins per user, case-insensitively, and locks at 3, as Jira does):
//! three names of one account (the username's case and the URL's trailing slash differing)
//! plus a `check` from another file; a reload with a new wrong password; `resume` of the
//! account; four names on two shards; five restarts and a rename; `login_site`; a format-1
//! store migrated with its counts and pauses.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::process::Running;
use common::{api_connection, eventually, get_json};
use credwatch::sim::{Simulator, Site, User};

/// A Basic connection probed every second, its password from `password_file`.
fn basic(name: &str, url: &str, username: &str, password_file: &str, extra: &str) -> String {
    format!(
        "[[connection]]\nname = \"{name}\"\nurl = \"{url}\"\nauth = \"basic\"\nusername = \"{username}\"\npassword_file = \"{password_file}\"\ninterval = \"1s\"\ntimeout = \"900ms\"\nauth_failure_interval = \"1s\"\nbackoff_initial = \"1s\"\n{extra}\n"
    )
}

fn simulator_site(simulator: &Simulator, site: &str, username: &str) {
    simulator.add_site(
        site,
        Site::server().with_user(User::new(username).with_password("the-right-one")),
    );
}

#[tokio::test]
async fn three_names_and_a_check_share_two_failed_logins_and_resume_lifts_the_account() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator_site(&simulator, "dc", "svc-shared");
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(dir.path(), "pw", "wrong-1\n");
    common::write(dir.path(), "pw2", "wrong-2\n");
    let url = simulator.url("dc");
    let daemon_config = |password_file: &str| {
        [
            basic("svc-a", &url, "svc-shared", password_file, ""),
            basic("svc-b", &format!("{url}/"), "SVC-Shared", password_file, ""),
            basic(
                "svc-c",
                &url.replace("http://", "HTTP://"),
                "Svc-Shared",
                password_file,
                "",
            ),
        ]
        .concat()
    };
    let config = common::write(dir.path(), "credwatch.toml", &daemon_config("pw"));
    // Another team's file names the account a third time, under a name of its own.
    let other = common::write(
        dir.path(),
        "other.toml",
        &basic("theirs", &format!("{url}/"), "svc-SHARED", "pw", ""),
    );
    let state = dir.path().join("state");
    let log = dir.path().join("stderr.log");
    let running = Running::start(&config, &state, &log);
    running.first_answer().await;
    let checked = common::process::check_json(&other, &state, &[]).await;
    assert_eq!(checked.status.code(), Some(1));
    common::all_paused(&running.base, &["svc-a", "svc-b", "svc-c"]).await;
    // Time for every name to have tried, had the budget been per name.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spent = common::basic_logins(&simulator, "dc");
    assert!(spent <= 2, "{spent} failed logins for one account");
    assert_eq!(spent, 2, "the budget is used, not hoarded");
    assert!(simulator.site("dc").expect("site").users[0].failed_logins < 3);
    let api = api_connection(&running.base, "svc-b").await;
    assert_eq!(api["login_account"], format!("{url} svc-shared"), "{api}");
    assert_eq!(
        api["shares_login_with"],
        serde_json::json!(["svc-a", "svc-c"])
    );
    // A check beside the daemon now sends nothing for the account.
    let refused = common::process::check_json(&other, &state, &[]).await;
    let report: serde_json::Value = serde_json::from_slice(&refused.stdout).expect("JSON");
    assert_eq!(report[0]["paused"], "failed_logins", "{report}");
    assert_eq!(report[0]["login_account"], format!("{url} svc-shared"));
    assert_eq!(common::basic_logins(&simulator, "dc"), spent);

    // A reload with a new (wrong) password: Jira's count did not start over, so neither does
    // the budget; the hint says to resume once the count was reset.
    common::write(dir.path(), "credwatch.toml", &daemon_config("pw2"));
    running.signal("-HUP");
    eventually(Duration::from_secs(10), "reloaded", || async {
        running.log().contains("configuration reloaded")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        common::basic_logins(&simulator, "dc"),
        spent,
        "no login with the new password"
    );
    let api = api_connection(&running.base, "svc-a").await;
    assert_eq!(api["paused"], "failed_logins", "{api}");
    assert!(api["hint"]
        .as_str()
        .is_some_and(|h| h.contains("credwatch resume")));

    // A person reset the count in Jira: `resume` of one name lifts the whole account, says
    // which connections it resumed, and the account gets at most 2 more.
    simulator.update_site("dc", |site| site.users[0].failed_logins = 0);
    let resumed = Command::new(env!("CARGO_BIN_EXE_credwatch"))
        .args(["resume", "svc-a", "--url", &running.base])
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&resumed.stdout);
    assert_eq!(resumed.status.code(), Some(0), "{said}");
    assert!(said.contains("svc-b") && said.contains("svc-c"), "{said}");
    eventually(Duration::from_secs(10), "probed again", || async {
        common::basic_logins(&simulator, "dc") > spent
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let more = common::basic_logins(&simulator, "dc") - spent;
    assert!(more <= 2, "{more} more failed logins after resume");
    assert!(simulator.site("dc").expect("site").users[0].failed_logins < 3);
    assert_eq!(running.stop("-TERM"), Some(0));
}

#[tokio::test]
async fn four_names_of_one_account_on_two_shards_get_two_failed_logins() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator_site(&simulator, "dc", "svc-sharded");
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(dir.path(), "pw", "wrong\n");
    let url = simulator.url("dc");
    // Four names that sharding by name would split two and two.
    let mut names: Vec<String> = Vec::new();
    for shard in [0, 1] {
        names.extend(
            (0..100)
                .map(|i| format!("team-{i}"))
                .filter(|name| credwatch::shard::owner(name, 2) == shard)
                .take(2),
        );
    }
    let toml: String = names
        .iter()
        .map(|name| basic(name, &url, "svc-sharded", "pw", ""))
        .collect();
    let config = common::write(dir.path(), "credwatch.toml", &toml);
    let shards: Vec<Running> = (0..2)
        .map(|k| {
            Running::start_with(
                &config,
                &dir.path().join(format!("state-{k}")),
                &dir.path().join(format!("stderr-{k}.log")),
                &["--shard", &format!("{k}/2")],
            )
        })
        .collect();
    for shard in &shards {
        shard.first_answer().await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let spent = common::basic_logins(&simulator, "dc");
    assert!(
        spent <= 2,
        "{spent} failed logins for one account on two shards"
    );
    assert!(spent >= 1, "probed at all");
    // Every name of the account is on one shard.
    let mut listed = Vec::new();
    for shard in &shards {
        let all = get_json(&format!("{}/api/v1/connections", shard.base)).await;
        listed.push(all.as_array().expect("array").len());
    }
    let owner = listed
        .iter()
        .position(|n| *n == 4)
        .expect("one shard has them all");
    listed.sort_unstable();
    assert_eq!(listed, [0, 4]);
    // A check beside the other shard's daemon sends nothing for the account, and says which
    // shard keeps its budget.
    let other = 1 - owner;
    let before = common::basic_logins(&simulator, "dc");
    let beside =
        common::process::check_json(&config, &dir.path().join(format!("state-{other}")), &[]).await;
    let report: serde_json::Value = serde_json::from_slice(&beside.stdout).expect("JSON");
    for row in report.as_array().expect("array") {
        assert_eq!(row["owned_by_shard"], owner, "{row}");
    }
    assert_eq!(
        common::basic_logins(&simulator, "dc"),
        before,
        "nothing sent"
    );
}

#[tokio::test]
async fn five_restarts_and_a_reload_that_renames_the_connection_grant_no_login() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator_site(&simulator, "dc", "svc-jira");
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(dir.path(), "pw", "wrong\n");
    let url = simulator.url("dc");
    let config = common::write(
        dir.path(),
        "credwatch.toml",
        &basic("legacy", &url, "svc-jira", "pw", ""),
    );
    let state = dir.path().join("state");
    let log = dir.path().join("stderr.log");
    let mut running = Running::start(&config, &state, &log);
    running.first_answer().await;
    eventually(Duration::from_secs(10), "paused", || async {
        api_connection(&running.base, "legacy").await["paused"] == "failed_logins"
    })
    .await;
    let spent = common::basic_logins(&simulator, "dc");
    assert_eq!(spent, 2);
    for round in 0..5 {
        let signal = if round % 2 == 0 { "-KILL" } else { "-TERM" };
        running.stop(signal);
        running = Running::start(&config, &state, &log);
        running.first_answer().await;
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        assert_eq!(
            common::basic_logins(&simulator, "dc"),
            spent,
            "round {round}"
        );
    }
    // The connection renamed (and labelled anew): the same account, the same spent budget.
    common::write(
        dir.path(),
        "credwatch.toml",
        &basic(
            "renamed",
            &url,
            "SVC-JIRA",
            "pw",
            "labels = { team = \"b\" }",
        ),
    );
    running.signal("-HUP");
    eventually(Duration::from_secs(10), "renamed", || async {
        get_json(&format!("{}/api/v1/connections", running.base)).await[0]["name"] == "renamed"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        common::basic_logins(&simulator, "dc"),
        spent,
        "none granted"
    );
    assert_eq!(
        api_connection(&running.base, "renamed").await["paused"],
        "failed_logins"
    );
    assert_eq!(running.stop("-TERM"), Some(0));
}

#[tokio::test]
async fn login_site_joins_two_urls_of_one_jira_into_one_budget() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator_site(&simulator, "dc", "svc-jira");
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(dir.path(), "pw", "wrong\n");
    let url = simulator.url("dc");
    // The same Jira under its address and under `localhost` (a node's own name, say).
    let alias = url.replace("127.0.0.1", "localhost");
    let joined = "login_site = \"https://jira.example.com/dc/\"";
    let toml = [
        basic("by-address", &url, "svc-jira", "pw", joined),
        basic("by-alias", &alias, "svc-jira", "pw", joined),
    ]
    .concat();
    let config = common::write(dir.path(), "credwatch.toml", &toml);
    let state = dir.path().join("state");
    let running = Running::start(&config, &state, &dir.path().join("stderr.log"));
    running.first_answer().await;
    eventually(Duration::from_secs(10), "both paused", || async {
        !api_connection(&running.base, "by-address").await["paused"].is_null()
            && !api_connection(&running.base, "by-alias").await["paused"].is_null()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spent = common::basic_logins(&simulator, "dc");
    assert_eq!(spent, 2, "one budget for the two URLs");
    let api = api_connection(&running.base, "by-alias").await;
    assert_eq!(api["login_account"], "https://jira.example.com/dc svc-jira");
    assert_eq!(api["shares_login_with"], serde_json::json!(["by-address"]));
}

#[tokio::test]
async fn a_format_1_store_is_migrated_with_its_counts_and_pauses() {
    let simulator = Simulator::start().await.expect("simulator");
    for (site, user) in [
        ("ops", "svc-ops"),
        ("lock", "svc-locked"),
        ("one", "svc-one"),
    ] {
        simulator_site(&simulator, site, user);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(dir.path(), "pw", "wrong\n");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    {
        let fixture = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store/format-1.sql"),
        )
        .expect("fixture");
        let db = rusqlite::Connection::open(state.join("credwatch.db")).expect("open");
        db.execute_batch(&fixture).expect("fixture loads");
    }
    let toml = [
        basic("ops-a", &simulator.url("ops"), "svc-ops", "pw", ""),
        basic("ops-b", &simulator.url("ops"), "svc-ops", "pw", ""),
        basic("lock-a", &simulator.url("lock"), "svc-locked", "pw", ""),
        basic("one-a", &simulator.url("one"), "svc-one", "pw", ""),
    ]
    .concat();
    let config = common::write(dir.path(), "credwatch.toml", &toml);
    let running = Running::start(&config, &state, &dir.path().join("stderr.log"));
    running.first_answer().await;
    eventually(Duration::from_secs(10), "all four paused", || async {
        let mut paused = 0;
        for name in ["ops-a", "ops-b", "lock-a", "one-a"] {
            paused += usize::from(!api_connection(&running.base, name).await["paused"].is_null());
        }
        paused == 4
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // 1 + 1 under two names of svc-ops: spent, nothing sent.
    assert_eq!(common::basic_logins(&simulator, "ops"), 0);
    assert_eq!(
        api_connection(&running.base, "ops-b").await["paused"],
        "failed_logins"
    );
    // The lock carries over.
    assert_eq!(common::basic_logins(&simulator, "lock"), 0);
    assert_eq!(
        api_connection(&running.base, "lock-a").await["paused"],
        "locked"
    );
    // The attempt that never got its answer counted: one login left of two.
    assert_eq!(common::basic_logins(&simulator, "one"), 1);
    let log = running.log();
    assert!(log.contains("now kept per login account"), "{log}");
    assert_eq!(running.stop("-TERM"), Some(0));
    let db = rusqlite::Connection::open(state.join("credwatch.db")).expect("open");
    let version: i64 = db
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("version");
    assert_eq!(version, credwatch::store::FORMAT);
    let waiting: i64 = db
        .query_row("SELECT count(*) FROM logins", [], |row| row.get(0))
        .expect("count");
    assert_eq!(waiting, 0, "every per-name row joined its account");
}
