//! Lockout safety over a simulated day, on tokio's paused clock. The simulator counts failed
//! Basic logins per account and locks it after 3, as Jira does. A day of 1-minute intervals is
//! 1,440 intervals; here they last 10 ms each (and the rejected-credential wait too), so the
//! daemon has 1,440 chances to probe: it makes at most 2 failed logins, never causes the lock, does not try a
//! fixed password file on its own (Jira's count did not start over), and probes again at once
//! when a person resumes the account.

mod common;

use std::time::Duration;

use tokio::time::Instant;

use credwatch::sim::{Simulator, Site, User};

#[tokio::test(start_paused = true)]
async fn a_day_of_probing_a_wrong_password_never_locks_the_account() {
    let simulator = Simulator::start().await.expect("simulator");
    simulator.add_site(
        "dc",
        Site::server().with_user(User::new("svc-jira").with_password("the-right-one")),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("password"), "a-wrong-one\n").expect("write");
    let path = dir.path().join("credwatch.toml");
    std::fs::write(
        &path,
        format!(
            "[[connection]]\nname = \"legacy\"\nurl = \"{}\"\nauth = \"basic\"\nusername = \"svc-jira\"\npassword_file = \"password\"\ninterval = \"10ms\"\ntimeout = \"9ms\"\nauth_failure_interval = \"10ms\"\nbackoff_initial = \"10ms\"\nbackoff_max = \"10ms\"\n",
            simulator.url("dc")
        ),
    )
    .expect("write");
    let daemon = common::start_daemon(&path, false).await;

    // The simulated day: 1,440 intervals of 10 ms.
    let day = Duration::from_millis(1440 * 10);
    let started = Instant::now();
    let mut most_failures = 0;
    while started.elapsed() < day {
        let site = simulator.site("dc").expect("site");
        most_failures = most_failures.max(site.users[0].failed_logins);
        assert!(site.users[0].failed_logins < 3, "the account was locked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logins = simulator.requests_for("dc").len();
    assert!(logins <= 2, "{logins} logins in a simulated day");
    assert_eq!(most_failures, 2, "credwatch tried twice, then stopped");

    // A person fixes the password file (not tried on its own, the account's budget is spent:
    // tests/daemon.rs shows it on the paused clock) and resumes the account: credwatch probes
    // again at once, and succeeds.
    std::fs::write(dir.path().join("password"), "the-right-one\n").expect("write");
    let fixed = Instant::now();
    daemon.resume("legacy").await.expect("resume");
    let deadline = fixed + Duration::from_secs(5);
    loop {
        let site = simulator.site("dc").expect("site");
        if site.users[0].failed_logins == 0 && simulator.requests_for("dc").len() > logins {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no probe after the password was fixed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        fixed.elapsed() < Duration::from_secs(4),
        "probed at once after resume"
    );
    daemon.shutdown(Duration::from_secs(1)).await;
}
