//! The scheduler: one task per connection, probing on its own schedule under a global and a
//! per-site bound, and the reconciliation that a reload applies.
//!
//! Each connection's task runs one probe at a time, so a connection never has two probes in
//! flight. Its first probe comes at a stable per-name offset within the first interval
//! ([`policy::start_offset`]), so start-up and reload never fire a burst. After a probe,
//! [`policy::Policy`] decides the wait; a missed tick is never replayed (the next probe is due
//! at the later of "one interval after the last due time" and "now").
//!
//! Connections that share scheme, host and port share a [`Site`]: a bound on probes in flight
//! and a gate that a `rate_limited` outcome closes for everyone until `Retry-After` (a floor)
//! or the site's backoff has passed.
//!
//! Probes start on a grid of 100 ms slots ([`policy::slot`]): those due within the same slot
//! start in one wakeup of the runtime, which halves the CPU per probe at high rates.
//!
//! Secret files are polled for changes (every [`SECRET_POLL`], or at [`SECRET_STATS_PER_SECOND`]
//! for large fleets); a changed secret wakes the task,
//! which probes at once with a fresh policy (backoff and stops reset).

pub mod policy;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{Config, Connection, Globals, SecretSource};
use crate::expiry::{self, Listing, TokenList};
use crate::probe::{LastMyself, Outcome, Prober, Reason, State, TokenListOutcome};
use crate::state::{Probed, Schedule, Status};
use policy::{Backoff, Decision, Policy};

/// How often secret files are checked for changes, while there are at most
/// [`SECRET_STATS_PER_SECOND`] × 5 of them (fewer than 50 are checked faster: one a tick).
///
/// Each check is a `stat()` of the path, about 1.5 µs. Every 2 s, as before, it was the
/// largest fixed cost of a daemon with one file per credential: at 1,000 files and the usual
/// 60 s interval, 30 checks per probe. 5 s is still prompt next to how a rotation arrives (a
/// Kubernetes secret reaches the pod a minute or so after it changes).
pub const SECRET_POLL: Duration = Duration::from_secs(5);

/// The most secret files checked a second. Beyond 12,500 files a sweep takes longer than
/// [`SECRET_POLL`] (100,000 files: 40 s) rather than costing more: at 100,000 files every 2 s,
/// the checks alone cost 0.1 CPU seconds a second, more than all the probes.
pub const SECRET_STATS_PER_SECOND: usize = 2_500;

/// The secret files are checked a slice at a time, so that no check holds the runtime long.
const SECRET_TICK: Duration = Duration::from_millis(100);

/// How far apart the connections of a site resume after a rate limit lifts, at most.
const RESUME_SPREAD: Duration = Duration::from_secs(2);

/// How often a standing expiry warning (rotation due, a never-expiring token, an unknown
/// expiry) is logged again.
pub const REMINDER_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Connections that are new.
    pub added: Vec<String>,
    /// Connections whose settings changed: restarted with a fresh state.
    pub changed: Vec<String>,
    /// Connections that are gone: their series are removed.
    pub removed: Vec<String>,
    /// Connections left running untouched.
    pub unchanged: usize,
}

/// A group of connections that share a Jira site's budget.
pub struct Site {
    permits: Semaphore,
    gate: Mutex<Gate>,
    /// Whether the gate holds a block or a backoff. Every probe of the site asks; while the
    /// site is open (nearly always) one atomic load answers, without the site's lock.
    gated: AtomicBool,
}

struct Gate {
    blocked_until: Option<Instant>,
    backoff: Option<Backoff>,
}

impl Site {
    fn new(permits: usize) -> Site {
        Site {
            permits: Semaphore::new(permits),
            gate: Mutex::new(Gate {
                blocked_until: None,
                backoff: None,
            }),
            gated: AtomicBool::new(false),
        }
    }

    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Until when the site is closed, if it is.
    pub fn blocked_until(&self, now: Instant) -> Option<Instant> {
        if !self.gated.load(Ordering::Acquire) {
            return None;
        }
        self.gate().blocked_until.filter(|until| *until > now)
    }

