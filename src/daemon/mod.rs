//! `credwatch run`: the long-running daemon. It owns the scheduler, serves the endpoints,
//! reloads the configuration on request, and shuts down within a grace period.
//!
//! [`Daemon::start`] takes an already-bound listener and returns a handle, so tests bind port
//! 0, reload and shut down without signals or sleeps; [`run`] adds the signals (SIGHUP
//! reloads, SIGTERM and SIGINT stop) for the binary.
//!
//! The state store is opened and read before anything is served, so restored verdicts are
//! exported from the first scrape; its writer runs beside the scheduler and writes what is
//! left on shutdown.
//!
//! A reload is all or nothing: the whole configuration is loaded and validated first; on any
//! error the running configuration stays, the error is logged and reported, and
//! `credwatch_config_last_reload_successful` becomes 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

mod share;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::probe::Prober;
use crate::replica::Replica;
use crate::scheduler::Scheduler;
pub use crate::scheduler::{ResumeError, Summary};
pub use crate::server::ReloadError;
use crate::server::{self, AppState, Control};
use crate::shard::Shard;
use crate::state::Board;
use crate::store::writer::Writer;
use crate::store::{Loaded, Location, OpenError, Store};
use crate::webconfig::{Current, WebConfig, WebConfigError};

/// The default shutdown grace period.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// The default listen address: all interfaces, port 9847.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9847";

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration file or directory, re-read on reload.
    pub config: PathBuf,
    /// Whether `POST /-/reload` is enabled.
    pub enable_lifecycle: bool,
    /// How long shutdown may take.
    pub grace: Duration,
    /// This replica's share of the fleet, when the fleet is sharded.
    pub shard: Option<Shard>,
    /// This process's place in an HA group (`--replica`): it watches only the Basic login
    /// accounts it owns, and every token connection.
    pub replica: Option<Replica>,
    /// Where the state is kept, if anywhere.
    pub state: Location,
    /// How long state changes are kept.
    pub history_retention: Duration,
    /// How often the configuration's files are looked at for a change, which reloads it as
    /// SIGHUP does; `None`: only SIGHUP and `POST /-/reload` reload.
    pub watch_config: Option<Duration>,
    /// The HTTP server's head deadline, idle timeout and connection bound.
    pub web: WebLimits,
    /// Serve only `/metrics`, the health endpoints and the lifecycle API (`--web.disable-ui`).
    pub disable_ui: bool,
    /// The web configuration file (`--web.config.file`): TLS, client certificates, basic auth
    /// and response headers; re-read on reload.
    pub web_config: Option<PathBuf>,
}

pub use crate::serve::Limits as WebLimits;

/// How often the daemon looks at its configuration's files for a change by default.
pub const CONFIG_POLL: Duration = Duration::from_secs(5);

