//! The login budget of Basic connections, shared by every process that uses the store: the
//! daemon, `credwatch check` beside it, and the daemon after a restart.
//!
//! Jira locks an account behind a CAPTCHA after a few failed logins in a row, and counts
//! every one, whoever sent it. So a Basic login is recorded here, durably, before it is sent
//! ([`Store::reserve_login`]), and the answer is recorded after ([`Store::resolve_login`]). An
//! attempt that never gets its answer (the process was killed, or cancelled it on shutdown)
//! counts as a failed login once its deadline has passed: even `kill -9` between request and
//! answer cannot grant a third. The count and the lock belong to the credential's identity:
//! a new password starts a fresh budget, and nothing else does but [`Store::resume`].

use std::time::Duration;

use chrono::Utc;
use rusqlite::{params, OptionalExtension as _, TransactionBehavior};

use std::sync::Arc;

use super::{lock, unix_millis, Store};
use crate::config::Connection;
use crate::probe::{Outcome, State};
use crate::scheduler::policy::{self, MAX_FAILED_LOGINS};
use crate::state::Pause;

/// How long after its probe's deadline an unanswered attempt counts as a failed login.
const STALE_AFTER: Duration = Duration::from_secs(5);

/// The answer to a request for a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Send it; resolve the attempt with its answer.
    Granted(Attempt),
    /// Do not: the budget is spent, or the account is locked.
    Spent(Pause),
    /// Not now: another login in flight (here or in another process) would spend the budget
    /// if it failed; ask again after this long, when it has its answer or counts as failed.
    Busy(Duration),
}

/// A login recorded as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    id: i64,
    started_at: i64,
    /// Failed logins in a row before this one.
    pub failed_before: u32,
}

/// What Jira made of a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// Seraph counted a failed login.
    Failed,
    /// Jira accepted the login (the count starts over).
    Accepted,
    /// The account is locked behind a CAPTCHA.
    Locked,
    /// No verdict, and nothing reached Jira's login check (no connection, no TLS, a rate
    /// limit or a server error answered instead): neither counts nor forgives.
    Unanswered,
    /// No answer to a request that was sent (a timeout): Jira may have counted it. The
    /// attempt stays, and counts as failed once its deadline has passed.
    Unsure,
}

impl Login {
    /// What Jira made of a Basic login, from the probe's outcome.
    pub fn of(outcome: &Outcome) -> Login {
        match outcome.state {
            State::Locked => Login::Locked,
            State::Unknown if outcome.reason == crate::probe::Reason::Timeout => Login::Unsure,
            State::Unknown => Login::Unanswered,
            State::Valid => Login::Accepted,
            State::Invalid | State::Expired | State::Forbidden => {
                if policy::is_failed_login(outcome.reason) {
                    Login::Failed
                } else {
                    Login::Accepted
                }
            }
        }
    }
}

/// What the budget said to a login about to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserved {
    /// Send it; resolve the attempt with its answer.
    Granted(Attempt),
    /// Do not send it: the budget is spent.
    Spent(Pause),
    /// Not now: ask again after this long (another login is in flight).
    Busy(Duration),
    /// The store could not record it (logged at WARN). It is not sent: a login that cannot
    /// be counted is not risked.
    Unrecorded,
}