    /// Applies an outcome to the site: a rate limit closes it (`Retry-After` as a floor under
    /// the site's own exponential backoff); any other answer from Jira reopens it and resets
    /// the backoff. Returns when the site reopens, if closed.
    fn observe(&self, connection: &Connection, outcome: &Outcome, now: Instant) -> Option<Instant> {
        let limited = outcome.reason == Reason::RateLimited;
        let reopens = !limited && outcome.http_status.is_some();
        // Nothing to change: not a rate limit, and either no answer or nothing to reopen.
        let changes = limited || (reopens && self.gated.load(Ordering::Acquire));
        if !changes {
            return None;
        }
        let mut gate = self.gate();
        if outcome.reason == Reason::RateLimited {
            let backoff = gate
                .backoff
                .get_or_insert_with(|| {
                    Backoff::new(connection.backoff_initial, connection.backoff_max)
                })
                .next(policy::jitter());
            let floor = outcome
                .retry_after
                .map(|r| r.delay_from(Utc::now()))
                .unwrap_or(Duration::ZERO);
            let until = now + backoff.max(floor);
            gate.blocked_until = Some(gate.blocked_until.map_or(until, |u| u.max(until)));
            self.gated.store(true, Ordering::Release);
            gate.blocked_until
        } else {
            if reopens {
                gate.backoff = None;
                gate.blocked_until = None;
                self.gated.store(false, Ordering::Release);
            }
            None
        }
    }
}

/// Concurrency bounds, replaced when a reload changes them.
struct Limits {
    globals: Globals,
    global: Arc<Semaphore>,
    sites: HashMap<String, Arc<Site>>,
}

struct Shared {
    prober: Prober,
    status: Status,
    limits: Mutex<Limits>,
    /// Bumped when a reload replaces the concurrency bounds, so that tasks know to drop the
    /// semaphores they keep.
    limits_generation: AtomicU64,
    /// Where the grid of start slots begins ([`policy::slot`]).
    epoch: Instant,
}

impl Shared {
    fn limits(&self) -> MutexGuard<'_, Limits> {
        self.limits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The global and the site's bounds for a connection, with the generation they belong
    /// to (read first: a reload in between only makes the task look them up again).
    fn site(&self, connection: &Connection) -> Bounds {
        let generation = self.limits_generation.load(Ordering::Acquire);
        let mut limits = self.limits();
        // Every probe asks: look up first, and allocate the key only for a new site.
        let site = match limits.sites.get(connection.site()) {
            Some(site) => site.clone(),
            None => {
                let site = Arc::new(Site::new(limits.globals.max_concurrent_per_site));
                limits
                    .sites
                    .insert(connection.site().to_owned(), site.clone());
                site
            }
        };
        Bounds {
            generation,
            global: limits.global.clone(),
            site,
        }
    }
}

/// A connection's concurrency bounds, kept by its task until a reload replaces them.
struct Bounds {
    generation: u64,
    global: Arc<Semaphore>,
    site: Arc<Site>,
}

struct Running {
    connection: Arc<Connection>,
    task: JoinHandle<()>,
}

/// A watched secret file.
struct Watched {
    path: PathBuf,
    stamp: Option<FileStamp>,
    poke: Arc<Notify>,
}