impl Options {
    /// Options for `config` with every default: no lifecycle API, the default grace, no
    /// shard, and no state kept (the binary resolves the state directory itself).
    pub fn new(config: PathBuf) -> Options {
        Options {
            config,
            enable_lifecycle: false,
            grace: DEFAULT_GRACE,
            shard: None,
            replica: None,
            state: Location::Disabled,
            history_retention: crate::state::DEFAULT_HISTORY_RETENTION,
            watch_config: None,
            web: WebLimits::default(),
            disable_ui: false,
            web_config: None,
        }
    }
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listener's address cannot be read.
    #[error("cannot read the listen address: {0}")]
    Listener(#[source] std::io::Error),
    /// The explicitly named state directory cannot be used (exit 2).
    #[error(transparent)]
    State(#[from] OpenError),
    /// The web configuration file is broken (exit 2).
    #[error(transparent)]
    WebConfig(#[from] WebConfigError),
    /// The store's writer thread cannot start.
    #[error("cannot start the state store's writer: {0}")]
    Writer(#[source] std::io::Error),
    /// The in-memory login budget cannot be opened (without a state store).
    #[error("cannot keep the login budget in memory: {0}")]
    Logins(#[source] OpenError),
}

/// Opens the state store `location` names: an explicit directory that cannot be used is an
/// error; the default one is a warning, and then no state is kept.
///
/// A database that cannot be read (its permissions, say) is a warning too, and then the
/// daemon runs without state rather than touch the file: the daemon keeps running.
pub fn open_store(location: &Location) -> Result<Option<Store>, OpenError> {
    let (dir, explicit) = match location {
        Location::Disabled => return Ok(None),
        Location::Explicit(dir) => (dir, true),
        Location::Defaulted(dir) => (dir, false),
    };
    match Store::open_owned(dir) {
        Ok(store) => Ok(Some(store)),
        Err(error @ OpenError::InUse(_)) => Err(error),
        Err(error @ OpenError::Directory { .. }) if explicit => Err(error),
        Err(error) => {
            tracing::warn!(%error, "running without a state store: verdicts and the login budget will not survive a restart (fix the store, set --state-dir, or --no-state to silence this)");
            Ok(None)
        }
    }
}

/// What the daemon starts from: its state store (if any), what the store held, and where the
/// login accounts' budgets are kept (the store, or memory without one).
struct Remembered {
    store: Option<Arc<Store>>,
    loaded: Loaded,
    logins: Arc<Store>,
}

/// Opens the state store and reads it before anything is served, so that restored verdicts
/// are what the first scrape sees; logs the Basic accounts a change of shards moved here.
fn remember(options: &Options, config: &Config) -> Result<Remembered, StartError> {
    let store = open_store(&options.state)?.map(Arc::new);
    let loaded = match &store {
        Some(store) => {
            let started = std::time::Instant::now();
            let loaded = store.load(options.history_retention).unwrap_or_else(|error| {
                tracing::warn!(store = %store.path().display(), %error, "the state store cannot be read; starting as on a first run");
                Loaded::default()
            });
            tracing::info!(
                store = %store.path().display(),
                connections = loaded.records.len(),
                took_ms = started.elapsed().as_millis() as u64,
                "state restored"
            );
            loaded
        }
        None => Loaded::default(),
    };
    let logins = match &store {
        Some(store) => {
            share::log_moved_accounts(store, config, options.shard);
            if let Err(error) = store.set_replica(options.replica) {
                tracing::warn!(%error, "cannot record this replica in the state store");
            }
            store.clone()
        }
        None => Arc::new(Store::open_memory().map_err(StartError::Logins)?),
    };
    Ok(Remembered {
        store,
        loaded,
        logins,
    })
}

/// Drops from the store the connections no longer configured (their login budgets stay for a
/// week).
fn forget_the_gone(store: &Store, config: &Config) {
    let names = config.connections.iter().map(|c| c.name.as_str()).collect();
    let accounts = config
        .connections
        .iter()
        .filter_map(|c| c.login_account())
        .collect();
    match store.retain(&names, &accounts) {
        Ok(0) => {}
        Ok(dropped) => tracing::info!(
            dropped,
            "the state store forgot connections no longer configured"
        ),
        Err(error) => tracing::warn!(
            store = %store.path().display(),
            %error,
            "cannot drop connections no longer configured from the state store"
        ),
    }
}

/// A running daemon.
pub struct Daemon {
    addr: SocketAddr,
    reloads: mpsc::Sender<Control>,
    shutdown: watch::Sender<bool>,
    main: JoinHandle<()>,
    server: JoinHandle<()>,
    tasks: watch::Receiver<usize>,
}

impl Daemon {
    /// Starts probing `config` and serving on `listener`.
    pub fn start(
        config: Config,
        listener: TcpListener,
        options: Options,
        prober: Prober,
    ) -> Result<Daemon, StartError> {
        let addr = listener.local_addr().map_err(StartError::Listener)?;
        let web_config = load_web_config(&options)?;
        log_web_config(&options, &web_config);
        let web = Arc::new(Current::new(web_config));
        let (config, foreign) = share::this_part(config, options.shard, options.replica);
        let status = Board::new();
        status.set_history_retention(options.history_retention);
        let shard = options.shard.unwrap_or(Shard { index: 0, count: 1 });
        status.set_group(shard, options.replica, foreign);
        let Remembered {
            store,
            loaded,
            logins,
        } = remember(&options, &config)?;
        // A restart inside a gate (a Retry-After this daemon or a `check` was given) sends
        // nothing to that site or endpoint until it lifts.
        if let Some(gates) = store.as_ref().and_then(|s| s.closed_gates().ok()) {
            status.set_stored_gates(gates);
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (reloads, reload_rx) = mpsc::channel(16);
        let (task_count, tasks) = watch::channel(0);

        let mut scheduler = Scheduler::new(
            prober,
            status.clone(),
            config.globals,
            shutdown_rx.clone(),
            store.clone(),
            logins,
            loaded,
        );
        let summary = scheduler.apply(&config);
        task_count.send_replace(scheduler.live_tasks());
        let writer = match &store {
            Some(store) => {
                forget_the_gone(store, &config);
                Some(
                    Writer::start(store.clone(), status.clone(), options.history_retention)
                        .map_err(StartError::Writer)?,
                )
            }
            None => None,
        };
        tracing::info!(
            listen = %addr,
            connections = summary.added.len(),
            config = %options.config.display(),
            "credwatch is running"
        );

        let state = AppState {
            status: status.clone(),
            metrics: Arc::new(Metrics::new()),
            reload: options.enable_lifecycle.then(|| reloads.clone()),
        };
        let mut server_shutdown = shutdown_rx.clone();
        let app = server::app(state, !options.disable_ui);
        let limits = options.web;
        let web_for_server = web.clone();
        let server = tokio::spawn(async move {
            crate::serve::serve(listener, app, limits, web_for_server, async move {
                let _ = server_shutdown.wait_for(|stop| *stop).await;
            })
            .await;
        });
        let main = tokio::spawn(main_loop(
            scheduler,
            options,
            Live {
                status: status.clone(),
                web,
            },
            reload_rx,
            shutdown_rx,
            task_count,
            writer,
        ));
        Ok(Daemon {
            addr,
            reloads,
            shutdown,
            main,
            server,
            tasks,
        })
    }

    /// Where the endpoints are served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connection tasks were alive after the last load or reload.
    pub fn live_tasks(&self) -> usize {
        *self.tasks.borrow()
    }

    /// Reloads the configuration, as SIGHUP does.
    pub async fn reload(&self) -> Result<Summary, ReloadError> {
        request_reload(&self.reloads).await
    }

    /// A handle that can ask for reloads from elsewhere (the signal loop).
    pub(crate) fn reloader(&self) -> mpsc::Sender<Control> {
        self.reloads.clone()
    }

    /// Lifts the pause of a connection's login account, as `POST
    /// /api/v1/connections/{name}/resume` does; returns the connections resumed.
    pub async fn resume(&self, name: &str) -> Result<Vec<String>, ResumeError> {
        let (respond, answer) = oneshot::channel();
        let request = Control::Resume {
            name: name.to_owned(),
            respond,
        };
        self.reloads
            .send(request)
            .await
            .map_err(|_| ResumeError::ShuttingDown)?;
        answer.await.map_err(|_| ResumeError::ShuttingDown)?
    }

    /// Stops scheduling, cancels probes in flight and stops serving, within `grace`
    /// (plus a moment for the server to close its listener).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + grace + Duration::from_millis(250);
        let mut main = self.main;
        if tokio::time::timeout_at(deadline, &mut main).await.is_err() {
            main.abort();
        }
        let mut server = self.server;
        if tokio::time::timeout_at(deadline, &mut server)
            .await
            .is_err()
        {
            // Open scrapes must not hold the process: the grace has passed.
            server.abort();
        }
    }
}

async fn request_reload(reloads: &mpsc::Sender<Control>) -> Result<Summary, ReloadError> {
    let (respond, answer) = oneshot::channel();
    reloads
        .send(Control::Reload { respond })
        .await
        .map_err(|_| ReloadError::ShuttingDown)?;
    answer.await.map_err(|_| ReloadError::ShuttingDown)?
}

/// What a reload changes besides the scheduler: the board's reload status and the web
/// configuration the server runs with.
struct Live {
    status: Board,
    web: Arc<Current>,
}

async fn main_loop(
    mut scheduler: Scheduler,
    options: Options,
    live: Live,
    mut reloads: mpsc::Receiver<Control>,
    mut shutdown: watch::Receiver<bool>,
    task_count: watch::Sender<usize>,
    writer: Option<Writer>,
) {
    use crate::config::watch::Fingerprint;
    // The configuration's files and the web configuration's, as they are now.
    let fingerprint =
        |live: &Live| Fingerprint::of(&options.config).with_files(&live.web.get().files);
    let mut seen = fingerprint(&live);
    let mut poll = options.watch_config.map(|period| {
        let mut poll = tokio::time::interval(period);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll
    });
    loop {
        // A resume waits for the store (on the blocking pool): it is answered after the select,
        // whose branches hold what cannot be held across an await.
        let mut resume = None;
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = tick(&mut poll) => {
                let now = fingerprint(&live);
                if now != seen {
                    seen = now;
                    tracing::info!(config = %options.config.display(), "the configuration changed on disk: reloading");
                    let _ = reload(&options, &mut scheduler, &live);
                    task_count.send_replace(scheduler.live_tasks());
                }
            }
            request = reloads.recv() => {
                match request {
                    None => break,
                    Some(Control::Reload { respond }) => {
                        seen = fingerprint(&live);
                        let result = reload(&options, &mut scheduler, &live);
                        task_count.send_replace(scheduler.live_tasks());
                        let _ = respond.send(result);
                    }
                    Some(Control::Resume { name, respond }) => resume = Some((name, respond)),
                }
            }
        }
        if let Some((name, respond)) = resume {
            let _ = respond.send(scheduler.resume(&name).await);
        }
    }
    scheduler.stop_all(options.grace).await;
    // What the last probes changed is written before the process exits.
    if let Some(writer) = writer {
        let _ = tokio::task::spawn_blocking(move || writer.stop()).await;
    }
}

async fn tick(poll: &mut Option<tokio::time::Interval>) {
    match poll {
        Some(poll) => {
            poll.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The web configuration `options` names, or the empty one (plain HTTP, no authentication).
fn load_web_config(options: &Options) -> Result<WebConfig, WebConfigError> {
    match &options.web_config {
        Some(path) => WebConfig::load(path),
        None => Ok(WebConfig::default()),
    }
}

/// Says what the web configuration turns on, at start and on every reload: a section emptied by
/// mistake turns TLS or authentication off, and that must not pass unseen.
fn log_web_config(options: &Options, web_config: &WebConfig) {
    if let Some(path) = &options.web_config {
        tracing::info!(
            web_config = %path.display(),
            tls = web_config.tls.is_some(),
            client_certificates_required = web_config.client_certificates_required,
            basic_auth = web_config.users.is_some(),
            rate_limit = web_config.rate_limit.is_some(),
            "web configuration loaded"
        );
        for warning in &web_config.warnings {
            tracing::warn!(web_config = %path.display(), "{warning}");
        }
    }
}

/// Reloads the configuration and the web configuration: both or neither.
fn reload(
    options: &Options,
    scheduler: &mut Scheduler,
    live: &Live,
) -> Result<Summary, ReloadError> {
    let loaded = Config::load(&options.config)
        .map_err(ReloadError::Config)
        .and_then(|config| Ok((config, load_web_config(options)?)));
    match loaded {
        Ok((config, web_config)) => {
            let (config, foreign) = share::this_part(config, options.shard, options.replica);
            let shard = options.shard.unwrap_or(Shard { index: 0, count: 1 });
            live.status.set_group(shard, options.replica, foreign);
            for warning in &config.warnings {
                tracing::warn!("{warning}");
            }
            let summary = scheduler.apply(&config);
            log_web_config(options, &web_config);
            live.web.replace(web_config);
            live.status.reloaded(None);
            tracing::info!(
                added = ?summary.added,
                changed = ?summary.changed,
                removed = ?summary.removed,
                unchanged = summary.unchanged,
                "configuration reloaded"
            );
            Ok(summary)
        }
        Err(error) => {
            tracing::error!(errors = %error, "reload failed; the running configuration stays");
            live.status.reloaded(Some(&error));
            Err(error)
        }
    }
}

/// Tells systemd about the daemon's state (`Type=notify`), when it runs under systemd: a
/// datagram to `$NOTIFY_SOCKET` (a path, or an abstract socket name starting with `@`).
/// Without the variable it does nothing.
pub(crate) fn sd_notify(state: &str) {
    use std::os::linux::net::SocketAddrExt as _;
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let target = target.to_string_lossy().into_owned();
    let address = match target.strip_prefix('@') {
        Some(name) => UnixAddr::from_abstract_name(name.as_bytes()),
        None => UnixAddr::from_pathname(&target),
    };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let address = address?;
        socket.send_to_addr(state.as_bytes(), &address)
    });
    if let Err(error) = sent {
        tracing::debug!(%error, "cannot notify systemd");
    }
}

/// How often to tell systemd's watchdog that the daemon is alive: half of `WatchdogSec=`, as
/// sd_watchdog_enabled(3) advises, when `$WATCHDOG_USEC` is set for this process.
fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec) / 2)
}

/// Sends `WATCHDOG=1` every `period` for as long as the async runtime runs this task: a
/// runtime that stops scheduling tasks stops the pings, and systemd restarts the service.
async fn watchdog(period: Duration) {
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        sd_notify("WATCHDOG=1");
    }
}

/// Runs the daemon until SIGTERM or SIGINT, reloading on SIGHUP.
pub async fn run(config: Config, listen: SocketAddr, options: Options) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let grace = options.grace;
    let daemon = Daemon::start(config, listener, options, Prober::new()?)?;
    let reloader = daemon.reloader();
    sd_notify("READY=1\nSTATUS=probing");
    let _watchdog = watchdog_period().map(|period| tokio::spawn(watchdog(period)));
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                sd_notify("RELOADING=1");
                // The outcome is logged by the reload itself.
                let _ = request_reload(&reloader).await;
                sd_notify("READY=1");
            }
            _ = terminate.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = interrupt.recv() => { tracing::info!("SIGINT: shutting down"); break; }
        }
    }
    sd_notify("STOPPING=1");
    daemon.shutdown(grace).await;
    Ok(())
}
