//! `credwatch demo` and `credwatch simulate`: the built-in simulator of Jira, Confluence and Bitbucket with
//! the demo fleet, so that a newcomer sees every credential state without a Jira at hand.
//!
//! `demo` runs the real daemon against the fleet (short intervals) and prints where its status
//! page, metrics and API are; `simulate` runs only the simulator, for people who want to point
//! their own credwatch or alert pipeline at it, and for the benchmarks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::daemon::{Daemon, Options};
use crate::probe::Prober;
use crate::sim::{fleet, Simulator};

/// The default listen address of the demo's daemon.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9847";

/// Runs the daemon against the simulated fleet until SIGINT or SIGTERM.
pub async fn run(listen: SocketAddr, interval: Duration) -> anyhow::Result<u8> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;

    let simulator = start("127.0.0.1:0".parse()?).await?;
    let dir = ScratchDir::create()?;
    let path = fleet::write_config(dir.path(), &simulator, closed_port()?, interval)
        .context("cannot write the demo configuration")?;
    let config = Config::load(&path)
        .map_err(|errors| anyhow::anyhow!("the demo configuration does not load:\n{errors}"))?;
    let connections = config.connections.len();
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen} (pass --listen to pick another address)")
    })?;
    // The demo's simulator starts afresh every time, so its state lives in the scratch
    // directory and goes with it.
    let options = Options {
        enable_lifecycle: true,
        grace: Duration::from_secs(2),
        state: crate::store::Location::Explicit(dir.path().join("state")),
        ..Options::new(path.clone())
    };
    let daemon = Daemon::start(config, listener, options, Prober::new()?)
        .context("cannot start the daemon")?;
    let base = format!("http://{}", daemon.addr());
    println!(
        "credwatch demo: {connections} connections on simulated Jira, Confluence and Bitbucket sites, probed every {}.",
        humantime::format_duration(interval)
    );
    println!();
    println!("  status page: {base}/");
    println!("  metrics:     {base}/metrics");
    println!("  API:         {base}/api/v1/connections");
    println!("  readiness:   {base}/readyz");
    println!();
    println!("  Atlassian simulator: http://{}", simulator.addr());
    println!(
        "  configuration:  {} (reload: curl -X POST {base}/-/reload)",
        path.display()
    );
    println!();
    println!("The fleet settles within a few intervals (one site rate-limits first, then recovers). Ctrl-C stops.");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    daemon.shutdown(Duration::from_secs(2)).await;
    drop(dir);
    Ok(0)
}

/// A fleet of many valid connections instead of the demo fleet.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// How many connections.
    pub connections: usize,
    /// Over how many sites.
    pub sites: usize,
}

/// How `credwatch simulate` runs.
#[derive(Debug, Clone, Default)]
pub struct SimulateOptions {
    /// Where to write a configuration for the fleet.
    pub write_config: Option<PathBuf>,
    /// The probe interval written into that configuration.
    pub interval: Duration,
    /// A scale fleet instead of the demo fleet.
    pub scale: Option<Scale>,
    /// Serve HTTPS with this PEM certificate chain and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Close every connection after its answer (no keep-alive).
    pub close_connections: bool,
    /// A `ca_file` to write into the configuration (with `tls`).
    pub ca_file: Option<PathBuf>,
    /// With `scale`: no per-user rate-limit bucket (benchmarks).
    pub no_rate_limit: bool,
}

/// Runs the simulator with the demo fleet (or a scale fleet) until interrupted, optionally
/// writing a configuration for it.
pub async fn simulate(listen: SocketAddr, options: SimulateOptions) -> anyhow::Result<u8> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let simulator = match &options.tls {
        Some((cert, key)) => {
            let cert =
                std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
            let key =
                std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
            Simulator::serve_tls(listener, &cert, &key)
        }
        None => Simulator::serve(listener),
    }
    .context("cannot start the Atlassian simulator")?;
    simulator.set_close_connections(options.close_connections);
    match options.scale {
        Some(scale) => fleet::install_scale(
            &simulator,
            scale.connections,
            scale.sites,
            !options.no_rate_limit,
        ),
        None => fleet::install(&simulator),
    }
    println!(
        "Atlassian simulator listening on {}",
        simulator.url("").trim_end_matches('/')
    );
    if options.scale.is_none() {
        for member in fleet::members() {
            if let Some(site) = member.site {
                println!("  {:<22} {}", member.name, simulator.url(site));
            }
        }
    }
    if let Some(dir) = &options.write_config {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = match options.scale {
            Some(scale) => fleet::write_scale_config(
                dir,
                &simulator,
                scale.connections,
                scale.sites,
                options.interval,
            ),
            None => fleet::write_config(dir, &simulator, closed_port()?, options.interval),
        }
        .with_context(|| format!("cannot write the configuration into {}", dir.display()))?;
        if let Some(ca) = &options.ca_file {
            let ca = std::fs::canonicalize(ca)
                .with_context(|| format!("cannot find {}", ca.display()))?;
            let text = std::fs::read_to_string(&path)?;
            let text = text.replacen(
                "[defaults]\n",
                &format!("[defaults]\nca_file = {:?}\n", ca.display().to_string()),
                1,
            );
            std::fs::write(&path, text)?;
        }
        println!("configuration written to {}", path.display());
    }
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(0)
}

async fn start(listen: SocketAddr) -> anyhow::Result<Simulator> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let simulator = Simulator::serve(listener).context("cannot start the Atlassian simulator")?;
    fleet::install(&simulator);
    Ok(simulator)
}

/// A loopback port nobody listens on (bound, then released), for the unreachable connection.
fn closed_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("cannot pick a port")?;
    Ok(listener.local_addr()?.port())
}

/// A private scratch directory, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn create() -> anyhow::Result<ScratchDir> {
        let path = std::env::temp_dir().join(format!("credwatch-demo-{}", std::process::id()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(ScratchDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
