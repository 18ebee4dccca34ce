//! The daemon's shared status: what every connection's probes found, the counters, the
//! schedule, and the configuration's reload status. The scheduler writes it; `/metrics`,
//! `/api/v1/connections` and `/readyz` read it.
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
use crate::probe::{Outcome, Reason, State};
use crate::scheduler::policy::Pause;

/// Everything known about one connection.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The connection as currently configured (its secret is never rendered).
    pub connection: Arc<Connection>,
    /// The last probe's outcome.
    pub last: Option<Outcome>,
    /// The standing verdict: the last state that was not `unknown`, and its reason.
    pub verdict: Option<(State, Reason)>,
    /// Probes sent.
    pub probes: u64,
    /// Probes that did not end in `ok`, by reason.
    pub failures: BTreeMap<Reason, u64>,
    /// Probes answered with a rate limit.
    pub rate_limited: u64,
    /// When the last probe ended in `ok`.
    pub last_success_at: Option<DateTime<Utc>>,
    /// When the next probe is due; `None` while probing is stopped.
    pub next_probe_at: Option<DateTime<Utc>>,
    /// The current backoff wait, while probes reach no verdict.
    pub backoff: Option<Duration>,
    /// Why probing stopped, if it did.
    pub paused: Option<Pause>,
    /// By when the first probe has finished or passed its deadline (for `/readyz`).
    pub first_probe_deadline: DateTime<Utc>,
    /// What Jira's PAT API last said, for connections whose expiry it can tell (shared, so
    /// that copying an entry for a snapshot never copies the list).
    pub tokens: Option<Arc<TokenList>>,
}

/// What one probe changed, recorded by [`Status::record_probe`] at once.
#[derive(Debug)]
pub struct Probed {
    /// The outcome.
    pub outcome: Outcome,
    /// How late the probe started against its schedule.
    pub lateness: Option<Duration>,
    /// What Jira's PAT API said, when the list was fetched with the probe.
    pub tokens: Option<TokenList>,
    /// The schedule after the probe; `None` leaves it as it was.
    pub schedule: Option<Schedule>,
}

impl Probed {
    /// Just the outcome.
    pub fn outcome(outcome: Outcome) -> Probed {
        Probed {
            outcome,
            lateness: None,
            tokens: None,
            schedule: None,
        }
    }
}

/// A connection's schedule.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// When the next probe is due; `None` while probing is stopped.
    pub next_probe_at: Option<DateTime<Utc>>,
    /// The current backoff wait.
    pub backoff: Option<Duration>,
    /// Why probing stopped, if it did.
    pub paused: Option<Pause>,
}

impl Entry {
    fn set_schedule(&mut self, schedule: Schedule) {
        self.next_probe_at = schedule.next_probe_at;
        self.backoff = schedule.backoff;
        self.paused = schedule.paused;
    }

    /// The credential's expiry and rotation, as known at `now`.
    pub fn assessment(&self, now: DateTime<Utc>) -> Assessment {
        expiry::assess(&self.connection, self.listing(), now)
    }

    /// What Jira's PAT API last listed.
    pub fn listing(&self) -> Option<&expiry::Listing> {
        self.tokens.as_deref().map(|t| &t.listing)
    }

    /// The credential's state: the standing verdict, or `unknown` before any.
    pub fn state(&self) -> State {
        self.verdict.map_or(State::Unknown, |(state, _)| state)
    }

    /// The hint to show: the stop's, if probing stopped, else the last probe's.
    pub fn hint(&self) -> Option<&'static str> {
        match self.paused {
            Some(pause) => Some(pause.hint()),
            None => self.last.as_ref().and_then(|o| o.hint),
        }
    }
}

/// A change of the credential's state, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state before (`unknown` before the first verdict).
    pub from: State,
    /// The state now.
    pub to: State,
}

/// The outcome of the last configuration reload.
#[derive(Debug, Clone)]
pub struct ReloadStatus {
    /// Whether the last load or reload succeeded.
    pub successful: bool,
    /// When the configuration was last loaded successfully.
    pub last_success_at: DateTime<Utc>,
    /// The errors of the last failed reload.
    pub last_error: Option<String>,
}

/// The upper bounds of the probe-lateness histogram's buckets, in seconds.
pub const LATENESS_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How late probes start against their schedule (waiting for permits, a busy runtime).
#[derive(Debug, Clone, Default)]
pub struct Lateness {
    /// Observations at or below each bucket's bound (not cumulative).
    pub buckets: [u64; LATENESS_BUCKETS.len()],
    /// The sum of all observations, in seconds.
    pub sum: f64,
    /// How many observations.
    pub count: u64,
}

