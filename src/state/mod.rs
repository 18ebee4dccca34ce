//! The daemon's shared status: what every connection's probes found, the counters, the
//! schedule, the history of state changes, and the configuration's reload status. The
//! scheduler writes it; `/metrics`, `/api/v1/connections` and `/readyz` read it, and the state
//! store's writer takes from it what changed ([`Board::take_changes`]).
//!
//! One cheap-to-clone handle over a std mutex, as in mini-redis: the lock is held only to
//! update or read plain data and never across an `.await`, so a std mutex is both correct
//! and cheaper than an async one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use crate::config::Connection;
use crate::expiry::{self, Assessment, TokenList};
use crate::probe::{GatewayTry, Outcome, Reason, State};

mod feed;
mod gates;
mod group;
mod history;
mod lateness;
mod orgs;
mod pause;
mod remembered;
mod snapshot;
pub(crate) use feed::{Gone, Since, Token};
pub(crate) use group::{Foreign, Group};
pub(crate) use lateness::{Lateness, LATENESS_BUCKETS};
pub(crate) use pause::Pause;
pub(crate) use remembered::{
    prune, Changes, Memory, Pending, Restored, Standing, Transition, DEFAULT_HISTORY_RETENTION,
    HISTORY_CAP,
};
pub(crate) use snapshot::Snapshot;

/// How long a probe that changed nothing but its times may go unwritten to the state store:
/// after a `kill -9`, the restored last-probe time is at most this old (a SIGTERM writes all).
pub(crate) const REFRESH: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Everything known about one connection: its [`Memory`], and what only this process counts.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The connection as currently configured (its secret is never rendered).
    pub connection: Arc<Connection>,
    /// What credwatch knows of the connection, as the state store keeps it.
    pub memory: Memory,
    /// Probes sent.
    pub probes: u64,
    /// Probes that did not end in `ok`, by reason.
    pub failures: BTreeMap<Reason, u64>,
    /// Probes answered with a rate limit.
    pub rate_limited: u64,
    /// The last probe's end as last handed to the state store.
    pub persisted_probe_at: Option<DateTime<Utc>>,
    /// By when the first probe has finished or passed its deadline (for `/readyz`).
    pub first_probe_deadline: DateTime<Utc>,
    /// The change feed's counter at its last change that the page shows
    /// ([`feed::Visible`], or its expiry): what `?changed_since` compares.
    pub changed: u64,
}

/// What one probe changed, recorded by [`Board::record_probe`] at once.
#[derive(Debug)]
pub(crate) struct Probed {
    /// The outcome.
    pub outcome: Outcome,
    /// How late the probe started against its schedule.
    pub lateness: Option<Duration>,
    /// What Jira's PAT API said, when the list was fetched with the probe.
    pub tokens: Option<TokenList>,
    /// The schedule after the probe; `None` leaves it as it was.
    pub schedule: Option<Schedule>,
    /// Whether the outcome's verdict becomes the standing one (`false` while a rejection
    /// waits for its confirmation).
    pub adopt: bool,
    /// The rejection that waits for confirmation after this probe.
    pub pending: Option<Pending>,
    /// What the API gateway has said of this secret, as the probe leaves it.
    pub gateway: Option<GatewayTry>,
}

impl Probed {
    /// Just the outcome (for the unit tests).
    #[cfg(test)]
    pub(crate) fn outcome(outcome: Outcome) -> Probed {
        Probed {
            outcome,
            lateness: None,
            tokens: None,
            schedule: None,
            adopt: true,
            pending: None,
            gateway: None,
        }
    }
}

/// A connection's schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schedule {
    /// When the next probe is due; `None` while probing is stopped.
    pub next_probe_at: Option<DateTime<Utc>>,
    /// The current backoff wait.
    pub backoff: Option<Duration>,
    /// The wait that keeps the rhythm (what the next due time is one of, after the last).
    pub period: Duration,
    /// Consecutive failed Basic logins.
    pub failed_logins: u32,
    /// Why probing stopped, if it did.
    pub paused: Option<Pause>,
}

