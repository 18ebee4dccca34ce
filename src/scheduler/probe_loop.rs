//! One connection's life, in five steps: wait for the due time (or a waker), admit the probe
//! ([`super::admission`]: gates, permits, the login account's budget), run the probe cycle
//! ([`crate::probe::Prober::cycle`], the same one `credwatch check` runs), decide the next
//! wait ([`super::policy`] and the site's gate), record what it found in the board; and again.
//! The expiry reminders it logs are in [`super::reminders`].

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use http::HeaderValue;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::admission::{self, Refused};
use super::policy::{self, Decision, Policy};
use super::reminders::{Reminders, REMINDER_CHECK};
use super::secrets::reread_secret;
use super::{Bounds, Shared};
use crate::config::{Connection, CredentialError};
use crate::expiry::{Listing, TokenList};
use crate::probe::{Cycle, Facts, LastMyself, Prober, State, TokenListOutcome, TokenRequest};
use crate::state::{Board, Probed, Schedule};

/// How far apart the connections of a site resume after a rate limit lifts, at most.
const RESUME_SPREAD: Duration = Duration::from_secs(2);

/// The wall-clock time of a monotonic instant.
fn wall_clock(at: Instant, now: Instant) -> chrono::DateTime<Utc> {
    let ahead = at.saturating_duration_since(now);
    Utc::now() + chrono::Duration::from_std(ahead).unwrap_or(chrono::Duration::zero())
}

/// What runs one probe cycle of a connection: the [`Prober`] (the same cycle `credwatch
/// check` runs), or a fake that answers as a test says, so that the loop is tested on tokio's
/// paused clock without a network.
pub(super) trait Cycler: Send + Sync {
    /// One probe cycle, as [`Prober::cycle`].
    fn cycle<'a>(
        &'a self,
        connection: &'a Connection,
        authorization: &'a Result<HeaderValue, CredentialError>,
        facts: Facts,
        memory: &'a mut LastMyself,
        list_due: bool,
    ) -> Pin<Box<dyn Future<Output = Cycle> + Send + 'a>>;
}

impl Cycler for Prober {
    fn cycle<'a>(
        &'a self,
        connection: &'a Connection,
        authorization: &'a Result<HeaderValue, CredentialError>,
        facts: Facts,
        memory: &'a mut LastMyself,
        list_due: bool,
    ) -> Pin<Box<dyn Future<Output = Cycle> + Send + 'a>> {
        Box::pin(Prober::cycle(
            self,
            connection,
            authorization,
            facts,
            memory,
            list_due,
        ))
    }
}

/// What wakes a connection's task besides its due time.
pub(super) struct Wakers {
    /// Its secret file changed.
    pub poke: Arc<Notify>,
    /// A person lifted its pause.
    pub resume: Arc<Notify>,
    /// What is known of the credential changed (the organization's list now says an admin
    /// blocked it): probe now, so that the classifier decides with it.
    pub recheck: Arc<Notify>,
}

/// One connection's life: wait, admit, cycle, decide, record, and again. `first` is when the
/// first probe is due (`None`: the connection starts paused).
pub(super) async fn probe_loop(
    shared: Arc<Shared>,
    connection: Arc<Connection>,
    wakers: Wakers,
    policy: Policy,
    first: Option<Instant>,
) {
    let mut task = Task::new(&shared, connection, policy, first);
    // One registration with each notifier for as long as none comes, not one per probe.
    let mut poked = pin!(wakers.poke.notified());
    let mut resumed = pin!(wakers.resume.notified());
    let mut rechecked = pin!(wakers.recheck.notified());
    loop {
        // The task stops when the scheduler aborts it (reload or shutdown): dropping this
        // future cancels a probe in flight and frees its permits.
        tokio::select! {
            biased;
            _ = &mut poked => {
                poked.set(wakers.poke.notified());
                task.secret_changed(&shared);
                continue;
            }
            _ = &mut resumed => {
                resumed.set(wakers.resume.notified());
                task.resumed(&shared);
                // A person fixed the account, often the password file with it: the secret is
                // read again before the probe (the poke branch runs first), not at the next poll.
                wakers.poke.notify_one();
                continue;
            }
            _ = &mut rechecked => {
                rechecked.set(wakers.recheck.notified());
                task.recheck();
                continue;
            }
            _ = sleep_until(task.due.map(|due| policy::slot(due, shared.epoch))) => {}
        }
        task.probe_once(&shared).await;
    }
}