/// Records, on tokio's blocking pool, a login `connection` is about to send (`owner`:
/// `daemon` or `check`, for whoever reads the store); `force` records it even when the budget
/// is spent.
pub(crate) async fn reserve(
    store: &Arc<Store>,
    connection: &Connection,
    identity: &[u8],
    owner: &'static str,
    force: bool,
) -> Reserved {
    let (store, name, identity) = (store.clone(), connection.name.clone(), identity.to_vec());
    let timeout = connection.settings.timeout;
    let owner = format!("{owner} pid {}", std::process::id());
    let reserved = tokio::task::spawn_blocking(move || {
        store.reserve_login(&name, &identity, timeout, &owner, force)
    })
    .await;
    match reserved {
        Ok(Ok(Budget::Granted(attempt))) => Reserved::Granted(attempt),
        Ok(Ok(Budget::Spent(pause))) => Reserved::Spent(pause),
        Ok(Ok(Budget::Busy(wait))) => Reserved::Busy(wait),
        Ok(Err(error)) => {
            tracing::warn!(connection = %connection.name, %error, "cannot record the login in the state store, so it is not sent");
            Reserved::Unrecorded
        }
        Err(error) => {
            tracing::warn!(connection = %connection.name, %error, "cannot record the login in the state store, so it is not sent");
            Reserved::Unrecorded
        }
    }
}

/// Records, on tokio's blocking pool, what Jira made of a login that [`reserve`] granted.
pub(crate) async fn resolve(
    store: &Arc<Store>,
    connection: &Connection,
    identity: &[u8],
    attempt: Attempt,
    outcome: &Outcome,
) {
    let login = Login::of(outcome);
    let (store, name, identity) = (store.clone(), connection.name.clone(), identity.to_vec());
    let resolved =
        tokio::task::spawn_blocking(move || store.resolve_login(&name, &identity, attempt, login))
            .await;
    if !matches!(resolved, Ok(Ok(_))) {
        tracing::warn!(connection = %connection.name, "cannot record the login's answer in the state store; it will count as failed");
    }
}

/// The budget as it stands, for `check`'s report and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginState {
    /// Failed logins in a row (attempts past their deadline included).
    pub failed: u32,
    /// Attempts sent and not yet answered.
    pub in_flight: u32,
    /// Whether the account is locked.
    pub locked: bool,
}

impl Store {
    /// Records a login about to be sent for `name`, unless the budget is spent (`force`:
    /// records it all the same).
    pub fn reserve_login(
        &self,
        name: &str,
        identity: &[u8],
        timeout: Duration,
        owner: &str,
        force: bool,
    ) -> rusqlite::Result<Budget> {
        let mut db = lock(&self.logins);
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = unix_millis(Utc::now());
        let state = settle(&tx, name, identity, now)?;
        if state.locked && !force {
            tx.commit()?;
            return Ok(Budget::Spent(Pause::Locked));
        }
        if state.failed >= MAX_FAILED_LOGINS && !force {
            tx.commit()?;
            return Ok(Budget::Spent(Pause::FailedLogins));
        }
        if state.failed + state.in_flight >= MAX_FAILED_LOGINS && !force {
            let first_stale: Option<i64> = tx.query_row(
                "SELECT min(stale_at) FROM login_attempts WHERE name = ?1",
                params![name],
                |row| row.get(0),
            )?;
            tx.commit()?;
            let wait = first_stale.map_or(0, |at| at.saturating_sub(now).max(0));
            return Ok(Budget::Busy(Duration::from_millis(
                u64::try_from(wait).unwrap_or(0),
            )));
        }
        let stale_at =
            now + i64::try_from((timeout + STALE_AFTER).as_millis()).unwrap_or(i64::MAX / 2);
        tx.execute(
            "INSERT INTO login_attempts (name, identity, started_at, stale_at, owner) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, identity, now, stale_at, owner],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Budget::Granted(Attempt {
            id,
            started_at: now,
            failed_before: state.failed,
        }))
    }

    /// Records the answer to a login; returns the failed logins in a row after it.
    pub fn resolve_login(
        &self,
        name: &str,
        identity: &[u8],
        attempt: Attempt,
        login: Login,
    ) -> rusqlite::Result<u32> {
        if login == Login::Unsure {
            // Left in place: it counts as failed once its deadline has passed.
            return self.login_state(name, identity).map(|state| state.failed);
        }
        let mut db = lock(&self.logins);
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mine = tx.execute(
            "DELETE FROM login_attempts WHERE id = ?1",
            params![attempt.id],
        )?;
        let now = unix_millis(Utc::now());
        let mut state = settle(&tx, name, identity, now)?;
        // An attempt that is gone was resumed or its identity replaced (it counts for
        // nothing), or it passed its deadline and was counted as failed already.
        let save_it = match login {
            Login::Failed => {
                state.failed += u32::from(mine == 1);
                mine == 1
            }
            Login::Accepted => {
                // Jira's count starts over; logins sent before this one and never answered
                // are moot now.
                state.failed = 0;
                tx.execute(
                    "DELETE FROM login_attempts WHERE name = ?1 AND started_at < ?2",
                    params![name, attempt.started_at],
                )?;
                true
            }
            Login::Locked => {
                state.locked = true;
                true
            }
            Login::Unanswered | Login::Unsure => false,
        };
        if save_it {
            save(&tx, name, identity, state, now)?;
        }
        tx.commit()?;
        Ok(state.failed)
    }

    /// Lifts a pause: the failed-login count and the lock are forgotten, and attempts in
    /// flight count for nothing. Returns whether there was anything to lift.
    pub fn resume(&self, name: &str) -> rusqlite::Result<bool> {
        let mut db = lock(&self.logins);
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let lifted = tx.execute(
            "DELETE FROM logins WHERE name = ?1 AND (failed > 0 OR locked != 0)",
            params![name],
        )?;
        tx.execute("DELETE FROM logins WHERE name = ?1", params![name])?;
        tx.execute("DELETE FROM login_attempts WHERE name = ?1", params![name])?;
        tx.commit()?;
        Ok(lifted > 0)
    }

    /// The budget of `name` as it stands.
    pub fn login_state(&self, name: &str, identity: &[u8]) -> rusqlite::Result<LoginState> {
        let mut db = lock(&self.logins);
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let state = settle(&tx, name, identity, unix_millis(Utc::now()))?;
        tx.commit()?;
        Ok(state)
    }
}