impl Entry {
    /// Applies a schedule; returns whether the state store must hear of it: anything but
    /// the next due time moving on by one period, as it does probe after probe.
    fn set_schedule(&mut self, schedule: Schedule) -> bool {
        let before = self.memory.schedule;
        let on_rhythm = match (before.next_probe_at, schedule.next_probe_at) {
            (Some(before), Some(after)) => {
                let step =
                    chrono::Duration::from_std(schedule.period).unwrap_or(chrono::TimeDelta::MAX);
                let drift = (after - before - step).abs();
                drift < chrono::TimeDelta::seconds(1)
            }
            _ => false,
        };
        let changed = !on_rhythm
            || Schedule {
                next_probe_at: before.next_probe_at,
                ..schedule
            } != before;
        self.memory.schedule = schedule;
        changed
    }

    /// The credential's expiry and rotation, as known at `now`.
    pub fn assessment(&self, now: DateTime<Utc>) -> Assessment {
        expiry::assess(&self.connection, self.listing(), now)
    }

    /// The expiry as the page shows it (what a new token list can change).
    fn expiry_shown(&self) -> (Option<DateTime<Utc>>, Option<bool>) {
        let assessment = expiry::assess(&self.connection, self.listing(), Utc::now());
        (assessment.expires_at, assessment.never_expires)
    }

    /// What Jira's PAT API last listed.
    pub fn listing(&self) -> Option<&expiry::Listing> {
        self.memory.tokens.as_deref().map(|t| &t.listing)
    }

    /// The credential's state: the standing verdict, or `unknown` before any.
    pub fn state(&self) -> State {
        self.memory
            .verdict
            .map_or(State::Unknown, |standing| standing.state)
    }

    /// The hint to show: the stop's, if probing stopped, else the last probe's.
    pub fn hint(&self) -> Option<&'static str> {
        match self.memory.schedule.paused {
            Some(pause) => Some(pause.hint(self.connection.settings.product)),
            None => self.memory.last.as_ref().and_then(|o| o.hint),
        }
    }
}

/// The outcome of the last configuration reload.
#[derive(Debug, Clone)]
pub(crate) struct ReloadStatus {
    /// Whether the last load or reload succeeded.
    pub successful: bool,
    /// When the configuration was last loaded successfully.
    pub last_success_at: DateTime<Utc>,
    /// The errors of the last failed reload.
    pub last_error: Option<String>,
}

/// Everything under the lock.
///
/// Entries are shared (`Arc`) and copied on write: a [`Snapshot`] takes the lock only to copy
/// pointers, and an update to an entry that a snapshot still holds copies that one entry.
#[derive(Debug)]
pub(crate) struct Inner {
    /// By connection name. Hashed rather than ordered: every probe looks its entry up, and
    /// the names of a fleet share long prefixes, which an ordered map compares again and again
    /// (names come from the configuration, so a fast hash without flooding defence is fine).
    /// A [`Snapshot`] puts them in order.
    pub connections: FxHashMap<String, Arc<Entry>>,
    /// The configuration's reload status.
    pub reload: ReloadStatus,
    /// How late probes started.
    pub lateness: Lateness,
    /// Each connection's state changes, oldest first.
    pub history: FxHashMap<String, Vec<Transition>>,
    /// This replica's shard, its place in an HA group, and what other replicas own.
    pub group: Arc<Group>,
    /// The gates the state store says are closed (by any process), by key.
    gates: Arc<std::collections::HashMap<String, DateTime<Utc>>>,
    /// How long state changes are kept.
    pub history_retention: Duration,
    /// The Atlassian organizations, by name.
    pub orgs: std::collections::BTreeMap<String, Arc<crate::org::OrgStatus>>,
    /// Connections changed since the writer last asked (names of entries in `connections`).
    dirty: rustc_hash::FxHashSet<String>,
    /// State changes since the writer last asked.
    new_transitions: Vec<(String, Transition)>,
    /// Connections removed since the writer last asked.
    removed: Vec<String>,
    /// What the API's `changed_since` reads: the counter of visible changes, the removals.
    feed: feed::Feed,
}

