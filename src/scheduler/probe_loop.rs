//! One connection's probe loop: wait for the due time, probe under the site's and the global
//! bound, record the outcome, let the policy decide the next wait, and again; and the log
//! line of a state change. The expiry reminders it logs are in [`super::reminders`].
//!
//! A Basic login goes through its login account's budget (`store/logins.rs`): it is recorded
//! before it is sent and resolved with its answer, so the budget is shared by every connection
//! of the account, holds across restarts and is shared with `credwatch check`.

use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::policy::{self, Decision, Policy};
use super::reminders::{Reminders, REMINDER_CHECK};
use super::secrets::reread_secret;
use super::{Bounds, Shared};
use crate::config::Connection;
use crate::expiry::{self, Listing, TokenList};
use crate::probe::{LastMyself, State, TokenListOutcome, TokenRequest};
use crate::state::{Board, Probed, Schedule};
use crate::store::logins::{self, Reserved};

/// How far apart the connections of a site resume after a rate limit lifts, at most.
const RESUME_SPREAD: Duration = Duration::from_secs(2);

/// The wall-clock time of a monotonic instant.
fn wall_clock(at: Instant, now: Instant) -> chrono::DateTime<Utc> {
    let ahead = at.saturating_duration_since(now);
    Utc::now() + chrono::Duration::from_std(ahead).unwrap_or(chrono::Duration::zero())
}

/// What wakes a connection's task besides its due time.
pub(super) struct Wakers {
    /// Its secret file changed.
    pub poke: Arc<Notify>,
    /// A person lifted its pause.
    pub resume: Arc<Notify>,
}