/// What a connection's task keeps between probes.
struct Task {
    connection: Arc<Connection>,
    policy: Policy,
    /// When the next probe is due; `None`: stopped.
    due: Option<Instant>,
    /// When the PAT list is next fetched; `None`: with the next valid probe.
    tokens_due: Option<Instant>,
    reminders: Reminders,
    /// What is known before a probe; it changes only with this task's own token lists and
    /// secret re-reads (an organization's list is read from the board at each probe).
    facts: Facts,
    /// Kept while the secret stays the same: the header is built once, not per probe.
    authorization: Result<HeaderValue, CredentialError>,
    bounds: Bounds,
    /// What the last `myself` body and the gateway said (asked once per secret: what the
    /// gateway said before a restart or a reload stands).
    memory: LastMyself,
}

/// What a probe decided: the schedule to record and whether its verdict stands.
struct Decided {
    schedule: Schedule,
    adopt: bool,
    tokens: Option<TokenList>,
}

impl Task {
    fn new(
        shared: &Shared,
        connection: Arc<Connection>,
        policy: Policy,
        first: Option<Instant>,
    ) -> Task {
        let mut memory = LastMyself::default();
        memory.gateway = shared.status.gateway_try(&connection.name);
        Task {
            facts: shared.status.facts(&connection.name),
            authorization: connection.authorization(),
            bounds: shared.site(&connection),
            connection,
            policy,
            due: first,
            tokens_due: None,
            reminders: Reminders::default(),
            memory,
        }
    }

    fn name(&self) -> &str {
        &self.connection.name
    }

    /// Its secret file changed: a new credential, probed at once with a fresh policy (nothing
    /// pending, no backoff). The account's login budget stays: Jira's count does not start
    /// over with a new password.
    fn secret_changed(&mut self, shared: &Shared) {
        let Some(updated) = reread_secret(&self.connection) else {
            return;
        };
        self.connection = Arc::new(updated);
        shared.status.update_connection(self.connection.clone());
        self.facts = shared.status.facts(self.name());
        self.authorization = self.connection.authorization();
        // What the gateway said was about the old secret.
        self.memory.gateway = None;
        self.policy = Policy::new(&self.connection);
        self.due = Some(Instant::now());
        self.tokens_due = None;
        tracing::info!(connection = %self.name(), "the secret changed; probing now");
    }

    /// A person lifted the pause: probe at once.
    fn resumed(&mut self, shared: &Shared) {
        self.policy.resume();
        let now = Instant::now();
        self.due = Some(now);
        let schedule = schedule(&self.policy, Some(now), now, Duration::ZERO);
        shared.status.schedule(self.name(), schedule, None);
    }

    /// What is known of the credential changed: probe now, unless probing is stopped.
    fn recheck(&mut self) {
        if self.due.is_some() {
            self.due = Some(Instant::now());
        }
    }

    /// How long to wait when the store cannot record a login.
    fn retry_wait(&self) -> Duration {
        let settings = &self.connection.settings;
        settings.interval.max(settings.backoff_initial)
    }

