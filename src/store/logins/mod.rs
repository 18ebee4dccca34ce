//! The login budget of Basic connections, one per login account, shared by every process
//! that uses the store: the daemon, `credwatch check` beside it, and the daemon after a
//! restart.
//!
//! Jira counts failed logins per user (docs/jira-answers.md §13): whatever connection name,
//! process or URL alias sent the username, it adds to one count, and the third failure locks
//! the account behind a CAPTCHA. So the budget is keyed by the login account
//! ([`crate::config::account`]), not the connection. A login is recorded here, durably, before
//! it is sent ([`Store::reserve_login`]), and the answer is recorded after
//! ([`Store::resolve_login`]). An attempt that never gets its answer (the process was killed,
//! or cancelled it on shutdown) counts as a failed login once its deadline has passed: even
//! `kill -9` between request and answer cannot grant a third.
//!
//! A new password does not reset the count, since Jira's does not start over either: only a
//! login Jira accepts (which resets Jira's count too) or [`Store::resume`] (a person reset the
//! count in Jira, or logged in through the browser) does.
//!
//! Format 1 stores kept the budget per connection name (tables `logins` and
//! `login_attempts`). Those rows wait there until a configuration names them:
//! [`Store::adopt_logins`] adds them to their account's (capped at the budget), and a name that
//! never comes back is pruned with the connections no longer configured.

use std::time::Duration;

use chrono::Utc;
use rusqlite::{params, OptionalExtension as _, TransactionBehavior};

use std::sync::Arc;

use super::{lock, unix_millis, Store};
use crate::config::Connection;
use crate::probe::{Outcome, State};

use crate::state::Pause;