/// One connection's life: wait, probe, record, decide, and again. `first` is when the first
/// probe is due (`None`: the connection starts paused).
pub(super) async fn probe_loop(
    shared: Arc<Shared>,
    mut connection: Arc<Connection>,
    wakers: Wakers,
    mut policy: Policy,
    first: Option<Instant>,
) {
    let name = connection.name.clone();
    let mut due = first;
    // When the PAT list is next fetched; `None`: with the next valid probe.
    let mut tokens_due: Option<Instant> = None;
    let mut reminders = Reminders::default();
    // The expiry that turns a rejection into `expired`; it changes only with this task's own
    // token lists and secret re-reads, so the task keeps it.
    let mut known_expiry = shared.status.known_expiry(&name);
    // Kept while the secret stays the same: the header is built once, not per probe.
    let mut authorization = connection.authorization();
    let mut bounds = shared.site(&connection);
    // The account the last `myself` body named: the same body again is not read again.
    let mut last_myself = LastMyself::default();
    // Asked once per secret: what the gateway said before a restart or a reload stands.
    last_myself.gateway = shared.status.gateway_try(&name);
    // One registration with each notifier for as long as none comes, not one per probe.
    let mut poked = pin!(wakers.poke.notified());
    let mut resumed = pin!(wakers.resume.notified());
    loop {
        // The task stops when the scheduler aborts it (reload or shutdown): dropping this
        // future cancels a probe in flight and frees its permits.
        tokio::select! {
            biased;
            _ = &mut poked => {
                poked.set(wakers.poke.notified());
                if let Some(updated) = reread_secret(&connection) {
                    connection = Arc::new(updated);
                    shared.status.update_connection(connection.clone());
                    known_expiry = shared.status.known_expiry(&name);
                    authorization = connection.authorization();
                    // What the gateway said was about the old secret.
                    last_myself.gateway = None;
                    // A new secret is a new credential: nothing pending, no backoff. The
                    // account's login budget stays as it is: Jira's count does not start over.
                    policy = Policy::new(&connection);
                    due = Some(Instant::now());
                    tokens_due = None;
                    tracing::info!(connection = %name, "the secret changed; probing now");
                }
                continue;
            }
            _ = &mut resumed => {
                resumed.set(wakers.resume.notified());
                policy.resume();
                // A person fixed the account, often the password file with it: the secret is
                // read again before the probe (the poke branch runs first), not at the next poll.
                wakers.poke.notify_one();
                due = Some(Instant::now());
                let now = Instant::now();
                shared.status.schedule(&name, schedule(&policy, Some(now), now, Duration::ZERO), None);
                continue;
            }
            _ = sleep_until(due.map(|due| policy::slot(due, shared.epoch))) => {}
        }
        // The rhythm follows the exact due time; lateness is counted from the slot.
        let scheduled = due.unwrap_or_else(Instant::now);
        let slot = policy::slot(scheduled, shared.epoch);
        if bounds.generation != shared.limits_generation.load(Ordering::Acquire) {
            bounds = shared.site(&connection);
        }
        let Bounds {
            global,
            site,
            token,
            ..
        } = &bounds;
        let now = Instant::now();
        let token_blocked = token.as_ref().and_then(|t| t.blocked_until(now));
        if let Some(until) = site.blocked_until(now).max(token_blocked) {
            let resume = until + policy::start_offset(&name, RESUME_SPREAD);
            due = Some(resume);
            let period = resume.saturating_duration_since(scheduled);
            shared
                .status
                .schedule(&name, schedule(&policy, due, now, period), policy.pending());
            continue;
        }
        let basic_budget = connection.login_account().map(|_| shared.logins.clone());
        let probe = async {
            // The site's permit first: a connection queueing behind its own site's bound
            // (a site that hangs) must not hold a global permit meanwhile, or a slow site
            // starves every other one. Neither semaphore is ever closed.
            let _site = site.permits.acquire().await;
            // An OAuth client's token endpoint bounds its requests in flight like a site.
            let _token = match token {
                Some(token) => Some(token.permits.acquire().await),
                None => None,
            };
            let _global = global.acquire().await;
            let late = Instant::now().saturating_duration_since(slot);
            // A password is recorded as sent, on disk, before it is sent.
            let attempt = match &basic_budget {
                Some(store) => match logins::reserve(store, &connection, "daemon", false).await {
                    Reserved::Granted(attempt) => Some(attempt),
                    refused => return Err(refused),
                },
                None => None,
            };
            // The organization's list may have told the expiry since the last probe.
            let known_expiry = match connection.settings.org {
                Some(_) => shared.status.known_expiry(&name),
                None => known_expiry,
            };
            let mut outcome = shared
                .prober
                .probe_authorized(&connection, &authorization, known_expiry, &mut last_myself)
                .await;
            if connection.settings.org.is_some() && outcome.http_status == Some(401) {
                crate::org::explain(&mut outcome, shared.status.org_match(&name).as_ref());
            }
            if let (Some(store), Some(attempt)) = (&basic_budget, attempt) {
                logins::resolve(store, &connection, attempt, &outcome).await;
            }
            // The token list rides on a valid probe, under the same permits: never more often
            // than the probe, and only while the site is open.
            let list_now = outcome.state == State::Valid
                && expiry::discoverable(&connection)
                && tokens_due.is_none_or(|at| Instant::now() >= at)
                && site.blocked_until(Instant::now()).is_none();
            let list = if list_now {
                Some(shared.prober.list_tokens(&connection).await)
            } else {
                None
            };
            Ok((outcome, list, late, attempt.map(|a| a.failed_before)))
        };
        let (outcome, list, late, failed_before) = match probe.await {
            Ok(probed) => probed,
            Err(Reserved::Spent(pause)) => {
                // The account's budget was spent elsewhere (another connection of the
                // account, `check`, or logins that never got an answer): no login is sent.
                let (_, confirmed) = policy.spent(pause);
                due = None;
                tracing::warn!(connection = %name, pause = pause.as_str(), hint = pause.hint(), "the login budget is spent; stopped probing this connection");
                if confirmed {
                    log_transition(&connection, shared.status.confirm_pending(&name));
                }
                let paused = Schedule {
                    paused: Some(pause),
                    ..schedule(&policy, None, Instant::now(), Duration::ZERO)
                };
                shared.status.schedule(&name, paused, None);
                continue;
            }
            Err(refused) => {
                // Not now: another login is in flight (try again once it is answered or
                // counts as failed), or the store cannot record one (after the backoff).
                let wait = match refused {
                    Reserved::Busy(wait) => wait.max(Duration::from_secs(1)),
                    _ => connection
                        .settings
                        .interval
                        .max(connection.settings.backoff_initial),
                };
                let now = Instant::now();
                due = Some(now + wait);
                shared
                    .status
                    .schedule(&name, schedule(&policy, due, now, wait), policy.pending());
                continue;
            }
        };
        if let Some(failed) = failed_before {
            policy.set_failed_logins(failed);
        }

        let now = Instant::now();
        // The token endpoint's answers close and open its gate; Jira's, the site's.
        let gate = match token {
            Some(token) if outcome.token_request == TokenRequest::Failed => token,
            _ => site,
        };
        if let (Some(token), TokenRequest::Granted) = (token, outcome.token_request) {
            token.reopen();
        }
        let mut reopens = gate.observe(&connection, &outcome, now);
        let list_fetched = list.is_some();
        let mut tokens = None;
        if let Some(list) = list {
            // Anchored to the probe's due time, like the probes themselves, so a cadence equal
            // to the interval lists with every probe rather than every other one.
            let cadence = connection
                .settings
                .token_list_interval
                .max(connection.settings.interval);
            tokens_due = Some(scheduled + cadence);
            let listing = match list {
                TokenListOutcome::Listed(entries) => Some(Listing::Tokens(entries)),
                TokenListOutcome::Unavailable(code) => Some(Listing::Unavailable(code)),
                TokenListOutcome::Failed(failure) => {
                    tracing::debug!(connection = %name, reason = %failure.reason, "the token list could not be fetched");
                    reopens = reopens.or(site.observe(&connection, &failure, now));
                    // Try again with a later probe, not at the slow cadence.
                    tokens_due = Some(
                        now + connection
                            .settings
                            .interval
                            .max(connection.settings.backoff_initial),
                    );
                    None
                }
            };
            if let Some(listing) = listing {
                let list = TokenList {
                    fetched_at: Utc::now(),
                    listing,
                };
                known_expiry = expiry::known_expiry(&connection, Some(&list.listing));
                tokens = Some(list);
            }
        }
        let step = policy.after(&connection, &outcome, policy::jitter());
        let schedule = match step.decision {
            Decision::After(wait) => {
                let mut next = policy::next_due(scheduled, wait, now);
                if let Some(reopens) = reopens {
                    next = next.max(reopens);
                }
                due = Some(next);
                schedule(&policy, due, now, wait)
            }
            Decision::Stop(pause) => {
                due = None;
                tracing::warn!(
                    connection = %name,
                    pause = pause.as_str(),
                    hint = pause.hint(),
                    "stopped probing this connection until its password changes or `credwatch resume` lifts the pause"
                );
                Schedule {
                    paused: Some(pause),
                    backoff: None,
                    ..schedule(&policy, None, now, Duration::ZERO)
                }
            }
        };
        record(
            &shared.status,
            &connection,
            Probed {
                outcome,
                lateness: Some(late),
                tokens,
                schedule: Some(schedule),
                adopt: step.adopt,
                pending: policy.pending(),
                gateway: last_myself.gateway.clone(),
            },
        );
        // The reminders log at most once a day; looking at them once a minute (or when the
        // token list changed) keeps the full assessment off the per-probe path.
        if list_fetched
            || reminders
                .checked
                .is_none_or(|at| now.duration_since(at) >= REMINDER_CHECK)
        {
            reminders.checked = Some(now);
            reminders.remind(&shared.status, &connection, now);
        }
    }
}