/// Reads the budget of `name` inside `tx`: a different identity starts afresh, and attempts
/// past their deadline are folded into the failed count.
fn settle(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    identity: &[u8],
    now: i64,
) -> rusqlite::Result<LoginState> {
    let row: Option<(Vec<u8>, u32, bool)> = tx
        .query_row(
            "SELECT identity, failed, locked FROM logins WHERE name = ?1",
            params![name],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    let mut state = LoginState::default();
    match row {
        Some((stored, failed, locked)) if stored == identity => {
            state.failed = failed;
            state.locked = locked;
        }
        Some(_) => {
            tx.execute("DELETE FROM logins WHERE name = ?1", params![name])?;
        }
        None => {}
    }
    tx.execute(
        "DELETE FROM login_attempts WHERE name = ?1 AND identity != ?2",
        params![name, identity],
    )?;
    let stale = tx.execute(
        "DELETE FROM login_attempts WHERE name = ?1 AND stale_at <= ?2",
        params![name, now],
    )?;
    if stale > 0 {
        state.failed += u32::try_from(stale).unwrap_or(u32::MAX);
        save(tx, name, identity, state, now)?;
    }
    state.in_flight = tx.query_row(
        "SELECT count(*) FROM login_attempts WHERE name = ?1",
        params![name],
        |row| row.get(0),
    )?;
    Ok(state)
}

fn save(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    identity: &[u8],
    state: LoginState,
    now: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO logins (name, identity, failed, locked, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (name) DO UPDATE SET identity = ?2, failed = ?3, locked = ?4, updated_at = ?5",
        params![name, identity, state.failed, state.locked, now],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn granted(budget: Budget) -> Attempt {
        match budget {
            Budget::Granted(attempt) => attempt,
            other => panic!("not granted: {other:?}"),
        }
    }

    #[test]
    fn two_failed_logins_spend_the_budget_whoever_sent_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let daemon = Store::open_owned(dir.path()).expect("owner");
        let check = Store::open_shared(dir.path()).expect("shared");
        let id = b"identity-1".as_slice();
        let first = granted(
            daemon
                .reserve_login("c", id, TIMEOUT, "daemon", false)
                .expect("db"),
        );
        assert_eq!(first.failed_before, 0);
        // While the daemon's login is in flight, check may send one more, and no third.
        let second = granted(
            check
                .reserve_login("c", id, TIMEOUT, "check", false)
                .expect("db"),
        );
        // A third waits for the two to be answered (or to count as failed at their deadline).
        assert!(matches!(
            daemon
                .reserve_login("c", id, TIMEOUT, "daemon", false)
                .expect("db"),
            Budget::Busy(wait) if wait <= TIMEOUT + STALE_AFTER && wait > TIMEOUT
        ));
        assert_eq!(
            daemon
                .resolve_login("c", id, first, Login::Failed)
                .expect("db"),
            1
        );
        assert_eq!(
            check
                .resolve_login("c", id, second, Login::Failed)
                .expect("db"),
            2
        );
        assert_eq!(
            check
                .reserve_login("c", id, TIMEOUT, "check", false)
                .expect("db"),
            Budget::Spent(Pause::FailedLogins)
        );
        // --force sends it all the same, and it counts.
        let forced = granted(
            check
                .reserve_login("c", id, TIMEOUT, "check", true)
                .expect("db"),
        );
        assert_eq!(
            check
                .resolve_login("c", id, forced, Login::Locked)
                .expect("db"),
            2
        );
        assert_eq!(
            daemon
                .reserve_login("c", id, TIMEOUT, "daemon", false)
                .expect("db"),
            Budget::Spent(Pause::Locked)
        );
        // Resume forgets it all; a new identity would too.
        assert!(daemon.resume("c").expect("db"));
        assert!(!daemon.resume("c").expect("db"), "nothing left to lift");
        let again = granted(
            daemon
                .reserve_login("c", id, TIMEOUT, "daemon", false)
                .expect("db"),
        );
        assert_eq!(again.failed_before, 0);
        assert_eq!(
            daemon
                .resolve_login("c", id, again, Login::Failed)
                .expect("db"),
            1
        );
        let other = granted(
            daemon
                .reserve_login("c", b"identity-2", TIMEOUT, "daemon", false)
                .expect("db"),
        );
        assert_eq!(other.failed_before, 0, "a new password starts afresh");
    }

    #[test]
    fn a_login_that_never_got_its_answer_counts_as_failed_after_its_deadline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = b"identity".as_slice();
        {
            // The process is killed between request and answer.
            let store = Store::open_owned(dir.path()).expect("owner");
            granted(
                store
                    .reserve_login("c", id, Duration::ZERO, "daemon", false)
                    .expect("db"),
            );
        }
        let store = Store::open_owned(dir.path()).expect("owner");
        let state = store.login_state("c", id).expect("db");
        assert_eq!(state.failed + state.in_flight, 1, "{state:?}");
        // A timeout is not an answer: the attempt stays and counts at its deadline.
        let unsure = granted(
            store
                .reserve_login("d", id, Duration::ZERO, "daemon", false)
                .expect("db"),
        );
        assert_eq!(
            store
                .resolve_login("d", id, unsure, Login::Unsure)
                .expect("db"),
            0
        );
        assert_eq!(store.login_state("d", id).expect("db").in_flight, 1);
        std::thread::sleep(STALE_AFTER + Duration::from_millis(100));
        let state = store.login_state("c", id).expect("db");
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
                .reserve_login("c", id, TIMEOUT, "daemon", false)
                .expect("db"),
        );
        assert_eq!(last.failed_before, 1);
        assert_eq!(
            store
                .resolve_login("c", id, last, Login::Accepted)
                .expect("db"),
            0
        );
    }
}
