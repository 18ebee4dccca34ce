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

mod admission;
mod backoff;
mod orgs;
pub(crate) mod policy;
mod probe_loop;
mod reminders;
mod restored;
mod secrets;
mod site;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{Config, Connection, Globals, SecretSource};
use crate::probe::Prober;
use crate::state::{Board, Restored};
use crate::store::{Loaded, Store};
use policy::Policy;
use secrets::{stamp, watch_secret_files, Watched};
pub(crate) use site::Site;

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

/// Concurrency bounds, replaced when a reload changes them.
struct Limits {
    globals: Globals,
    global: Arc<Semaphore>,
    sites: HashMap<String, Arc<Site>>,
}

struct Shared {
    prober: Prober,
    /// What runs a connection's probe cycle: the prober (a fake in the loop's unit tests).
    cycler: Arc<dyn probe_loop::Cycler>,
    status: Board,
    /// The state store, when there is one.
    store: Option<Arc<Store>>,
    /// Where the login accounts' budgets are kept: the state store, or one in memory.
    logins: Arc<Store>,
    limits: Mutex<Limits>,
    /// Bumped when a reload replaces the concurrency bounds, so that tasks know to drop the
    /// semaphores they keep.
    limits_generation: AtomicU64,
    /// Where the grid of start slots begins ([`policy::slot`]).
    epoch: Instant,
    /// Each running connection's "what is known changed" waker, by name.
    rechecks: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Shared {
    fn limits(&self) -> MutexGuard<'_, Limits> {
        self.limits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes connection `name` to probe now: what is known of its credential changed.
    fn recheck(&self, name: &str) {
        let rechecks = self
            .rechecks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(recheck) = rechecks.get(name) {
            recheck.notify_one();
        }
    }

    /// The global and the site's bounds for a connection, with the generation they belong
    /// to (read first: a reload in between only makes the task look them up again).
    fn site(&self, connection: &Connection) -> Bounds {
        let generation = self.limits_generation.load(Ordering::Acquire);
        let mut limits = self.limits();
        // Every probe asks: look up first, and allocate the key only for a new site.
        let permits = limits.globals.max_concurrent_per_site;
        let mut gate = |key: &str| match limits.sites.get(key) {
            Some(site) => site.clone(),
            None => {
                let site = Arc::new(Site::new(permits));
                limits.sites.insert(key.to_owned(), site.clone());
                site
            }
        };
        let site = gate(connection.site());
        // An OAuth token endpoint has a gate of its own, shared by its clients.
        let token = connection.token_site().map(&mut gate);
        Bounds {
            generation,
            global: limits.global.clone(),
            site,
            token,
        }
    }
}

/// A connection's concurrency bounds, kept by its task until a reload replaces them.
#[derive(Clone)]
struct Bounds {
    generation: u64,
    global: Arc<Semaphore>,
    site: Arc<Site>,
    /// The OAuth token endpoint's gate, for OAuth connections.
    token: Option<Arc<Site>>,
}

struct Running {
    connection: Arc<Connection>,
    task: JoinHandle<()>,
    /// Wakes the task to lift a pause.
    resume: Arc<Notify>,
}

/// What a state store held at start, waiting for the connections' first start.
#[derive(Default)]
struct Remembered {
    loaded: Loaded,
}

/// Why a pause could not be lifted.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// No such connection is running.
    #[error("no connection named {0:?} is running")]
    Unknown(String),
    /// The connection is not paused.
    #[error("connection {0:?} is not paused")]
    NotPaused(String),
    /// The state store could not record it.
    #[error("cannot record the resume in the state store: {0}")]
    Store(#[from] rusqlite::Error),
    /// The daemon is stopping and takes no more requests.
    #[error("credwatch is shutting down")]
    ShuttingDown,
}

/// Runs every connection's probes.
pub(crate) struct Scheduler {
    shared: Arc<Shared>,
    running: HashMap<String, Running>,
    remembered: Remembered,
    watched: Arc<Mutex<BTreeMap<String, Watched>>>,
    watcher: JoinHandle<()>,
    orgs: orgs::OrgReaders,
}

impl Scheduler {
    /// A scheduler with no connections yet, that keeps its connections' state in `store`
    /// (when there is one), the login accounts' budgets in `logins`, and starts each
    /// connection from what `loaded` (read from the store before) remembers of it. `shutdown`
    /// turning true stops the secret watcher, and [`Scheduler::stop_all`] the connections'
    /// tasks.
    pub(crate) fn new(
        prober: Prober,
        status: Board,
        globals: Globals,
        shutdown: watch::Receiver<bool>,
        store: Option<Arc<Store>>,
        logins: Arc<Store>,
        loaded: Loaded,
    ) -> Scheduler {
        let watched: Arc<Mutex<BTreeMap<String, Watched>>> = Arc::default();
        let watcher = tokio::spawn(watch_secret_files(watched.clone(), shutdown.clone()));
        Scheduler {
            shared: Arc::new(Shared {
                cycler: Arc::new(prober.clone()),
                prober,
                status,
                store,
                logins,
                limits: Mutex::new(Limits {
                    globals,
                    global: Arc::new(Semaphore::new(globals.max_concurrent_probes)),
                    sites: HashMap::new(),
                }),
                limits_generation: AtomicU64::new(0),
                epoch: Instant::now(),
                rechecks: Mutex::default(),
            }),
            running: HashMap::new(),
            remembered: Remembered { loaded },
            watched,
            watcher,
            orgs: orgs::OrgReaders::default(),
        }
    }

