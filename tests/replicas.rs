//! An HA pair through the binary (`--replica 0/2` and `--replica 1/2`, a state directory
//! each), counted at the simulator: every Basic login account is probed and exported by one
//! replica, the token by both; at most 2 failed logins per account, also while its owner is
//! killed with -9 and restarted; the non-owner lists the account's connections with their
//! owner, answers resume with 421, and its `check` sends nothing for them and names the owner.

mod common;

use std::process::Command;
use std::time::Duration;

use common::process::Running;
use common::{eventually, get_json, get_text};
use credwatch::sim::{Pat, Simulator, Site, User};

/// The Basic logins a site received (every one with a wrong password here).
fn logins(simulator: &Simulator, site: &str) -> usize {
    simulator
        .requests_for(site)
        .iter()
        .filter(|r| r.scheme() == Some("Basic"))
        .count()
}

/// Six login accounts, three owned by each replica: the account's site is `login_site`, so
/// the assignment does not depend on the simulator's port.
fn accounts() -> Vec<(String, u32)> {
    let mut picked: Vec<(String, u32)> = Vec::new();
    for owner in [0, 1] {
        picked.extend(
            (0..100)
                .map(|i| format!("https://jira-{i}.example.com"))
                .filter(|site| credwatch::replica::owner(&format!("{site} svc"), 2) == owner)
                .take(3)
                .map(|site| (site, owner)),
        );
    }
    picked
}

fn exported(metrics: &str, connection: &str) -> bool {
    metrics.contains(&format!("connection=\"{connection}\""))
}

