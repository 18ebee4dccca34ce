//! The login budget, row by row: two failed logins per account whoever sends them, an
//! unanswered login counted at its deadline, a success or a resume that forgives nothing in
//! flight, the per-name budgets of a format-1 store adopted by their account, and a check that
//! never upgrades a store it does not own.

use super::*;

const TIMEOUT: Duration = Duration::from_secs(10);
const ACCOUNT: &str = "https://jira.example.com svc";

fn granted(budget: Budget) -> Attempt {
    match budget {
        Budget::Granted(attempt) => attempt,
        other => panic!("not granted: {other:?}"),
    }
}

#[test]
fn two_failed_logins_spend_the_account_budget_whoever_sent_them_under_whatever_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Store::open_owned(dir.path()).expect("owner");
    let check = Store::open_shared(dir.path()).expect("shared");
    let first = granted(
        daemon
            .reserve_login(ACCOUNT, "a", TIMEOUT, "daemon", false)
            .expect("db"),
    );
    assert_eq!(first.failed_before, 0);
    // While the daemon's login is in flight, check may send one more (under another
    // name of the account), and no third.
    let second = granted(
        check
            .reserve_login(ACCOUNT, "b", TIMEOUT, "check", false)
            .expect("db"),
    );
    // A third waits for the two to be answered (or to count as failed at their deadline).
    assert!(matches!(
        daemon
            .reserve_login(ACCOUNT, "c", TIMEOUT, "daemon", false)
            .expect("db"),
        Budget::Busy(wait) if wait <= TIMEOUT + STALE_AFTER && wait > TIMEOUT
    ));
    assert_eq!(
        daemon
            .resolve_login(ACCOUNT, first, Login::Failed)
            .expect("db"),
        1
    );
    assert_eq!(
        check
            .resolve_login(ACCOUNT, second, Login::Failed)
            .expect("db"),
        2
    );
    assert_eq!(
        check
            .reserve_login(ACCOUNT, "a", TIMEOUT, "check", false)
            .expect("db"),
        Budget::Spent(Pause::FailedLogins)
    );
    // Another account has a budget of its own.
    granted(
        daemon
            .reserve_login(
                "https://jira.example.com other",
                "d",
                TIMEOUT,
                "daemon",
                false,
            )
            .expect("db"),
    );
    // --force sends it all the same, and it counts.
    let forced = granted(
        check
            .reserve_login(ACCOUNT, "a", TIMEOUT, "check", true)
            .expect("db"),
    );
    assert_eq!(
        check
            .resolve_login(ACCOUNT, forced, Login::Locked)
            .expect("db"),
        2
    );
    assert_eq!(
        daemon
            .reserve_login(ACCOUNT, "b", TIMEOUT, "daemon", false)
            .expect("db"),
        Budget::Spent(Pause::Locked)
    );
    // Resume forgets it all, for every name of the account.
    assert!(daemon.resume(ACCOUNT).expect("db"));
    assert!(!daemon.resume(ACCOUNT).expect("db"), "nothing left to lift");
    let again = granted(
        daemon
            .reserve_login(ACCOUNT, "c", TIMEOUT, "daemon", false)
            .expect("db"),
    );
    assert_eq!(again.failed_before, 0);
    // A success starts the count over, as it does in Jira.
    assert_eq!(
        daemon
            .resolve_login(ACCOUNT, again, Login::Accepted)
            .expect("db"),
        0
    );
}

#[test]
fn a_login_that_never_got_its_answer_counts_as_failed_after_its_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // The process is killed between request and answer.
        let store = Store::open_owned(dir.path()).expect("owner");
        granted(
            store
                .reserve_login(ACCOUNT, "c", Duration::ZERO, "daemon", false)
                .expect("db"),
        );
    }
    let store = Store::open_owned(dir.path()).expect("owner");
    let state = store.login_state(ACCOUNT).expect("db");
    assert_eq!(state.failed + state.in_flight, 1, "{state:?}");
    // A timeout is not an answer: the attempt stays and counts at its deadline.
    let other = "https://jira.example.com d";
    let unsure = granted(
        store
            .reserve_login(other, "d", Duration::ZERO, "daemon", false)
            .expect("db"),
    );
    assert_eq!(
        store
            .resolve_login(other, unsure, Login::Unsure)
            .expect("db"),
        0
    );
    assert_eq!(store.login_state(other).expect("db").in_flight, 1);
    std::thread::sleep(STALE_AFTER + Duration::from_millis(100));
    let state = store.login_state(ACCOUNT).expect("db");
    assert_eq!(
        state,
        LoginState {
            failed: 1,
            in_flight: 0,
            locked: false
        }
    );
    // One more failed login is all that is left; a success starts the count over.
    let last = granted(
        store
            .reserve_login(ACCOUNT, "c", TIMEOUT, "daemon", false)
            .expect("db"),
    );
    assert_eq!(last.failed_before, 1);
    assert_eq!(
        store
            .resolve_login(ACCOUNT, last, Login::Accepted)
            .expect("db"),
        0
    );
}