/// The schedule to record: due at `due` (`None`: stopped), `period` after the last due time.
fn schedule(policy: &Policy, due: Option<Instant>, now: Instant, period: Duration) -> Schedule {
    Schedule {
        next_probe_at: due.map(|due| wall_clock(due, now)),
        backoff: policy.current_backoff,
        period,
        failed_logins: policy.failed_logins(),
        paused: None,
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Records a probe and logs it: every probe at DEBUG, a state change at WARN.
fn record(status: &Board, connection: &Connection, probed: Probed) {
    let outcome = &probed.outcome;
    tracing::debug!(
        connection = %connection.name,
        state = %outcome.state,
        reason = %outcome.reason,
        http_status = ?outcome.http_status,
        latency_ms = outcome.latency.as_millis() as u64,
        detail = ?outcome.detail,
        "probe"
    );
    let hint = outcome.hint;
    let transition = status.record_probe(&connection.name, probed);
    log_transition_with(connection, transition, hint);
}

/// Logs a state change reached without a probe (a pending rejection confirmed by logins
/// spent elsewhere).
fn log_transition(connection: &Connection, transition: Option<crate::state::Transition>) {
    let hint = transition.and_then(|t| t.reason.hint(connection.settings.auth));
    log_transition_with(connection, transition, hint);
}

fn log_transition_with(
    connection: &Connection,
    transition: Option<crate::state::Transition>,
    hint: Option<&'static str>,
) {
    let Some(transition) = transition else {
        return;
    };
    let reason = transition.reason;
    // A first success is not news (and at 100,000 connections it would be 100,000 lines).
    if transition.to == State::Valid && transition.from == State::Unknown {
        tracing::debug!(connection = %connection.name, state = %transition.to, "credential is valid");
    } else {
        tracing::warn!(
            connection = %connection.name,
            from = %transition.from,
            to = %transition.to,
            reason = %reason,
            hint = hint.unwrap_or(""),
            "credential state changed"
        );
    }
}
