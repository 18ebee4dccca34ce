//! One connection's check: what the daemon's store remembers of it, the login account's
//! budget for a Basic login, the probe cycle (the daemon's, [`Prober::cycle`]) with `check`'s
//! retries after a short `Retry-After` around it, and the report; or, when nothing may be
//! sent, the report that says why.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backon::{ConstantBuilder, Retryable};
use chrono::{DateTime, Utc};

use super::{Report, MAX_RETRIES, MAX_RETRY_WAIT};
use crate::config::Connection;
use crate::expiry::{self, Listing};
use crate::org::OrgMatch;
use crate::probe::{Cycle, Facts, LastMyself, Outcome, Prober, Reason, State, TokenListOutcome};
use crate::state::{Pause, Pending};
use crate::store::logins::{self, Reserved};
use crate::store::Store;

/// What checking one connection needs besides the connection.
pub(super) struct Job {
    pub(super) prober: Prober,
    /// The daemon's store, for what it remembers.
    pub(super) store: Option<Arc<Store>>,
    /// Where the login accounts' budgets are kept.
    pub(super) logins: Option<Arc<Store>>,
    /// Send a Basic login even when the budget is spent.
    pub(super) force: bool,
    /// What the connection's organization's list says of its token.
    pub(super) matched: Option<OrgMatch>,
    /// The gates the daemon's store says are closed (empty with `--ignore-rate-limits`).
    pub(super) gates: Arc<HashMap<String, DateTime<Utc>>>,
}

impl Job {
    /// Checks `connection` once.
    pub(super) async fn check(self, connection: Connection) -> Report {
        let remembered = match &self.store {
            Some(store) => remembered(store, &connection).await,
            None => Remembered::default(),
        };
        // A site or token endpoint that asked for quiet (told the daemon, or another check)
        // gets no request.
        let now = Utc::now();
        let gated = [Some(connection.site()), connection.token_site()]
            .into_iter()
            .flatten()
            .filter_map(|key| self.gates.get(key).copied().filter(|until| *until > now))
            .max();
        if let Some(until) = gated {
            return gated_report(connection, until, remembered);
        }
        // The organization's list tells the expiry, or a block, before the probe.
        let listed = self.matched.map(Listing::Org);
        let facts = expiry::facts(&connection, listed.as_ref());
        let cycled = match (&self.logins, connection.login_account()) {
            (Some(logins), Some(_)) => {
                budgeted(&self.prober, logins, &connection, facts, self.force).await
            }
            _ => Ok(cycle_with_retry(&self.prober, &connection, facts).await),
        };
        let (cycle, attempts) = match cycled {
            Ok(cycled) => cycled,
            Err(refused) => return refused_report(connection, refused, remembered),
        };
        if let Some(store) = &self.store {
            keep_gate(store, &connection, &cycle.outcome).await;
        }
        let listing = match cycle.list {
            Some(TokenListOutcome::Listed(entries)) => Some(Listing::Tokens(entries)),
            Some(TokenListOutcome::Unavailable(code)) => Some(Listing::Unavailable(code)),
            Some(TokenListOutcome::Failed(failure)) => {
                tracing::info!(connection = %connection.name, reason = %failure.reason, "the token list could not be fetched");
                None
            }
            None => None,
        };
        let listing = listing.or(listed);
        let expiry = expiry::assess(&connection, listing.as_ref(), Utc::now());
        Report {
            connection,
            outcome: cycle.outcome,
            attempts,
            expiry,
            paused: None,
            pending: remembered.pending,
            owned_by_replica: None,
            owned_by_shard: None,
            gated_until: None,
        }
    }
}

/// A rate limit `check` was given closes the stored gate, so that the daemon beside it (and
/// the next `check`) leaves the site or token endpoint alone until it lifts: `Retry-After` (a
/// day at most), or the connection's first backoff without one.
async fn keep_gate(store: &Arc<Store>, connection: &Connection, outcome: &Outcome) {
    if outcome.reason != Reason::RateLimited {
        return;
    }
    let key = match connection.token_site() {
        Some(key) if outcome.token_request == crate::probe::TokenRequest::Failed => key,
        _ => connection.site(),
    };
    let now = Utc::now();
    let wait = outcome
        .retry_after
        .map_or(connection.settings.backoff_initial, |r| {
            r.delay_from(now).min(Duration::from_secs(86_400))
        });
    let until = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero());
    let (store, key) = (store.clone(), key.to_owned());
    let kept = tokio::task::spawn_blocking(move || store.close_gate(&key, until)).await;
    if !matches!(kept, Ok(Ok(()))) {
        tracing::warn!(connection = %connection.name, "cannot keep the site's gate in the state store");
    }
}

