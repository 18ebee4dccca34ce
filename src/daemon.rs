//! `credwatch run`: the long-running daemon. It owns the scheduler, serves the endpoints,
//! reloads the configuration on request, and shuts down within a grace period.
//!
//! [`Daemon::start`] takes an already-bound listener and returns a handle, so tests bind port
//! 0, reload and shut down without signals or sleeps; [`run`] adds the signals (SIGHUP
//! reloads, SIGTERM and SIGINT stop) for the binary.
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

use crate::config::Config;
use crate::metrics::Metrics;
use crate::probe::Prober;
use crate::scheduler::{Scheduler, Summary};
use crate::server::{self, AppState, ReloadRequest};
use crate::shard::Shard;
use crate::state::Status;

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
}

/// The part of `config` that `shard` owns (all of it without sharding).
fn owned(mut config: Config, shard: Option<Shard>) -> Config {
    if let Some(shard) = shard {
        let total = config.connections.len();
        config.connections.retain(|c| shard.owns(&c.name));
        tracing::info!(%shard, owned = config.connections.len(), total, "sharded: probing this replica's share");
    }
    config
}

/// A running daemon.
pub struct Daemon {
    addr: SocketAddr,
    status: Status,
    reloads: mpsc::Sender<ReloadRequest>,
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
    ) -> std::io::Result<Daemon> {
        let addr = listener.local_addr()?;
        let config = owned(config, options.shard);
        let status = Status::new();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (reloads, reload_rx) = mpsc::channel(16);
        let (task_count, tasks) = watch::channel(0);

        let mut scheduler =
            Scheduler::new(prober, status.clone(), config.globals, shutdown_rx.clone());
        let summary = scheduler.apply(&config);
        task_count.send_replace(scheduler.live_tasks());
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
        let server = tokio::spawn(async move {
            let serve =
                axum::serve(listener, server::app(state)).with_graceful_shutdown(async move {
                    let _ = server_shutdown.wait_for(|stop| *stop).await;
                });
            if let Err(error) = serve.await {
                tracing::error!(%error, "the HTTP server stopped");
            }
        });
        let main = tokio::spawn(main_loop(
            scheduler,
            options,
            status.clone(),
            reload_rx,
            shutdown_rx,
            task_count,
        ));
        Ok(Daemon {
            addr,
            status,
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

    /// The shared status.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// How many connection tasks were alive after the last load or reload.
    pub fn live_tasks(&self) -> usize {
        *self.tasks.borrow()
    }

    /// Reloads the configuration, as SIGHUP does.
    pub async fn reload(&self) -> Result<Summary, String> {
        request_reload(&self.reloads).await
    }

    /// A handle that can ask for reloads from elsewhere (the signal loop).
    pub fn reloader(&self) -> mpsc::Sender<ReloadRequest> {
        self.reloads.clone()
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

async fn request_reload(reloads: &mpsc::Sender<ReloadRequest>) -> Result<Summary, String> {
    let (respond, answer) = oneshot::channel();
    reloads
        .send(ReloadRequest { respond })
        .await
        .map_err(|_| "credwatch is shutting down".to_owned())?;
    answer
        .await
        .map_err(|_| "credwatch is shutting down".to_owned())?
}

async fn main_loop(
    mut scheduler: Scheduler,
    options: Options,
    status: Status,
    mut reloads: mpsc::Receiver<ReloadRequest>,
    mut shutdown: watch::Receiver<bool>,
    task_count: watch::Sender<usize>,
) {
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            request = reloads.recv() => {
                let Some(request) = request else { break };
                let result = reload(&options, &mut scheduler, &status);
                task_count.send_replace(scheduler.live_tasks());
                let _ = request.respond.send(result);
            }
        }
    }
    scheduler.stop_all(options.grace).await;
}

fn reload(
    options: &Options,
    scheduler: &mut Scheduler,
    status: &Status,
) -> Result<Summary, String> {
    match Config::load(&options.config) {
        Ok(config) => {
            let config = owned(config, options.shard);
            for warning in &config.warnings {
                tracing::warn!("{warning}");
            }
            let summary = scheduler.apply(&config);
            status.reloaded(Ok(()));
            tracing::info!(
                added = ?summary.added,
                changed = ?summary.changed,
                removed = ?summary.removed,
                unchanged = summary.unchanged,
                "configuration reloaded"
            );
            Ok(summary)
        }
        Err(errors) => {
            let message = errors.to_string();
            tracing::error!(errors = %message, "reload failed; the running configuration stays");
            status.reloaded(Err(message.clone()));
            Err(message)
        }
    }
}

/// Tells systemd about the daemon's state (`Type=notify`), when it runs under systemd: a
/// datagram to `$NOTIFY_SOCKET` (a path, or an abstract socket name starting with `@`).
/// Without the variable it does nothing.
pub fn sd_notify(state: &str) {
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
    let daemon = Daemon::start(config, listener, options, Prober::new()?)
        .context("cannot start the daemon")?;
    let reloader = daemon.reloader();
    sd_notify("READY=1\nSTATUS=probing");
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
