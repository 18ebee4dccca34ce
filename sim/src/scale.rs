//! The scale fleets of the soak tests and the benchmarks: many valid Data Center PATs over a
//! few simulated sites, and their configuration.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::fleet::write_secret;
use super::{Pat, Simulator, Site, User};

/// A large fleet for soak tests and benchmarks: `connections` valid Data Center PATs spread
/// round-robin over `sites` simulated sites (`site-0`, `site-1`, ...), one account each.
///
/// `rate_limited: false` turns the per-user rate-limit bucket off, for benchmarks that drive
/// one account far above Jira's budget and must compare the same successful answer.
pub fn install_scale(simulator: &Simulator, connections: usize, sites: usize, rate_limited: bool) {
    let sites = sites.max(1);
    let mut built: Vec<Site> = (0..sites)
        .map(|_| {
            let mut site = Site::server();
            if !rate_limited {
                site.bucket = None;
            }
            site
        })
        .collect();
    for i in 0..connections {
        let user = User::new(&format!("svc-{i}")).with_pat(Pat::new(
            i as u64 + 1,
            "credwatch",
            &format!("scale-token-{i}"),
            Some(90),
        ));
        built[i % sites].users.push(user);
    }
    for (k, site) in built.into_iter().enumerate() {
        simulator.add_site(&format!("site-{k}"), site);
    }
}

/// Writes the configuration of [`install_scale`]'s fleet: `dir/credwatch.toml` and one secret
/// file per connection under `dir/secrets/`.
pub fn write_scale_config(
    dir: &Path,
    simulator: &Simulator,
    connections: usize,
    sites: usize,
    interval: std::time::Duration,
) -> std::io::Result<PathBuf> {
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets)?;
    let timeout = (interval / 2).min(std::time::Duration::from_secs(10));
    let mut toml = format!(
        "# A scale fleet of {connections} connections over {sites} simulated sites.\n\n[defaults]\ninterval = \"{}\"\ntimeout = \"{}\"\ntoken_name = \"credwatch\"\n",
        humantime::format_duration(interval),
        humantime::format_duration(timeout),
    );
    for i in 0..connections {
        let name = format!("scale-{i}");
        write_secret(&secrets.join(&name), &format!("scale-token-{i}"))?;
        let _ = write!(
            toml,
            "\n[[connection]]\nname = \"{name}\"\nurl = \"{}\"\ntoken_file = \"secrets/{name}\"\n",
            simulator.url(&format!("site-{}", i % sites.max(1)))
        );
    }
    let path = dir.join("credwatch.toml");
    std::fs::write(&path, toml)?;
    Ok(path)
}