impl Lateness {
    fn observe(&mut self, late: Duration) {
        let seconds = late.as_secs_f64();
        if let Some(bucket) = LATENESS_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// Everything under the lock.
///
/// Entries are shared (`Arc`) and copied on write: a [`Snapshot`] takes the lock only to copy
/// pointers, and an update to an entry that a snapshot still holds copies that one entry.
#[derive(Debug)]
pub struct Inner {
    /// By connection name. Hashed rather than ordered: every probe looks its entry up, and
    /// the names of a fleet share long prefixes, which an ordered map compares again and again
    /// (names come from the configuration, so a fast hash without flooding defence is fine).
    /// A [`Snapshot`] puts them in order.
    pub connections: FxHashMap<String, Arc<Entry>>,
    /// The configuration's reload status.
    pub reload: ReloadStatus,
    /// How late probes started.
    pub lateness: Lateness,
}

/// The status at one moment, read without holding the lock: what `/metrics`, the status page
/// and the API render, however many connections there are.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Every connection's entry, by name.
    pub entries: Vec<Arc<Entry>>,
    /// The configuration's reload status.
    pub reload: ReloadStatus,
    /// How late probes started.
    pub lateness: Lateness,
}

/// A handle on the shared status.
#[derive(Debug, Clone)]
pub struct Status {
    inner: Arc<Mutex<Inner>>,
}

impl Default for Status {
    fn default() -> Self {
        Status::new()
    }
}

impl Status {
    /// An empty status, as after a successful load of no connections.
    pub fn new() -> Status {
        Status {
            inner: Arc::new(Mutex::new(Inner {
                connections: FxHashMap::default(),
                reload: ReloadStatus {
                    successful: true,
                    last_success_at: Utc::now(),
                    last_error: None,
                },
                lateness: Lateness::default(),
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
    pub fn read<R>(&self, read: impl FnOnce(&Inner) -> R) -> R {
        read(&self.lock())
    }

    /// The status now. The lock is held only to copy one pointer per connection (about a
    /// millisecond at 100,000 connections), so a large scrape never stalls the probes.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = {
            let inner = self.lock();
            Snapshot {
                entries: inner.connections.values().cloned().collect(),
                reload: inner.reload.clone(),
                lateness: inner.lateness.clone(),
            }
        };
        // In name order, sorted after the lock is released.
        snapshot
            .entries
            .sort_unstable_by(|a, b| a.connection.name.cmp(&b.connection.name));
        snapshot
    }

    /// Adds a connection that has not been probed yet.
    pub fn insert(&self, connection: Arc<Connection>, first_probe_at: DateTime<Utc>) {
        let deadline = first_probe_at
            + chrono::Duration::from_std(connection.timeout).unwrap_or(chrono::Duration::MAX);
        let entry = Entry {
            connection: connection.clone(),
            last: None,
            verdict: None,
            probes: 0,
            failures: BTreeMap::new(),
            rate_limited: 0,
            last_success_at: None,
            next_probe_at: Some(first_probe_at),
            backoff: None,
            paused: None,
            first_probe_deadline: deadline,
            tokens: None,
        };
        self.lock()
            .connections
            .insert(connection.name.clone(), Arc::new(entry));
    }

    /// Forgets a connection: its series disappear from `/metrics`.
    pub fn remove(&self, name: &str) {
        self.lock().connections.remove(name);
    }

    /// Replaces a connection's settings (after its secret was re-read), keeping its history.
    pub fn update_connection(&self, connection: Arc<Connection>) {
        if let Some(entry) = self.lock().connections.get_mut(&connection.name) {
            Arc::make_mut(entry).connection = connection;
        }
    }

    /// Records everything one probe changed, under one lock; returns the credential's state
    /// change, if any.
    pub fn record_probe(&self, name: &str, probed: Probed) -> Option<Transition> {
        let mut inner = self.lock();
        if let Some(late) = probed.lateness {
            inner.lateness.observe(late);
        }
        let entry = Arc::make_mut(inner.connections.get_mut(name)?);
        let outcome = probed.outcome;
        let from = entry.state();
        entry.probes += 1;
        if outcome.reason == Reason::Ok {
            entry.last_success_at = Some(outcome.finished_at);
        } else {
            *entry.failures.entry(outcome.reason).or_default() += 1;
        }
        if outcome.reason == Reason::RateLimited {
            entry.rate_limited += 1;
        }
        if outcome.state.is_verdict() {
            entry.verdict = Some((outcome.state, outcome.reason));
        }
        entry.last = Some(outcome);
        if let Some(tokens) = probed.tokens {
            entry.tokens = Some(Arc::new(tokens));
        }
        if let Some(schedule) = probed.schedule {
            entry.set_schedule(schedule);
        }
        let to = entry.state();
        (from != to).then_some(Transition { from, to })
    }

    /// The expiry that turns a rejection into `expired`: Jira's, else the declared one.
    pub fn known_expiry(&self, name: &str) -> Option<DateTime<Utc>> {
        self.lock()
            .connections
            .get(name)
            .and_then(|entry| expiry::known_expiry(&entry.connection, entry.listing()))
    }

    /// The assessment of one connection.
    pub fn assessment(&self, name: &str, now: DateTime<Utc>) -> Option<Assessment> {
        self.lock()
            .connections
            .get(name)
            .map(|entry| entry.assessment(now))
    }

    /// Records the schedule without a probe (a site that is blocked).
    pub fn schedule(&self, name: &str, schedule: Schedule) {
        if let Some(entry) = self.lock().connections.get_mut(name) {
            Arc::make_mut(entry).set_schedule(schedule);
        }
    }

    /// Records the result of a configuration load or reload.
    pub fn reloaded(&self, result: Result<(), String>) {
        let mut inner = self.lock();
        match result {
            Ok(()) => {
                inner.reload.successful = true;
                inner.reload.last_success_at = Utc::now();
                inner.reload.last_error = None;
            }
            Err(error) => {
                inner.reload.successful = false;
                inner.reload.last_error = Some(error);
            }
        }
    }

    /// The connections whose first probe has neither finished nor passed its deadline.
    pub fn pending(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut pending: Vec<String> = self
            .lock()
            .connections
            .values()
            .filter(|e| e.last.is_none() && e.paused.is_none() && now < e.first_probe_deadline)
            .map(|e| e.connection.name.clone())
            .collect();
        pending.sort_unstable();
        pending
    }
}