#[test]
fn per_name_budgets_of_a_format_1_store_add_up_in_their_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_owned(dir.path()).expect("owner");
    {
        let db = lock(&store.logins);
        db.execute_batch(
            "INSERT INTO logins VALUES ('a', x'01', 1, 0, 0);
             INSERT INTO logins VALUES ('b', x'02', 1, 0, 0);
             INSERT INTO logins VALUES ('locked', x'03', 0, 1, 0);
             INSERT INTO logins VALUES ('gone', x'04', 1, 0, 0);
             INSERT INTO login_attempts (name, identity, started_at, stale_at, owner)
                 VALUES ('in-flight', x'05', 0, 9000000000000, 'daemon pid 1');",
        )
        .expect("rows");
    }
    let other = "https://jira.example.com other";
    let third = "https://jira.example.com third";
    let members = [
        ("a", ACCOUNT),
        ("b", ACCOUNT),
        ("locked", other),
        ("in-flight", third),
    ];
    assert_eq!(store.adopt_logins(&members).expect("adopt"), 4);
    // 1 + 1 under two names of one account: spent.
    assert_eq!(store.login_state(ACCOUNT).expect("db").failed, 2);
    assert_eq!(
        store
            .reserve_login(ACCOUNT, "a", TIMEOUT, "daemon", false)
            .expect("db"),
        Budget::Spent(Pause::FailedLogins)
    );
    assert!(store.login_state(other).expect("db").locked);
    assert_eq!(store.login_state(third).expect("db").in_flight, 1);
    // Adopted once: a second pass finds nothing; the name not configured waits.
    assert_eq!(store.adopt_logins(&members).expect("adopt"), 0);
    assert_eq!(
        store
            .adopt_logins(&[("gone", "https://jira.example.com gone")])
            .expect("adopt"),
        1,
        "a name that comes back joins its account"
    );
}

#[test]
fn a_success_forgives_no_other_login_still_in_flight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_owned(dir.path()).expect("owner");
    // Two connections of one account, one with a wrong password, one with the right one.
    let wrong = granted(
        store
            .reserve_login(ACCOUNT, "a", TIMEOUT, "daemon", false)
            .expect("db"),
    );
    let right = granted(
        store
            .reserve_login(ACCOUNT, "b", TIMEOUT, "daemon", false)
            .expect("db"),
    );
    // Jira answers the right one first; the wrong one it counts after that success.
    assert_eq!(
        store
            .resolve_login(ACCOUNT, right, Login::Accepted)
            .expect("db"),
        0
    );
    assert_eq!(
        store
            .resolve_login(ACCOUNT, wrong, Login::Failed)
            .expect("db"),
        1,
        "the failure after the success counts"
    );
    // A resume does not forgive a login in flight either.
    let flying = granted(
        store
            .reserve_login(ACCOUNT, "a", TIMEOUT, "daemon", false)
            .expect("db"),
    );
    store.resume(ACCOUNT).expect("db");
    assert_eq!(store.login_state(ACCOUNT).expect("db").in_flight, 1);
    assert_eq!(
        store
            .resolve_login(ACCOUNT, flying, Login::Failed)
            .expect("db"),
        1
    );
}

#[test]
fn a_check_beside_a_daemon_of_the_previous_format_neither_upgrades_nor_logs_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let fixture = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/store/format-1.sql"),
        )
        .expect("fixture");
        let db = rusqlite::Connection::open(dir.path().join(super::super::DB_FILE)).expect("open");
        db.execute_batch(&fixture).expect("fixture loads");
    }
    let check = Store::open_shared(dir.path()).expect("shared");
    assert!(
        check
            .reserve_login(ACCOUNT, "ops-a", TIMEOUT, "check", false)
            .is_err(),
        "no budget to record a login in: none is sent"
    );
    drop(check);
    let db = rusqlite::Connection::open(dir.path().join(super::super::DB_FILE)).expect("open");
    let version: i64 = db
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("version");
    assert_eq!(version, 1, "left as the older daemon keeps it");
    let kept: i64 = db
        .query_row("SELECT count(*) FROM logins", [], |row| row.get(0))
        .expect("count");
    assert_eq!(kept, 3);
}

#[test]
fn a_refusal_counts_as_an_accepted_login_only_when_it_names_the_caller() {
    use crate::probe::{Identity, Outcome, Reason, State};
    use std::sync::Arc;
    let outcome = |state, reason, identity: Option<Arc<Identity>>| {
        let mut outcome = Outcome::without_answer(
            crate::config::CredentialType {
                product: crate::config::Product::Jira,
                auth: crate::config::AuthMethod::Basic,
            },
            reason,
            String::new(),
            std::time::Instant::now(),
        );
        outcome.state = state;
        outcome.identity = identity;
        outcome
    };
    let named = Some(Arc::new(Identity {
        name: Some("svc".to_owned()),
        ..Identity::default()
    }));
    let cases = [
        (
            State::Forbidden,
            Reason::Forbidden,
            named.clone(),
            Login::Accepted,
        ),
        (State::Forbidden, Reason::Forbidden, None, Login::Unanswered),
        (
            State::Forbidden,
            Reason::BasicAuthDisabled,
            None,
            Login::Unanswered,
        ),
        (
            State::Forbidden,
            Reason::BasicAuthDisabled,
            named.clone(),
            Login::Unanswered,
        ),
        (State::Invalid, Reason::Unauthorized, None, Login::Failed),
        (State::Invalid, Reason::WrongAccount, named, Login::Accepted),
        (State::Locked, Reason::CaptchaRequired, None, Login::Locked),
    ];
    for (state, reason, identity, login) in cases {
        assert_eq!(
            Login::of(&outcome(state, reason, identity)),
            login,
            "{state} {reason}"
        );
    }
}