/// The report of a connection whose site or token endpoint is gated: nothing sent.
fn gated_report(connection: Connection, until: DateTime<Utc>, remembered: Remembered) -> Report {
    let mut outcome = internal_failure(&connection);
    outcome.reason = Reason::RateLimited;
    outcome.hint = Reason::RateLimited.hint(connection.settings.credential_type());
    outcome.detail = Some(format!(
        "not probed: the site (or its token endpoint) asked for quiet until {} (a Retry-After the daemon or another check was given); --ignore-rate-limits sends anyway",
        until.to_rfc3339()
    ));
    Report {
        expiry: expiry::assess(&connection, None, Utc::now()),
        connection,
        outcome,
        attempts: 0,
        paused: None,
        pending: remembered.pending,
        owned_by_replica: None,
        owned_by_shard: None,
        gated_until: Some(until),
    }
}

/// The report of a connection nothing was sent for: its budget is spent, another login of
/// its account is in flight, or the store cannot record the login.
fn refused_report(connection: Connection, refused: Reserved, remembered: Remembered) -> Report {
    let expiry = expiry::assess(&connection, None, Utc::now());
    let paused = match refused {
        Reserved::Spent(pause) => Some(pause),
        _ => None,
    };
    Report {
        outcome: not_probed(&connection, refused, remembered.verdict),
        connection,
        attempts: 0,
        expiry,
        paused,
        pending: remembered.pending,
        owned_by_replica: None,
        owned_by_shard: None,
        gated_until: None,
    }
}

/// The report of a Basic connection whose login account another shard's daemon owns (the
/// store beside this check is another shard's): not probed, and where to check it.
pub(super) fn on_another_shard(connection: Connection, owner: u32) -> Report {
    let mut report = owned_elsewhere(connection, owner);
    report.owned_by_replica = None;
    report.owned_by_shard = Some(owner);
    report.outcome.detail = Some(format!(
        "not probed: shard {owner} owns this login account and keeps its login budget; check it beside that shard's daemon (its state directory)"
    ));
    report
}

/// The report of a connection whose login account another replica owns: not probed, and
/// who to ask.
pub(super) fn owned_elsewhere(connection: Connection, owner: u32) -> Report {
    let mut outcome = internal_failure(&connection);
    outcome.hint = None;
    outcome.detail = Some(format!(
        "not probed: replica {owner} of the HA group owns this login account and sends its logins; check it with --replica {owner}/N"
    ));
    Report {
        expiry: expiry::assess(&connection, None, Utc::now()),
        connection,
        outcome,
        attempts: 0,
        paused: None,
        pending: None,
        owned_by_replica: Some(owner),
        owned_by_shard: None,
        gated_until: None,
    }
}

/// What the store remembers of a connection whose credential is unchanged.
#[derive(Debug, Default)]
struct Remembered {
    verdict: Option<(State, Reason)>,
    pending: Option<Pending>,
}

async fn remembered(store: &Arc<Store>, connection: &Connection) -> Remembered {
    let store = store.clone();
    let connection = connection.clone();
    tokio::task::spawn_blocking(move || {
        let identity = store.identity(&connection);
        let record = store.record(&connection.name, &identity).ok().flatten();
        Remembered {
            verdict: record
                .as_ref()
                .and_then(|r| r.verdict.map(|v| (v.state, v.reason))),
            pending: record.and_then(|r| r.pending),
        }
    })
    .await
    .unwrap_or_default()
}

/// A Basic probe cycle under the account's login budget: recorded before it is sent, resolved
/// with its answer, and not sent at all (`Err`) when the budget is spent, unless `force`.
async fn budgeted(
    prober: &Prober,
    store: &Arc<Store>,
    connection: &Connection,
    facts: Facts,
    force: bool,
) -> Result<(Cycle, u32), Reserved> {
    let attempt = match logins::reserve(store, connection, "check", force).await {
        Reserved::Granted(attempt) => Some(attempt),
        // With --force, a login the store cannot record is sent all the same.
        Reserved::Unrecorded if force => None,
        refused => return Err(refused),
    };
    // A password is never sent twice in one check: no retry, whatever Jira answers.
    let cycle = cycle_once(prober, connection, facts).await;
    if let Some(attempt) = attempt {
        logins::resolve(store, connection, attempt, &cycle.outcome).await;
    }
    Ok((cycle, 1))
}