    /// One probe: admit, cycle, decide, record.
    async fn probe_once(&mut self, shared: &Shared) {
        // The rhythm follows the exact due time; lateness is counted from the slot.
        let scheduled = self.due.unwrap_or_else(Instant::now);
        let slot = policy::slot(scheduled, shared.epoch);
        if self.bounds.generation != shared.limits_generation.load(Ordering::Acquire) {
            self.bounds = shared.site(&self.connection);
        }
        // The task's own handles on the bounds, which the permits borrow for the probe.
        let bounds = self.bounds.clone();
        let admitted = admission::admit(
            &self.connection,
            &bounds,
            &shared.logins,
            &shared.status,
            self.retry_wait(),
        )
        .await;
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err(refused) => return self.refused(&shared.status, scheduled, refused),
        };
        let late = Instant::now().saturating_duration_since(slot);
        // The organization's list may have told the expiry (or a block) since the last probe.
        let facts = match self.connection.settings.org {
            Some(_) => shared.status.facts(self.name()),
            None => self.facts,
        };
        let now = Instant::now();
        let list_due = self.tokens_due.is_none_or(|at| now >= at)
            && self.bounds.site.blocked_until(now).is_none();
        let cycle = shared
            .cycler
            .cycle(
                &self.connection,
                &self.authorization,
                facts,
                &mut self.memory,
                list_due,
            )
            .await;
        let failed_before = admitted.failed_before();
        admitted.finish(&self.connection, &cycle.outcome).await;
        if let Some(failed) = failed_before {
            self.policy.set_failed_logins(failed);
        }
        let decided = self.decide(scheduled, &cycle);
        self.keep_gate(shared, &cycle);
        let list_fetched = decided.tokens.is_some();
        self.record(&shared.status, cycle, late, decided);
        // The reminders log at most once a day; looking at them once a minute (or when the
        // token list changed) keeps the full assessment off the per-probe path.
        let now = Instant::now();
        if list_fetched
            || self
                .reminders
                .checked
                .is_none_or(|at| now.duration_since(at) >= REMINDER_CHECK)
        {
            self.reminders.checked = Some(now);
            self.reminders.remind(&shared.status, &self.connection, now);
        }
    }

    /// Not sent: a closed gate, a spent budget, or not now.
    fn refused(&mut self, status: &Board, scheduled: Instant, refused: Refused) {
        let now = Instant::now();
        let (due, period) = match refused {
            Refused::Gated(until) => {
                let resume = until + policy::start_offset(self.name(), RESUME_SPREAD);
                (Some(resume), resume.saturating_duration_since(scheduled))
            }
            Refused::Later(wait) => (Some(now + wait), wait),
            Refused::Spent(pause) => {
                // The account's budget was spent elsewhere (another connection of the
                // account, `check`, or logins that never got an answer): no login is sent.
                let (_, confirmed) = self.policy.spent(pause);
                self.due = None;
                tracing::warn!(connection = %self.name(), pause = pause.as_str(), hint = pause.hint(self.connection.settings.product), "the login budget is spent; stopped probing this connection");
                if confirmed {
                    log_transition(&self.connection, status.confirm_pending(self.name()));
                }
                let paused = Schedule {
                    paused: Some(pause),
                    ..schedule(&self.policy, None, now, Duration::ZERO)
                };
                status.schedule(self.name(), paused, None);
                return;
            }
        };
        self.due = due;
        let pending = self.policy.pending();
        status.schedule(
            self.name(),
            schedule(&self.policy, due, now, period),
            pending,
        );
    }

    /// A rate limit closed a gate: the state store keeps it, so that a restart, and `check`,
    /// honour it too (written off the probe's path).
    fn keep_gate(&self, shared: &Shared, cycle: &Cycle) {
        let outcome = &cycle.outcome;
        let Some(store) = shared.store.clone() else {
            return;
        };
        if outcome.reason != crate::probe::Reason::RateLimited {
            return;
        }
        let (key, gate) = match (&self.bounds.token, self.connection.token_site()) {
            (Some(token), Some(key)) if outcome.token_request == TokenRequest::Failed => {
                (key, token)
            }
            _ => (self.connection.site(), &self.bounds.site),
        };
        let now = Instant::now();
        let Some(until) = gate.blocked_until(now) else {
            return;
        };
        let (key, until) = (key.to_owned(), wall_clock(until, now));
        tokio::task::spawn_blocking(move || {
            if let Err(error) = store.close_gate(&key, until) {
                tracing::warn!(%error, "cannot keep a site's gate in the state store");
            }
        });
    }

    /// What follows a probe: the gates it closes or opens, its token list, and the policy's
    /// next wait.
    fn decide(&mut self, scheduled: Instant, cycle: &Cycle) -> Decided {
        let now = Instant::now();
        let outcome = &cycle.outcome;
        let Bounds { site, token, .. } = &self.bounds;
        // The token endpoint's answers close and open its gate; Jira's, the site's.
        let gate = match token {
            Some(token) if outcome.token_request == TokenRequest::Failed => token,
            _ => site,
        };
        if let (Some(token), TokenRequest::Granted) = (token, outcome.token_request) {
            token.reopen();
        }
        let mut reopens = gate.observe(&self.connection, outcome, now);
        let tokens = match &cycle.list {
            Some(list) => {
                let (tokens, failed_reopens) = self.take_list(scheduled, list, now);
                reopens = reopens.or(failed_reopens);
                tokens
            }
            None => None,
        };
        let step = self
            .policy
            .after(&self.connection, outcome, policy::jitter());
        let schedule = match step.decision {
            Decision::After(wait) => {
                let mut next = policy::next_due(scheduled, wait, now);
                if let Some(reopens) = reopens {
                    next = next.max(reopens);
                }
                self.due = Some(next);
                schedule(&self.policy, self.due, now, wait)
            }
            Decision::Stop(pause) => {
                self.due = None;
                tracing::warn!(
                    connection = %self.name(),
                    pause = pause.as_str(),
                    hint = pause.hint(self.connection.settings.product),
                    "stopped probing this connection until `credwatch resume` lifts the pause"
                );
                Schedule {
                    paused: Some(pause),
                    backoff: None,
                    ..schedule(&self.policy, None, now, Duration::ZERO)
                }
            }
        };
        Decided {
            schedule,
            adopt: step.adopt,
            tokens,
        }
    }

    /// Jira's token list, as the board keeps it, and the next time it is due; a failed
    /// fetch may close the site's gate (returns when it reopens).
    fn take_list(
        &mut self,
        scheduled: Instant,
        list: &TokenListOutcome,
        now: Instant,
    ) -> (Option<TokenList>, Option<Instant>) {
        let settings = &self.connection.settings;
        // Anchored to the probe's due time, like the probes themselves, so a cadence equal to
        // the interval lists with every probe rather than every other one.
        self.tokens_due = Some(scheduled + settings.token_list_interval.max(settings.interval));
        let listing = match list {
            TokenListOutcome::Listed(entries) => Listing::Tokens(entries.clone()),
            TokenListOutcome::Unavailable(code) => Listing::Unavailable(*code),
            TokenListOutcome::Failed(failure) => {
                tracing::debug!(connection = %self.name(), reason = %failure.reason, "the token list could not be fetched");
                // Try again with a later probe, not at the slow cadence.
                self.tokens_due = Some(now + self.retry_wait());
                let reopens = self.bounds.site.observe(&self.connection, failure, now);
                return (None, reopens);
            }
        };
        self.facts = crate::expiry::facts(&self.connection, Some(&listing));
        let list = TokenList {
            fetched_at: Utc::now(),
            listing,
        };
        (Some(list), None)
    }

    /// Records the probe in the board and logs it: every probe at DEBUG, a state change at
    /// WARN.
    fn record(&self, status: &Board, cycle: Cycle, late: Duration, decided: Decided) {
        let outcome = &cycle.outcome;
        tracing::debug!(
            connection = %self.name(),
            state = %outcome.state,
            reason = %outcome.reason,
            http_status = ?outcome.http_status,
            latency_ms = outcome.latency.as_millis() as u64,
            detail = ?outcome.detail,
            "probe"
        );
        let hint = outcome.hint;
        let probed = Probed {
            outcome: cycle.outcome,
            lateness: Some(late),
            tokens: decided.tokens,
            schedule: Some(decided.schedule),
            adopt: decided.adopt,
            pending: self.policy.pending(),
            gateway: cycle.gateway,
        };
        let transition = status.record_probe(self.name(), probed);
        log_transition_with(&self.connection, transition, hint);
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

/// Logs a state change reached without a probe (a pending rejection confirmed by logins
/// spent elsewhere).
fn log_transition(connection: &Connection, transition: Option<crate::state::Transition>) {
    let hint = transition.and_then(|t| t.reason.hint(connection.settings.credential_type()));
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