    /// Makes the running connections those of `config`: new ones start, changed ones restart
    /// with a fresh state, removed ones stop and lose their status; unchanged ones keep their
    /// state, counters and schedule.
    pub(crate) fn apply(&mut self, config: &Config) -> Summary {
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
        self.adopt_logins(config);
        let mut summary = Summary::default();
        for connection in &config.connections {
            // What the task runs now: its secret may have been re-read since it started.
            let current = self.running.get(&connection.name).map(|running| {
                self.shared
                    .status
                    .read(|inner| {
                        inner
                            .connections
                            .get(&connection.name)
                            .map(|entry| entry.connection.clone())
                    })
                    .unwrap_or_else(|| running.connection.clone())
            });
            match current {
                Some(current) if current.same_settings(connection) => {
                    summary.unchanged += 1;
                }
                Some(current) => {
                    // Only a new credential starts afresh: a label or an interval changed
                    // keeps the verdict, the schedule and the login budget.
                    let kept = same_credential(&current, connection)
                        .then(|| self.shared.status.restored(&connection.name))
                        .flatten();
                    // The entry is replaced, never removed: the state store must not see the
                    // connection go (it would drop its rows) between the two.
                    self.stop_task(&connection.name);
                    self.start(connection.clone(), kept.map(|r| (r, Utc::now())));
                    summary.changed.push(connection.name.clone());
                }
                None => {
                    let remembered = self.remembered(connection);
                    self.start(connection.clone(), remembered);
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
        self.orgs.apply(&self.shared, config);
        summary
    }

    /// Adds the per-name login budgets a format-1 store kept to the accounts of the
    /// connections configured now (once; a name that comes back later joins then).
    fn adopt_logins(&self, config: &Config) {
        let members: Vec<(&str, &str)> = config
            .connections
            .iter()
            .filter_map(|c| Some((c.name.as_str(), c.login_account()?)))
            .collect();
        match self.shared.logins.adopt_logins(&members) {
            Ok(0) => {}
            Ok(adopted) => tracing::info!(
                adopted,
                "the login budgets kept per connection name are now kept per login account"
            ),
            Err(error) => {
                tracing::warn!(%error, "cannot move the login budgets kept per connection name to their accounts")
            }
        }
    }

    /// What the state store remembered of a connection, if its credential is the same.
    fn remembered(&mut self, connection: &Connection) -> Option<(Restored, DateTime<Utc>)> {
        let loaded = &mut self.remembered.loaded;
        let (identity, record) = loaded.records.remove(&connection.name)?;
        let history = loaded.history.remove(&connection.name).unwrap_or_default();
        let store = self.shared.store.as_ref()?;
        if identity != store.identity(connection) {
            tracing::info!(connection = %connection.name, "the credential changed while credwatch was stopped; starting afresh");
            return None;
        }
        let alive_at = loaded.alive_at.unwrap_or_else(Utc::now);
        let memory = record.restore(connection);
        Some((Restored { memory, history }, alive_at))
    }

    /// Starts a connection's task, fresh or from what was remembered of it (and when the
    /// process that remembered it was last alive).
    fn start(&mut self, connection: Connection, restored: Option<(Restored, DateTime<Utc>)>) {
        let connection = Arc::new(connection);
        let now = Instant::now();
        let wall = Utc::now();
        let (restored, first) = match restored {
            Some((restored, alive_at)) => {
                let first = restored::restored_due(&connection, &restored, alive_at, wall);
                (restored, first)
            }
            None => {
                let offset = policy::start_offset(&connection.name, connection.settings.interval);
                (Restored::default(), Some(wall + chrono_of(offset)))
            }
        };
        let first_instant = first.map(|at| now + (at - wall).to_std().unwrap_or(Duration::ZERO));
        let policy = Policy::restore(&connection, &restored);
        self.shared
            .status
            .insert(connection.clone(), first, restored);
        let poke = Arc::new(Notify::new());
        let resume = Arc::new(Notify::new());
        let recheck = Arc::new(Notify::new());
        self.shared
            .rechecks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(connection.name.clone(), recheck.clone());
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
        let task = tokio::spawn(probe_loop::probe_loop(
            self.shared.clone(),
            connection.clone(),
            probe_loop::Wakers {
                poke,
                resume: resume.clone(),
                recheck,
            },
            policy,
            first_instant,
        ));
        self.running.insert(
            connection.name.clone(),
            Running {
                connection,
                task,
                resume,
            },
        );
    }

    /// Lifts the pause of a connection's login account (a person reset the count in Jira, or
    /// logged in through the browser): the account's budget starts afresh and every connection
    /// of the account is probed at once. Returns the names resumed, sorted. A connection
    /// without a login account (a token) has only its own pause to lift.
    pub(crate) async fn resume(&mut self, name: &str) -> Result<Vec<String>, ResumeError> {
        let running = self
            .running
            .get(name)
            .ok_or_else(|| ResumeError::Unknown(name.to_owned()))?;
        let account = running.connection.login_account().map(str::to_owned);
        let mut names: Vec<&String> = match &account {
            Some(account) => self
                .running
                .iter()
                .filter(|(_, r)| r.connection.login_account() == Some(account.as_str()))
                .map(|(name, _)| name)
                .collect(),
            None => self
                .running
                .get_key_value(name)
                .map(|(n, _)| n)
                .into_iter()
                .collect(),
        };
        names.sort();
        let paused = self.shared.status.read(|inner| {
            names.iter().any(|n| {
                inner
                    .connections
                    .get(n.as_str())
                    .is_some_and(|e| e.memory.schedule.paused.is_some())
            })
        });
        let lifted = match &account {
            // On the blocking pool: a `check` may hold the store's write lock for a while.
            Some(account) => {
                let (logins, account) = (self.shared.logins.clone(), account.clone());
                tokio::task::spawn_blocking(move || logins.resume(&account))
                    .await
                    .map_err(|_| ResumeError::ShuttingDown)??
            }
            None => false,
        };
        if !paused && !lifted {
            return Err(ResumeError::NotPaused(name.to_owned()));
        }
        tracing::info!(
            connection = %name,
            account = account.as_deref().unwrap_or(""),
            resumed = ?names,
            "resumed: the login budget starts afresh; probing now"
        );
        for resumed in &names {
            if let Some(running) = self.running.get(resumed.as_str()) {
                running.resume.notify_one();
            }
        }
        Ok(names.into_iter().cloned().collect())
    }

    /// Stops a connection that is gone: its task, its secret watch and its status.
    fn stop(&mut self, name: &str) {
        self.stop_task(name);
        self.shared
            .rechecks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(name);
        self.shared.status.remove(name);
    }

    /// Stops a connection's task and secret watch, leaving its status entry for the task that
    /// replaces it.
    fn stop_task(&mut self, name: &str) {
        if let Some(running) = self.running.remove(name) {
            // Dropping the task's future cancels a probe in flight and frees its permits.
            running.task.abort();
        }
        self.lock_watched().remove(name);
    }

    fn lock_watched(&self) -> MutexGuard<'_, BTreeMap<String, Watched>> {
        self.watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many connection tasks are alive (for leak checks).
    pub(crate) fn live_tasks(&self) -> usize {
        self.running
            .values()
            .filter(|r| !r.task.is_finished())
            .count()
    }

    /// Stops every connection task (which cancels probes in flight), and waits up to `grace`
    /// for them and the secret watcher to finish, then aborts whatever is left.
    pub(crate) async fn stop_all(mut self, grace: Duration) {
        self.orgs.stop_all();
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

/// Whether two settings of a connection hold the same credential: URL, kind, auth,
/// login (user name or client id) and secret (what the state store's identity digest covers).
pub(crate) fn same_credential(a: &Connection, b: &Connection) -> bool {
    a.url == b.url
        && a.settings.kind == b.settings.kind
        && a.settings.auth == b.settings.auth
        && a.settings.login() == b.settings.login()
        && a.secret == b.secret
}

fn chrono_of(duration: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(duration).unwrap_or(chrono::TimeDelta::MAX)
}