impl Inner {
    /// Keeps a state change in the connection's history and queues it for the store.
    fn record_transition(&mut self, name: &str, transition: Transition) {
        let retention = self.history_retention;
        let history = self.history.entry(name.to_owned()).or_default();
        history.push(transition);
        prune(history, retention);
        self.new_transitions.push((name.to_owned(), transition));
    }

    fn mark(&mut self, name: &str) {
        if !self.dirty.contains(name) {
            self.dirty.insert(name.to_owned());
        }
    }
}

/// A handle on the shared status.
#[derive(Debug, Clone)]
pub(crate) struct Board {
    inner: Arc<Mutex<Inner>>,
}

impl Default for Board {
    fn default() -> Self {
        Board::new()
    }
}

impl Board {
    /// An empty status, as after a successful load of no connections.
    pub(crate) fn new() -> Board {
        Board {
            inner: Arc::new(Mutex::new(Inner {
                connections: FxHashMap::default(),
                reload: ReloadStatus {
                    successful: true,
                    last_success_at: Utc::now(),
                    last_error: None,
                },
                lateness: Lateness::default(),
                history: FxHashMap::default(),
                group: Arc::default(),
                gates: Arc::default(),
                history_retention: DEFAULT_HISTORY_RETENTION,
                orgs: Default::default(),
                dirty: Default::default(),
                new_transitions: Vec::new(),
                removed: Vec::new(),
                feed: feed::Feed::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves the data consistent, so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the status under the lock (keep `read` short: probes wait for it).
    pub(crate) fn read<R>(&self, read: impl FnOnce(&Inner) -> R) -> R {
        read(&self.lock())
    }

    /// Adds a connection, fresh or with what a state store (or the entry it replaces on a
    /// reload) remembered of it.
    pub(crate) fn insert(
        &self,
        connection: Arc<Connection>,
        first_probe_at: Option<DateTime<Utc>>,
        restored: Restored,
    ) {
        let deadline = first_probe_at.unwrap_or_else(Utc::now)
            + chrono::Duration::from_std(connection.settings.timeout)
                .unwrap_or(chrono::Duration::MAX);
        let Restored {
            mut memory,
            history,
        } = restored;
        memory.schedule.next_probe_at = first_probe_at;
        let entry = Entry {
            connection: connection.clone(),
            persisted_probe_at: memory.last.as_ref().map(|o| o.finished_at),
            memory,
            probes: 0,
            failures: BTreeMap::new(),
            rate_limited: 0,
            first_probe_deadline: deadline,
            changed: 0,
        };
        let mut inner = self.lock();
        let mut entry = entry;
        entry.changed = inner.feed.advance();
        let retention = inner.history_retention;
        let mut history = history;
        prune(&mut history, retention);
        if history.is_empty() {
            inner.history.remove(&connection.name);
        } else {
            inner.history.insert(connection.name.clone(), history);
        }
        inner.mark(&connection.name);
        inner
            .connections
            .insert(connection.name.clone(), Arc::new(entry));
    }

    /// Forgets a connection: its series disappear from `/metrics`, and the state store
    /// drops it.
    pub(crate) fn remove(&self, name: &str) {
        let mut inner = self.lock();
        if inner.connections.remove(name).is_some() {
            inner.history.remove(name);
            inner.dirty.remove(name);
            inner.removed.push(name.to_owned());
            inner.feed.removed(name);
        }
    }

    /// What is remembered of a connection, to carry over to its next task (a reload that
    /// changed its settings but not its credential).
    pub(crate) fn restored(&self, name: &str) -> Option<Restored> {
        let inner = self.lock();
        let entry = inner.connections.get(name)?;
        Some(Restored {
            memory: entry.memory.clone(),
            history: inner.history.get(name).cloned().unwrap_or_default(),
        })
    }

    /// Replaces a connection's settings (after its secret was re-read), keeping its history.
    pub(crate) fn update_connection(&self, connection: Arc<Connection>) {
        let mut inner = self.lock();
        let next = inner.feed.advance();
        if let Some(entry) = inner.connections.get_mut(&connection.name) {
            // Its labels or its declared expiry may have changed: the page fetches it again.
            let entry = Arc::make_mut(entry);
            entry.connection = connection.clone();
            entry.changed = next;
            inner.mark(&connection.name);
        }
    }

    /// Takes what changed since the last call, for the state store's writer.
    pub(crate) fn take_changes(&self) -> Changes {
        let mut inner = self.lock();
        let dirty = std::mem::take(&mut inner.dirty);
        let entries = dirty
            .iter()
            .filter_map(|name| inner.connections.get(name).cloned())
            .collect();
        let transitions = std::mem::take(&mut inner.new_transitions);
        let mut removed = std::mem::take(&mut inner.removed);
        // A connection removed and added again (a reload that changed its credential) is
        // written afresh, not deleted.
        removed.retain(|name| !inner.connections.contains_key(name));
        Changes {
            entries,
            transitions,
            removed,
        }
    }

    /// Puts back changes the writer could not write, to be written with the next batch.
    pub(crate) fn requeue(&self, changes: Changes) {
        let mut inner = self.lock();
        for entry in &changes.entries {
            let name = &entry.connection.name;
            if inner.connections.contains_key(name) {
                inner.mark(name);
            }
        }
        let mut transitions = changes.transitions;
        transitions.append(&mut inner.new_transitions);
        inner.new_transitions = transitions;
        inner.removed.extend(changes.removed);
    }

    /// Records everything one probe changed, under one lock; returns the credential's state
    /// change, if any.
    pub(crate) fn record_probe(&self, name: &str, probed: Probed) -> Option<Transition> {
        let mut inner = self.lock();
        if let Some(late) = probed.lateness {
            inner.lateness.observe(late);
        }
        let next = inner.feed.next();
        let entry = Arc::make_mut(inner.connections.get_mut(name)?);
        let visible = feed::Visible::of(entry);
        let expiry = probed.tokens.is_some().then(|| entry.expiry_shown());
        entry.memory.gateway = probed.gateway;
        let outcome = probed.outcome;
        let from = entry.state();
        entry.probes += 1;
        if outcome.reason == Reason::Ok {
            entry.memory.last_success_at = Some(outcome.finished_at);
        } else {
            *entry.failures.entry(outcome.reason).or_default() += 1;
        }
        if outcome.reason == Reason::RateLimited {
            entry.rate_limited += 1;
        }
        let mut changed = false;
        if probed.adopt && outcome.state.is_verdict() {
            let since = match entry.memory.verdict {
                Some(standing) if standing.state == outcome.state => standing.since,
                _ => outcome.finished_at,
            };
            let standing = Some(Standing {
                state: outcome.state,
                reason: outcome.reason,
                http_status: outcome.http_status,
                since,
            });
            changed |= entry.memory.verdict != standing;
            entry.memory.verdict = standing;
        }
        changed |= entry.memory.pending != probed.pending;
        entry.memory.pending = probed.pending;
        changed |= entry.memory.last.as_ref().is_none_or(|last| {
            last.reason != outcome.reason
                || last.http_status != outcome.http_status
                || last.identity != outcome.identity
                || last.detail != outcome.detail
        });
        changed |= entry
            .persisted_probe_at
            .is_none_or(|at| outcome.finished_at - at >= REFRESH);
        let finished_at = outcome.finished_at;
        let reason = outcome.reason;
        entry.memory.last = Some(outcome);
        if let Some(tokens) = probed.tokens {
            entry.memory.tokens = Some(Arc::new(tokens));
            changed = true;
        }
        if let Some(schedule) = probed.schedule {
            changed |= entry.set_schedule(schedule);
        }
        let to = entry.state();
        let shown = feed::Visible::of(entry) != visible
            || expiry.is_some_and(|before| before != entry.expiry_shown());
        if shown {
            entry.changed = next;
        }
        if changed {
            entry.persisted_probe_at = Some(finished_at);
            inner.mark(name);
        }
        if shown {
            inner.feed.advance();
        }
        if from == to {
            return None;
        }
        let transition = Transition {
            at: finished_at,
            from,
            to,
            reason,
        };
        inner.record_transition(name, transition);
        Some(transition)
    }

    /// What is known of connection `name` before its next probe ([`expiry::facts`]).
    pub(crate) fn facts(&self, name: &str) -> crate::probe::Facts {
        self.lock()
            .connections
            .get(name)
            .map(|entry| expiry::facts(&entry.connection, entry.listing()))
            .unwrap_or_default()
    }

    /// The assessment of one connection.
    pub(crate) fn assessment(&self, name: &str, now: DateTime<Utc>) -> Option<Assessment> {
        self.lock()
            .connections
            .get(name)
            .map(|entry| entry.assessment(now))
    }

    /// Records the schedule without a probe (a site that is blocked, a resumed or paused
    /// connection), with the pending confirmation that stands after it.
    pub(crate) fn schedule(&self, name: &str, schedule: Schedule, pending: Option<Pending>) {
        let mut inner = self.lock();
        let next = inner.feed.next();
        if let Some(entry) = inner.connections.get_mut(name) {
            let entry = Arc::make_mut(entry);
            let visible = feed::Visible::of(entry);
            let mut changed = entry.set_schedule(schedule);
            changed |= entry.memory.pending != pending;
            entry.memory.pending = pending;
            let shown = feed::Visible::of(entry) != visible;
            if shown {
                entry.changed = next;
            }
            if changed {
                inner.mark(name);
            }
            if shown {
                inner.feed.advance();
            }
        }
    }

    /// Makes a pending rejection the standing verdict without a probe (the logins that
    /// confirm it were spent elsewhere); returns the state change, if any.
    pub(crate) fn confirm_pending(&self, name: &str) -> Option<Transition> {
        let mut inner = self.lock();
        let next = inner.feed.next();
        let entry = Arc::make_mut(inner.connections.get_mut(name)?);
        let pending = entry.memory.pending.take()?;
        entry.changed = next;
        let from = entry.state();
        let http_status = entry.memory.last.as_ref().and_then(|o| o.http_status);
        entry.memory.verdict = Some(Standing {
            state: pending.state,
            reason: pending.reason,
            http_status,
            since: pending.since,
        });
        inner.feed.advance();
        inner.mark(name);
        if from == pending.state {
            return None;
        }
        let transition = Transition {
            at: Utc::now(),
            from,
            to: pending.state,
            reason: pending.reason,
        };
        inner.record_transition(name, transition);
        Some(transition)
    }

    /// Records the result of a configuration load or reload: `None` when it succeeded, else
    /// why it failed.
    pub(crate) fn reloaded(&self, error: Option<&dyn std::fmt::Display>) {
        let mut inner = self.lock();
        match error {
            None => {
                inner.reload.successful = true;
                inner.reload.last_success_at = Utc::now();
                inner.reload.last_error = None;
            }
            Some(error) => {
                inner.reload.successful = false;
                inner.reload.last_error = Some(error.to_string());
            }
        }
    }

    /// The connections whose first probe has neither finished nor passed its deadline.
    pub(crate) fn pending(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut pending: Vec<String> = self
            .lock()
            .connections
            .values()
            .filter(|e| {
                e.memory.last.is_none()
                    && e.memory.schedule.paused.is_none()
                    && now < e.first_probe_deadline
            })
            .map(|e| e.connection.name.clone())
            .collect();
        pending.sort_unstable();
        pending
    }
}