/// Consecutive failed Basic logins of a login account after which credwatch sends no more
/// (Jira locks at 3 by default, docs/jira-answers.md §13).
pub(crate) const MAX_FAILED_LOGINS: u32 = 2;

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
            // The password was never checked (docs/jira-answers.md §2).
            State::Forbidden if outcome.reason == crate::probe::Reason::BasicAuthDisabled => {
                Login::Unanswered
            }
            // A refusal that names the caller came from the product, after the login; one that
            // names nobody may come from something in front of it (a proxy, an SSO app), and
            // neither counts nor forgives (§14, §15).
            State::Forbidden if outcome.identity.is_none() => Login::Unanswered,
            State::Invalid | State::Expired | State::Forbidden => {
                if outcome.reason.is_failed_login() {
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
/// is spent. A connection without a login account (not Basic) is never counted.
pub(crate) async fn reserve(
    store: &Arc<Store>,
    connection: &Connection,
    owner: &'static str,
    force: bool,
) -> Reserved {
    let Some(account) = connection.login_account() else {
        return Reserved::Unrecorded;
    };
    let (store, name, account) = (store.clone(), connection.name.clone(), account.to_owned());
    let timeout = connection.settings.timeout;
    let owner = format!("{owner} pid {}", std::process::id());
    let reserved = tokio::task::spawn_blocking(move || {
        store.reserve_login(&account, &name, timeout, &owner, force)
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
    attempt: Attempt,
    outcome: &Outcome,
) {
    let Some(account) = connection.login_account() else {
        return;
    };
    let login = Login::of(outcome);
    let (store, account) = (store.clone(), account.to_owned());
    let resolved =
        tokio::task::spawn_blocking(move || store.resolve_login(&account, attempt, login)).await;
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
    /// Records a login about to be sent to `account` by the connection `name`, unless the
    /// account's budget is spent (`force`: records it all the same).
    pub fn reserve_login(
        &self,
        account: &str,
        name: &str,
        timeout: Duration,
        owner: &str,
        force: bool,
    ) -> rusqlite::Result<Budget> {
        let mut db = lock(&self.logins);
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = unix_millis(Utc::now());
        let state = settle(&tx, account, now)?;
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
                "SELECT min(stale_at) FROM account_attempts WHERE account = ?1",
                params![account],
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
            "INSERT INTO account_attempts (account, name, started_at, stale_at, owner) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![account, name, now, stale_at, owner],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Budget::Granted(Attempt {
            id,
            started_at: now,
            failed_before: state.failed,
        }))
    }

    /// Records the answer to a login; returns the account's failed logins in a row after it.
    pub fn resolve_login(
        &self,
        account: &str,
        attempt: Attempt,
        login: Login,
    ) -> rusqlite::Result<u32> {
        if login == Login::Unsure {
            // Left in place: it counts as failed once its deadline has passed.
            return self.login_state(account).map(|state| state.failed);
        }
        let mut db = lock(&self.logins);
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mine = tx.execute(
            "DELETE FROM account_attempts WHERE id = ?1",
            params![attempt.id],
        )?;
        let now = unix_millis(Utc::now());
        let mut state = settle(&tx, account, now)?;
        // An attempt that is gone was resumed (it counts for nothing), or it passed its
        // deadline and was counted as failed already.
        let save_it = match login {
            Login::Failed => {
                state.failed += u32::from(mine == 1);
                mine == 1
            }
            Login::Accepted => {
                // Jira's count starts over. Other logins of the account still in flight (another
                // connection's, perhaps with another password) are not forgiven: Jira may count
                // them after this success; they count when they fail or pass their deadline.
                state.failed = 0;
                true
            }
            Login::Locked => {
                state.locked = true;
                true
            }
            Login::Unanswered | Login::Unsure => false,
        };
        if save_it {
            save(&tx, account, state, now)?;
        }
        tx.commit()?;
        Ok(state.failed)
    }

    /// Lifts an account's pause (a person reset Jira's count, or logged in through the
    /// browser): the failed-login count and the lock are forgotten; attempts still in flight
    /// keep counting. Returns whether there was anything to lift.
    pub fn resume(&self, account: &str) -> rusqlite::Result<bool> {
        let mut db = lock(&self.logins);
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let lifted = tx.execute(
            "DELETE FROM account_logins WHERE account = ?1 AND (failed > 0 OR locked != 0)",
            params![account],
        )?;
        tx.execute(
            "DELETE FROM account_logins WHERE account = ?1",
            params![account],
        )?;
        // Logins still in flight stay: Jira may yet count them, and they count when they fail
        // or pass their deadline.
        tx.commit()?;
        Ok(lifted > 0)
    }

    /// The budget of `account` as it stands.
    pub fn login_state(&self, account: &str) -> rusqlite::Result<LoginState> {
        let mut db = lock(&self.logins);
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let state = settle(&tx, account, unix_millis(Utc::now()))?;
        tx.commit()?;
        Ok(state)
    }

    /// Adds the per-name budgets a format-1 store kept (and that a configuration names now)
    /// to their accounts: counts add up, capped at the budget; a lock carries over; attempts
    /// in flight keep counting. `members` pairs each configured Basic connection's name with
    /// its account. Returns how many names were adopted.
    pub fn adopt_logins(&self, members: &[(&str, &str)]) -> rusqlite::Result<usize> {
        let mut db = lock(&self.logins);
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let waiting: i64 = tx.query_row(
            "SELECT (SELECT count(*) FROM logins) + (SELECT count(*) FROM login_attempts)",
            [],
            |row| row.get(0),
        )?;
        if waiting == 0 {
            tx.commit()?;
            return Ok(0);
        }
        let now = unix_millis(Utc::now());
        let mut adopted = 0;
        for (name, account) in members {
            let row: Option<(u32, bool)> = tx
                .query_row(
                    "DELETE FROM logins WHERE name = ?1 RETURNING failed, locked",
                    params![name],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let moved = tx.execute(
                "INSERT INTO account_attempts (account, name, started_at, stale_at, owner)
                 SELECT ?2, name, started_at, stale_at, owner FROM login_attempts WHERE name = ?1",
                params![name, account],
            )?;
            tx.execute("DELETE FROM login_attempts WHERE name = ?1", params![name])?;
            if let Some((failed, locked)) = row {
                let mut state = settle(&tx, account, now)?;
                state.failed = (state.failed + failed).min(MAX_FAILED_LOGINS);
                state.locked |= locked;
                save(&tx, account, state, now)?;
            }
            if row.is_some() || moved > 0 {
                adopted += 1;
            }
        }
        tx.commit()?;
        Ok(adopted)
    }
}

/// Reads the budget of `account` inside `tx`: attempts past their deadline are folded into
/// the failed count.
fn settle(tx: &rusqlite::Transaction<'_>, account: &str, now: i64) -> rusqlite::Result<LoginState> {
    let row: Option<(u32, bool)> = tx
        .query_row(
            "SELECT failed, locked FROM account_logins WHERE account = ?1",
            params![account],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let mut state = LoginState::default();
    if let Some((failed, locked)) = row {
        state.failed = failed;
        state.locked = locked;
    }
    let stale = tx.execute(
        "DELETE FROM account_attempts WHERE account = ?1 AND stale_at <= ?2",
        params![account, now],
    )?;
    if stale > 0 {
        state.failed += u32::try_from(stale).unwrap_or(u32::MAX);
        save(tx, account, state, now)?;
    }
    state.in_flight = tx.query_row(
        "SELECT count(*) FROM account_attempts WHERE account = ?1",
        params![account],
        |row| row.get(0),
    )?;
    Ok(state)
}

fn save(
    tx: &rusqlite::Transaction<'_>,
    account: &str,
    state: LoginState,
    now: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO account_logins (account, failed, locked, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (account) DO UPDATE SET failed = ?2, locked = ?3, updated_at = ?4",
        params![account, state.failed, state.locked, now],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