/// The probe cycle the daemon runs, with its token list whenever the credential is valid.
async fn cycle_once(prober: &Prober, connection: &Connection, facts: Facts) -> Cycle {
    prober
        .cycle(
            connection,
            &connection.authorization(),
            facts,
            &mut LastMyself::default(),
            true,
        )
        .await
}

/// The report of a connection whose login budget is spent: what the store last knew, and
/// why nothing was sent.
fn not_probed(
    connection: &Connection,
    refused: Reserved,
    verdict: Option<(State, Reason)>,
) -> Outcome {
    let (fallback, hint, detail) = match refused {
        Reserved::Spent(pause) => (
            match pause {
                Pause::Locked => (State::Locked, Reason::CaptchaRequired),
                Pause::FailedLogins => (State::Invalid, Reason::Unauthorized),
            },
            Some(pause.hint(connection.settings.product)),
            format!(
                "not probed: the login account's budget is spent ({}); --force sends the login anyway",
                pause.as_str()
            ),
        ),
        Reserved::Busy(wait) => (
            (State::Unknown, Reason::RateLimited),
            None,
            format!(
                "not probed: another login for this account is in flight (the daemon's or another check's), and a third failure could lock it; try again in {}",
                humantime::format_duration(Duration::from_secs(wait.as_secs().max(1)))
            ),
        ),
        _ => (
            (State::Unknown, Reason::UnexpectedResponse),
            None,
            "not probed: the state store cannot record the login, and a login that cannot be counted is not sent; --force sends it anyway".to_owned(),
        ),
    };
    let (state, reason) = verdict.unwrap_or(fallback);
    Outcome {
        state,
        reason,
        http_status: None,
        latency: Duration::ZERO,
        identity: None,
        rate_limit: crate::probe::RateLimit::default(),
        retry_after: None,
        hint,
        detail: Some(detail),
        finished_at: Utc::now(),
        token_request: crate::probe::TokenRequest::None,
    }
}

pub(super) fn internal_failure(connection: &Connection) -> Outcome {
    Outcome {
        state: State::Unknown,
        reason: Reason::UnexpectedResponse,
        http_status: None,
        latency: Duration::ZERO,
        identity: None,
        rate_limit: crate::probe::RateLimit::default(),
        retry_after: None,
        hint: Reason::UnexpectedResponse.hint(connection.settings.credential_type()),
        detail: Some("credwatch failed while probing this connection (see the log)".to_owned()),
        finished_at: Utc::now(),
        token_request: crate::probe::TokenRequest::None,
    }
}

/// How long to wait before retrying, if this outcome may be retried at all.
fn retry_wait(outcome: &Outcome) -> Option<Duration> {
    if outcome.reason != Reason::RateLimited {
        return None;
    }
    let wait = outcome.retry_after?.delay_from(Utc::now());
    (wait <= MAX_RETRY_WAIT).then_some(wait)
}

/// The probe cycle, retried after a rate limit whose `Retry-After` fits within
/// [`MAX_RETRY_WAIT`], at most [`MAX_RETRIES`] times: `check`'s own policy around the cycle.
async fn cycle_with_retry(prober: &Prober, connection: &Connection, facts: Facts) -> (Cycle, u32) {
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let result = (|| async {
        attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cycle = cycle_once(prober, connection, facts).await;
        if retry_wait(&cycle.outcome).is_some() {
            Err(cycle)
        } else {
            Ok(cycle)
        }
    })
    .retry(ConstantBuilder::default().with_max_times(MAX_RETRIES))
    .sleep(tokio::time::sleep)
    // Retry-After is the wait; the builder only bounds how many times.
    .adjust(|cycle, next| next.and(retry_wait(&cycle.outcome)))
    .notify(|cycle, wait| {
        tracing::info!(
            connection = %connection.name,
            http_status = ?cycle.outcome.http_status,
            wait = %humantime::format_duration(wait),
            "rate limited; retrying after Retry-After"
        );
    })
    .await;
    let cycle = result.unwrap_or_else(|cycle| cycle);
    (cycle, attempts.into_inner())
}
