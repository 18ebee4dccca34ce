//! `credwatch demo` and `credwatch simulate`: the built-in Jira simulator with the demo fleet,
//! so that a newcomer sees every credential state without a Jira at hand.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::check;
use crate::config::Config;
use crate::probe::Prober;
use crate::sim::{fleet, Simulator};

/// Starts the simulator with the demo fleet, checks every connection once, prints the table.
pub async fn run(listen: SocketAddr) -> anyhow::Result<u8> {
    let simulator = start(listen).await?;
    let dir = ScratchDir::create()?;
    let path = fleet::write_config(dir.path(), &simulator, closed_port()?)
        .context("cannot write the demo configuration")?;
    let config = Config::load(&path)
        .map_err(|errors| anyhow::anyhow!("the demo configuration does not load:\n{errors}"))?;
    println!(
        "Jira simulator on http://{}: checking the demo fleet of {} connections (one retries after a 429)...\n",
        simulator.addr(),
        config.connections.len()
    );
    let reports = check::run(&Prober::new()?, config.connections, 16).await;
    print!("{}", check::render_table(&reports, false));
    println!("\nThis was `credwatch check` against a simulated fleet; try `credwatch check --config YOUR.toml`.");
    Ok(0)
}

/// Runs the simulator with the demo fleet until interrupted, optionally writing a
/// configuration for it.
pub async fn simulate(listen: SocketAddr, write_config: Option<PathBuf>) -> anyhow::Result<u8> {
    let simulator = start(listen).await?;
    println!("Jira simulator listening on http://{}", simulator.addr());
    for member in fleet::members() {
        if let Some(site) = member.site {
            println!("  {:<22} {}", member.name, simulator.url(site));
        }
    }
    if let Some(dir) = write_config {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = fleet::write_config(&dir, &simulator, closed_port()?)
            .with_context(|| format!("cannot write the configuration into {}", dir.display()))?;
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
    let simulator = Simulator::serve(listener).context("cannot start the Jira simulator")?;
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
