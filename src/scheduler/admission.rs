//! The one admission step before a probe: the site's and the OAuth token endpoint's gates
//! (this process's, and those the state store keeps, which a `check` or the daemon before a
//! restart closed),
//! the per-site, per-endpoint and global permits, and the login account's budget for a Basic
//! login (recorded, on disk, before it is sent). What it grants is held for the probe and
//! given back when the probe is done ([`Admitted::finish`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::SemaphorePermit;
use tokio::time::Instant;

use chrono::Utc;

use super::Bounds;
use crate::config::Connection;
use crate::probe::Outcome;
use crate::state::{Board, Pause};
use crate::store::logins::{self, Attempt, Reserved};
use crate::store::Store;

/// Why a probe is not sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// The site (or the token endpoint) is closed until then (`Retry-After`, backoff).
    Gated(Instant),
    /// The login account's budget is spent: no login until a person resumes it.
    Spent(Pause),
    /// Another login of the account is in flight and could spend the budget, or the store
    /// cannot record the login: ask again after this long.
    Later(Duration),
}

/// A probe let through: the permits it holds, and its login attempt.
pub(super) struct Admitted<'a> {
    _site: SemaphorePermit<'a>,
    _token: Option<SemaphorePermit<'a>>,
    _global: SemaphorePermit<'a>,
    attempt: Option<Attempt>,
    logins: Option<&'a Arc<Store>>,
}

impl Admitted<'_> {
    /// Failed logins of the account before this probe's, when it sends a login.
    pub(super) fn failed_before(&self) -> Option<u32> {
        self.attempt.map(|a| a.failed_before)
    }

    /// Records what Jira made of the login, if one was sent, and gives the permits back.
    pub(super) async fn finish(self, connection: &Connection, outcome: &Outcome) {
        if let (Some(store), Some(attempt)) = (self.logins, self.attempt) {
            logins::resolve(store, connection, attempt, outcome).await;
        }
    }
}

/// Until when the state store says the connection's site or token endpoint is closed (a gate
/// closed by another process, or before a restart), if it is.
fn stored_gate(connection: &Connection, status: &Board, now: Instant) -> Option<Instant> {
    let wall = Utc::now();
    let until = [Some(connection.site()), connection.token_site()]
        .into_iter()
        .flatten()
        .filter_map(|key| status.stored_gate(key, wall))
        .max()?;
    Some(now + (until - wall).to_std().unwrap_or(Duration::ZERO))
}

/// Admits one probe of `connection` under `bounds`, its account's budget kept in `logins`.
/// Waits for permits (never while holding a global one for a site that hangs), never for a
/// gate or the budget: those answer at once.
pub(super) async fn admit<'a>(
    connection: &Connection,
    bounds: &'a Bounds,
    logins: &'a Arc<Store>,
    status: &Board,
    interval: Duration,
) -> Result<Admitted<'a>, Refused> {
    let now = Instant::now();
    let token_blocked = bounds.token.as_ref().and_then(|t| t.blocked_until(now));
    let stored = stored_gate(connection, status, now);
    if let Some(until) = bounds
        .site
        .blocked_until(now)
        .max(token_blocked)
        .max(stored)
    {
        return Err(Refused::Gated(until));
    }
    // The site's permit first: a connection queueing behind its own site's bound (a site that
    // hangs) must not hold a global permit meanwhile, or a slow site starves every other one.
    // Neither semaphore is ever closed.
    let site = bounds
        .site
        .permits
        .acquire()
        .await
        .map_err(|_| Refused::Later(interval))?;
    // An OAuth client's token endpoint bounds its requests in flight like a site.
    let token = match &bounds.token {
        Some(token) => Some(
            token
                .permits
                .acquire()
                .await
                .map_err(|_| Refused::Later(interval))?,
        ),
        None => None,
    };
    let global = bounds
        .global
        .acquire()
        .await
        .map_err(|_| Refused::Later(interval))?;
    // A password is recorded as sent, on disk, before it is sent.
    let attempt = match connection.login_account() {
        Some(_) => match logins::reserve(logins, connection, "daemon", false).await {
            Reserved::Granted(attempt) => Some(attempt),
            Reserved::Spent(pause) => return Err(Refused::Spent(pause)),
            Reserved::Busy(wait) => return Err(Refused::Later(wait.max(Duration::from_secs(1)))),
            Reserved::Unrecorded => return Err(Refused::Later(interval)),
        },
        None => None,
    };
    Ok(Admitted {
        _site: site,
        _token: token,
        _global: global,
        logins: attempt.map(|_| logins),
        attempt,
    })
}