/// What tells a file changed without reading it (a Kubernetes secret update swaps a symlink,
/// which changes the inode the path resolves to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &PathBuf) -> Option<FileStamp> {
    std::fs::metadata(path).ok().map(|m| FileStamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

/// Runs every connection's probes.
pub struct Scheduler {
    shared: Arc<Shared>,
    running: HashMap<String, Running>,
    watched: Arc<Mutex<BTreeMap<String, Watched>>>,
    watcher: JoinHandle<()>,
}

impl Scheduler {
    /// A scheduler with no connections; `shutdown` turning true stops the secret watcher, and
    /// [`Scheduler::stop_all`] the connections' tasks.
    pub fn new(
        prober: Prober,
        status: Status,
        globals: Globals,
        shutdown: watch::Receiver<bool>,
    ) -> Scheduler {
        let watched: Arc<Mutex<BTreeMap<String, Watched>>> = Arc::default();
        let watcher = tokio::spawn(watch_secret_files(watched.clone(), shutdown.clone()));
        Scheduler {
            shared: Arc::new(Shared {
                prober,
                status,
                limits: Mutex::new(Limits {
                    globals,
                    global: Arc::new(Semaphore::new(globals.max_concurrent_probes)),
                    sites: HashMap::new(),
                }),
                limits_generation: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
            running: HashMap::new(),
            watched,
            watcher,
        }
    }

    /// Makes the running connections those of `config`: new ones start, changed ones restart
    /// with a fresh state, removed ones stop and lose their status; unchanged ones keep their
    /// state, counters and schedule.
    pub fn apply(&mut self, config: &Config) -> Summary {
        {
            let mut limits = self.shared.limits();
            if limits.globals != config.globals {
                // Probes in flight keep the permits they hold; new probes use the new bounds.
                limits.globals = config.globals;
                limits.global = Arc::new(Semaphore::new(config.globals.max_concurrent_probes));
                limits.sites.clear();
                self.shared.limits_generation.fetch_add(1, Ordering::AcqRel);
            }
        }
        let mut summary = Summary::default();
        for connection in &config.connections {
            match self.running.get(&connection.name) {
                Some(running) if running.connection.same_settings(connection) => {
                    summary.unchanged += 1;
                }
                Some(_) => {
                    self.stop(&connection.name);
                    self.start(connection.clone());
                    summary.changed.push(connection.name.clone());
                }
                None => {
                    self.start(connection.clone());
                    summary.added.push(connection.name.clone());
                }
            }
        }
        // A set, not Config::connection: with 100,000 connections a linear search per
        // running connection is 10^10 comparisons.
        let wanted: std::collections::HashSet<&str> =
            config.connections.iter().map(|c| c.name.as_str()).collect();
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|name| !wanted.contains(name.as_str()))
            .cloned()
            .collect();
        for name in gone {
            self.stop(&name);
            summary.removed.push(name);
        }
        summary
    }

    fn start(&mut self, connection: Connection) {
        let connection = Arc::new(connection);
        let now = Instant::now();
        let first = now + policy::start_offset(&connection.name, connection.interval);
        self.shared
            .status
            .insert(connection.clone(), wall_clock(first, now));
        let poke = Arc::new(Notify::new());
        if let SecretSource::File(path) = &connection.secret_source {
            self.lock_watched().insert(
                connection.name.clone(),
                Watched {
                    path: path.clone(),
                    stamp: stamp(path),
                    poke: poke.clone(),
                },
            );
        }
        let task = tokio::spawn(watch_connection(
            self.shared.clone(),
            connection.clone(),
            poke,
            first,
        ));
        self.running
            .insert(connection.name.clone(), Running { connection, task });
    }

    fn stop(&mut self, name: &str) {
        if let Some(running) = self.running.remove(name) {
            // Dropping the task's future cancels a probe in flight and frees its permits.
            running.task.abort();
        }
        self.lock_watched().remove(name);
        self.shared.status.remove(name);
    }

    fn lock_watched(&self) -> MutexGuard<'_, BTreeMap<String, Watched>> {
        self.watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many connection tasks are alive (for leak checks).
    pub fn live_tasks(&self) -> usize {
        self.running
            .values()
            .filter(|r| !r.task.is_finished())
            .count()
    }

    /// Stops every connection task (which cancels probes in flight), and waits up to `grace`
    /// for them and the secret watcher to finish, then aborts whatever is left.
    pub async fn stop_all(mut self, grace: Duration) {
        let mut tasks: Vec<JoinHandle<()>> = self.running.drain().map(|(_, r)| r.task).collect();
        for task in &tasks {
            task.abort();
        }
        tasks.push(self.watcher);
        let deadline = Instant::now() + grace;
        for task in &mut tasks {
            if tokio::time::timeout_at(deadline, &mut *task).await.is_err() {
                task.abort();
            }
        }
    }
}

/// The wall-clock time of a monotonic instant.
fn wall_clock(at: Instant, now: Instant) -> chrono::DateTime<Utc> {
    let ahead = at.saturating_duration_since(now);
    Utc::now() + chrono::Duration::from_std(ahead).unwrap_or(chrono::Duration::zero())
}

/// Re-reads a connection's secret; `Some` with the new connection if the secret changed.
fn reread_secret(connection: &Connection) -> Option<Connection> {
    let secret = match connection.secret_source.read() {
        Ok(secret) => secret,
        Err(error) => {
            tracing::warn!(connection = %connection.name, %error, "cannot re-read the secret; keeping the one in use");
            return None;
        }
    };
    if secret == connection.secret {
        return None;
    }
    if let Err(error) = crate::config::authorization_header(
        connection.auth,
        connection.username.as_deref(),
        &secret,
    ) {
        tracing::warn!(connection = %connection.name, %error, "the new secret cannot be used; keeping the one in use");
        return None;
    }
    let mut updated = connection.clone();
    updated.secret = secret;
    Some(updated)
}

/// One connection's life: wait, probe, record, decide, and again.
async fn watch_connection(
    shared: Arc<Shared>,
    mut connection: Arc<Connection>,
    poke: Arc<Notify>,
    first: Instant,
) {
    let name = connection.name.clone();
    let mut policy = Policy::new(&connection);
    let mut due = Some(first);
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
    // One registration with the notifier for as long as no poke comes, not one per probe.
    let mut poked = pin!(poke.notified());
    loop {
        // The task stops when the scheduler aborts it (reload or shutdown): dropping this
        // future cancels a probe in flight and frees its permits.
        tokio::select! {
            biased;
            _ = &mut poked => {
                poked.set(poke.notified());
                if let Some(updated) = reread_secret(&connection) {
                    connection = Arc::new(updated);
                    shared.status.update_connection(connection.clone());
                    known_expiry = shared.status.known_expiry(&name);
                    authorization = connection.authorization();
                    policy = Policy::new(&connection);
                    due = Some(Instant::now());
                    tokens_due = None;
                    tracing::info!(connection = %name, "the secret changed; probing now");
                }
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
        let Bounds { global, site, .. } = &bounds;
        let now = Instant::now();
        if let Some(until) = site.blocked_until(now) {
            let resume = until + policy::start_offset(&name, RESUME_SPREAD);
            due = Some(resume);
            shared.status.schedule(
                &name,
                Schedule {
                    next_probe_at: Some(wall_clock(resume, now)),
                    backoff: policy.current_backoff,
                    paused: None,
                },
            );
            continue;
        }
        let probe = async {
            // The site's permit first: a connection queueing behind its own site's bound
            // (a site that hangs) must not hold a global permit meanwhile, or a slow site
            // starves every other one. Neither semaphore is ever closed.
            let _site = site.permits.acquire().await;
            let _global = global.acquire().await;
            let late = Instant::now().saturating_duration_since(slot);
            let outcome = shared
                .prober
                .probe_authorized(&connection, &authorization, known_expiry, &mut last_myself)
                .await;
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
            (outcome, list, late)
        };
        let (outcome, list, late) = probe.await;

        let now = Instant::now();
        let mut reopens = site.observe(&connection, &outcome, now);
        let list_fetched = list.is_some();
        let mut tokens = None;
        if let Some(list) = list {
            // Anchored to the probe's due time, like the probes themselves, so a cadence equal
            // to the interval lists with every probe rather than every other one.
            let cadence = connection.token_list_interval.max(connection.interval);
            tokens_due = Some(scheduled + cadence);
            let listing = match list {
                TokenListOutcome::Listed(entries) => Some(Listing::Tokens(entries)),
                TokenListOutcome::Unavailable(code) => Some(Listing::Unavailable(code)),
                TokenListOutcome::Failed(failure) => {
                    tracing::debug!(connection = %name, reason = %failure.reason, "the token list could not be fetched");
                    reopens = reopens.or(site.observe(&connection, &failure, now));
                    // Try again with a later probe, not at the slow cadence.
                    tokens_due = Some(now + connection.interval.max(connection.backoff_initial));
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
        let decision = policy.after(&connection, &outcome, policy::jitter());
        let schedule = match decision {
            Decision::After(wait) => {
                let mut next = policy::next_due(scheduled, wait, now);
                if let Some(reopens) = reopens {
                    next = next.max(reopens);
                }
                due = Some(next);
                Schedule {
                    next_probe_at: Some(wall_clock(next, now)),
                    backoff: policy.current_backoff,
                    paused: None,
                }
            }
            Decision::Stop(pause) => {
                due = None;
                tracing::warn!(
                    connection = %name,
                    pause = pause.as_str(),
                    hint = pause.hint(),
                    "stopped probing this connection until its secret or configuration changes"
                );
                Schedule {
                    next_probe_at: None,
                    backoff: None,
                    paused: Some(pause),
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

/// How often a connection's expiry reminders are looked at (they log at most once a day).
const REMINDER_CHECK: Duration = Duration::from_secs(60);

/// When each standing expiry warning was last logged.
#[derive(Debug, Default)]
struct Reminders {
    checked: Option<Instant>,
    rotation: Option<Instant>,
    never_expires: Option<Instant>,
    note: Option<Instant>,
    unavailable_said: bool,
}

impl Reminders {
    /// Logs what is due about the connection's expiry: rotation due, a never-expiring token
    /// and an unknown expiry at WARN once a day; an absent PAT API once.
    fn remind(&mut self, status: &Status, connection: &Connection, now: Instant) {
        let Some(assessment) = status.assessment(&connection.name, Utc::now()) else {
            return;
        };
        let due =
            |last: Option<Instant>| last.is_none_or(|at| now.duration_since(at) >= REMINDER_PERIOD);
        if assessment.rotation_due == Some(true) && due(self.rotation) {
            self.rotation = Some(now);
            tracing::warn!(
                connection = %connection.name,
                expires_at = %assessment.expires_at.map_or("unknown".to_owned(), |t| t.to_rfc3339()),
                source = assessment.source.map_or("-", |s| s.as_str()),
                created_at = %assessment.created_at.map_or("unknown".to_owned(), |t| t.to_rfc3339()),
                "token rotation is due: create a new token, update the integration, then revoke the old one"
            );
        }
        if assessment.never_expires == Some(true) && due(self.never_expires) {
            self.never_expires = Some(now);
            tracing::warn!(
                connection = %connection.name,
                "policy: the token never expires; create tokens with an expiry (90 days is the usual recommendation)"
            );
        }
        if let Some(note) = &assessment.note {
            let unavailable = status.read(|inner| {
                inner
                    .connections
                    .get(&connection.name)
                    .is_some_and(|e| matches!(e.listing(), Some(Listing::Unavailable(_))))
            });
            if unavailable {
                if !self.unavailable_said {
                    self.unavailable_said = true;
                    tracing::info!(connection = %connection.name, "{note}");
                }
            } else if due(self.note) {
                self.note = Some(now);
                tracing::warn!(connection = %connection.name, "the token's expiry is unknown: {note}");
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Records a probe and logs it: every probe at DEBUG, a state change at WARN.
fn record(status: &Status, connection: &Connection, probed: Probed) {
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
    let reason = outcome.reason;
    let hint = outcome.hint;
    let Some(transition) = status.record_probe(&connection.name, probed) else {
        return;
    };
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

/// Checks the next slice of the watched files after `cursor`, wakes the tasks whose file
/// changed, and returns where the next slice starts (`None`: from the first again).
fn check_slice(watched: &mut BTreeMap<String, Watched>, cursor: Option<String>) -> Option<String> {
    let ticks_per_sweep = (SECRET_POLL.as_millis() / SECRET_TICK.as_millis()) as usize;
    let most_per_tick = SECRET_STATS_PER_SECOND * SECRET_TICK.as_millis() as usize / 1000;
    let slice = watched
        .len()
        .div_ceil(ticks_per_sweep)
        .clamp(1, most_per_tick);
    let after = match &cursor {
        Some(name) => std::ops::Bound::Excluded(name.as_str()),
        None => std::ops::Bound::Unbounded,
    };
    let mut last = None;
    for (name, entry) in watched
        .range_mut::<str, _>((after, std::ops::Bound::Unbounded))
        .take(slice)
    {
        let now = stamp(&entry.path);
        if now != entry.stamp {
            entry.stamp = now;
            entry.poke.notify_one();
        }
        last = Some(name.clone());
    }
    // After the last name, the next sweep starts from the first.
    let at_end = last.is_none() || last.as_ref() == watched.keys().next_back();
    if at_end {
        None
    } else {
        last
    }
}

/// Polls the watched secret files and wakes the tasks whose file changed: every
/// [`SECRET_TICK`], the next slice of them in name order, sized so that a sweep takes
/// [`SECRET_POLL`], or longer when there are more files than [`SECRET_STATS_PER_SECOND`]
/// allows.
async fn watch_secret_files(
    watched: Arc<Mutex<BTreeMap<String, Watched>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(SECRET_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The last file checked; the next slice starts after it.
    let mut cursor: Option<String> = None;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticker.tick() => {}
        }
        let mut watched = watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cursor = check_slice(&mut watched, cursor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` watched files whose recorded stamp differs from the file's (none exist), so that
    /// every check of one wakes its task.
    fn changed_files(n: usize) -> (BTreeMap<String, Watched>, Vec<Arc<Notify>>) {
        let mut watched = BTreeMap::new();
        let mut pokes = Vec::new();
        for i in 0..n {
            let poke = Arc::new(Notify::new());
            pokes.push(poke.clone());
            let stamp = Some(FileStamp {
                modified: None,
                len: 1,
                inode: 1,
            });
            let path = PathBuf::from(format!("/nonexistent/credwatch-test/{i}"));
            watched.insert(format!("c{i:06}"), Watched { path, stamp, poke });
        }
        (watched, pokes)
    }

    /// Slices until every file was checked once; returns how many slices a sweep took.
    fn sweep(n: usize) -> usize {
        let (mut watched, pokes) = changed_files(n);
        let mut cursor = None;
        let mut slices = 0;
        loop {
            cursor = check_slice(&mut watched, cursor);
            slices += 1;
            if cursor.is_none() {
                break;
            }
            assert!(slices <= n, "the sweep does not end");
        }
        // Each file was checked exactly once: a second check would see no change.
        assert!(watched.values().all(|w| w.stamp.is_none()));
        for poke in &pokes {
            let notified = poke.notified();
            tokio::pin!(notified);
            assert!(notified.as_mut().enable(), "a changed file woke its task");
        }
        slices
    }

    #[test]
    fn secret_files_are_swept_every_five_seconds_and_never_faster_than_the_cap() {
        let ticks = |slices: usize| slices as u128 * SECRET_TICK.as_millis();
        // At least one file a tick: a few files are checked more often.
        assert_eq!(ticks(sweep(1)), 100);
        assert_eq!(ticks(sweep(20)), 2_000);
        assert_eq!(ticks(sweep(50)), 5_000);
        assert_eq!(ticks(sweep(1_000)), 5_000);
        assert_eq!(ticks(sweep(12_500)), 5_000);
        // Beyond 12,500 files: 2,500 a second.
        assert_eq!(ticks(sweep(25_000)), 10_000);
        assert_eq!(ticks(sweep(100_000)), 40_000);
    }
}