#[tokio::test]
async fn an_ha_pair_spends_one_budget_per_account_and_each_account_is_exported_once() {
    let simulator = Simulator::start().await.expect("simulator");
    let accounts = accounts();
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(dir.path(), "pw", "wrong\n");
    let mut toml = String::from(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"900ms\"\nauth_failure_interval = \"1s\"\nbackoff_initial = \"1s\"\n\n",
    );
    for (i, (login_site, _)) in accounts.iter().enumerate() {
        simulator.add_site(
            &format!("a{i}"),
            Site::server().with_user(User::new("svc").with_password("right")),
        );
        toml.push_str(&format!(
            "[[connection]]\nname = \"basic-{i}\"\nurl = \"{}\"\nlogin_site = \"{login_site}\"\nauth = \"basic\"\nusername = \"svc\"\npassword_file = \"pw\"\n\n",
            simulator.url(&format!("a{i}"))
        ));
    }
    simulator.add_site(
        "tok",
        Site::server().with_user(User::new("svc").with_pat(Pat::new(1, "ci", "tok", Some(90)))),
    );
    toml.push_str(&format!(
        "[[connection]]\nname = \"token\"\nurl = \"{}\"\ntoken = \"tok\"\n",
        simulator.url("tok")
    ));
    let config = common::write(dir.path(), "credwatch.toml", &toml);
    let start = |i: u32| {
        Running::start_with(
            &config,
            &dir.path().join(format!("state-{i}")),
            &dir.path().join(format!("stderr-{i}.log")),
            &["--replica", &format!("{i}/2")],
        )
    };
    let mut replicas = vec![start(0), start(1)];
    for replica in &replicas {
        replica.first_answer().await;
    }
    for replica in &replicas {
        let ready = format!("{}/readyz", replica.base);
        eventually(Duration::from_secs(10), "ready", || async {
            common::http_client()
                .get(&ready)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
    }
    eventually(Duration::from_secs(10), "every account tried", || async {
        (0..accounts.len()).all(|i| logins(&simulator, &format!("a{i}")) >= 1)
    })
    .await;

    // Each Basic connection exported by its owner alone, the token by both.
    for (k, replica) in replicas.iter().enumerate() {
        let metrics = get_text(&format!("{}/metrics", replica.base)).await;
        assert!(exported(&metrics, "token"), "replica {k} exports the token");
        for (i, (_, owner)) in accounts.iter().enumerate() {
            let name = format!("basic-{i}");
            assert_eq!(
                exported(&metrics, &name),
                *owner == k as u32,
                "replica {k}, {name} owned by {owner}"
            );
        }
        assert!(metrics.contains("credwatch_replicas 2"), "{metrics}");
        assert!(
            metrics.contains(&format!(
                "credwatch_replica_info{{shard=\"0\",credwatch_replica=\"{k}\"}} 1"
            )),
            "{metrics}"
        );
        assert!(
            metrics.contains("credwatch_connections 4"),
            "3 accounts and the token"
        );
        // The non-owner lists the others' connections as unknown, with their owner.
        let api = get_json(&format!("{}/api/v1/connections", replica.base)).await;
        let all = api.as_array().expect("array");
        assert_eq!(all.len(), 7);
        for (i, (_, owner)) in accounts.iter().enumerate() {
            let row = all
                .iter()
                .find(|c| c["name"] == format!("basic-{i}"))
                .expect("listed");
            assert_eq!(row["owned_by_replica"], *owner, "{row}");
            if *owner != k as u32 {
                assert_eq!(row["state"], "unknown", "{row}");
                assert!(row["reason"].is_null(), "{row}");
            }
        }
    }

    // A resume at the non-owner is misdirected, and says where to go.
    let (foreign, owner) = (0..accounts.len())
        .find(|i| accounts[*i].1 == 1)
        .map(|i| (format!("basic-{i}"), 1))
        .expect("replica 1 owns one");
    let response = common::http_client()
        .post(format!(
            "{}/api/v1/connections/{foreign}/resume",
            replicas[0].base
        ))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 421);
    let body: serde_json::Value =
        serde_json::from_str(&response.text().await.expect("body")).expect("JSON");
    assert_eq!(body["owned_by_replica"], owner);
    let resumed = Command::new(env!("CARGO_BIN_EXE_credwatch"))
        .args(["resume", &foreign, "--url", &replicas[0].base])
        .output()
        .expect("runs");
    assert_eq!(resumed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&resumed.stderr).contains("replica 1"));

    // The owner of some accounts killed with -9 and restarted, three times.
    for _ in 0..3 {
        let replica = replicas.remove(0);
        replica.stop("-KILL");
        let restarted = start(0);
        restarted.first_answer().await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        replicas.insert(0, restarted);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..accounts.len() {
        let spent = logins(&simulator, &format!("a{i}"));
        assert!(
            spent <= 2,
            "account {i}: {spent} failed logins for the pair"
        );
    }

    // check as replica 0 sends nothing for replica 1's accounts, and names the owner.
    let before: Vec<usize> = (0..accounts.len())
        .map(|i| logins(&simulator, &format!("a{i}")))
        .collect();
    let checked = Command::new(env!("CARGO_BIN_EXE_credwatch"))
        .args(["check", "--output", "json", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("state-0"))
        .env("CREDWATCH_REPLICA", "0/2")
        .output()
        .expect("runs");
    assert_eq!(checked.status.code(), Some(1));
    // Replica 1's accounts: reported with their owner, named in the detail, nothing sent.
    let sent_nothing_for_replica_1 = |output: &std::process::Output| {
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        for (i, (_, owner)) in accounts.iter().enumerate() {
            let row = report
                .as_array()
                .expect("array")
                .iter()
                .find(|c| c["name"] == format!("basic-{i}"))
                .expect("reported");
            if *owner == 1 {
                assert_eq!(row["owned_by_replica"], 1, "{row}");
                assert!(row["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("replica 1")));
                assert_eq!(
                    logins(&simulator, &format!("a{i}")),
                    before[i],
                    "check sent nothing for basic-{i}"
                );
            }
        }
    };
    sent_nothing_for_replica_1(&checked);
    // Beside replica 0's daemon, with neither --replica nor the variable: the store tells.
    let beside = common::process::check_json(&config, &dir.path().join("state-0"), &[]).await;
    sent_nothing_for_replica_1(&beside);
    for (i, _) in accounts.iter().enumerate() {
        assert!(logins(&simulator, &format!("a{i}")) <= 2);
    }
}
