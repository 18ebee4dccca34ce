//! `credwatch check`: one probe round over the selected connections, for people and scripts.
//!
//! What a connector's "Save & test connection" button does for one credential, done for a
//! fleet: probes run concurrently under a bound; a 429 or 503 whose `Retry-After` fits within
//! [`MAX_RETRY_WAIT`] is retried once it has passed (never anything else: a retried failed
//! Basic login counts towards Jira's CAPTCHA lock). The results render as a table or as JSON.
//!
//! With a state store (the daemon's, opened without taking it over), a Basic login spends
//! the same budget the daemon spends: it is recorded before it is sent, and a connection whose
//! budget is spent is not probed unless `--force` says so. The store's pending confirmations
//! are shown beside what Jira answered now.

mod one;
mod orgs;
mod render;

pub use render::{render_json, render_table};

pub use orgs::{
    exit_code as orgs_exit_code, read_orgs, render_json as render_orgs_json,
    render_table as render_orgs_table,
};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::Connection;
use crate::expiry::{self, Assessment};
use crate::probe::{Outcome, Prober, State};
use crate::state::{Pause, Pending};
use crate::store::{Location, OpenError, Store};

/// The longest `Retry-After` that `check` waits out before retrying.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// How many times `check` retries a rate-limited probe at most.
pub const MAX_RETRIES: usize = 2;

/// One connection's result.
#[derive(Debug, Clone)]
pub struct Report {
    /// The connection probed.
    pub connection: Connection,
    /// The last probe's outcome.
    pub outcome: Outcome,
    /// How many probes were sent (more than one only after a `Retry-After`).
    pub attempts: u32,
    /// The credential's expiry and rotation (with Jira's PAT list, for Data Center PATs).
    pub expiry: Assessment,
    /// Why the connection was not probed: its login budget is spent.
    pub paused: Option<Pause>,
    /// The daemon's pending confirmation, from the state store.
    pub pending: Option<Pending>,
    /// With `--replica`: the replica of the HA group that owns this connection's login
    /// account, when it is not this one (then nothing was sent).
    pub owned_by_replica: Option<u32>,
    /// Beside a sharded daemon: the shard that owns the connection's login account, when it is
    /// another (then nothing was sent).
    pub owned_by_shard: Option<u32>,
    /// Until when the stored gate of its site or token endpoint is closed, when that kept
    /// `check` from sending anything.
    pub gated_until: Option<chrono::DateTime<Utc>>,
}

/// How `check` runs.
#[derive(Debug, Default)]
pub struct Options {
    /// How many probes may run at once.
    pub concurrency: usize,
    /// The state store whose login budget `check` spends.
    pub store: Option<Arc<Store>>,
    /// Send Basic logins even when the budget is spent.
    pub force: bool,
    /// Probe connections whose site or token endpoint the store says is gated (a Retry-After
    /// the daemon or another check was given).
    pub ignore_rate_limits: bool,
    /// This process's place in an HA group: the Basic accounts another replica owns are not
    /// probed.
    pub replica: Option<crate::replica::Replica>,
    /// The organizations' lists, read before the probes ([`read_orgs`]).
    pub orgs: Vec<crate::org::OrgStatus>,
}

/// Opens the store `location` names without owning it: an explicit directory that cannot be
/// used is an error; the default one is a warning, and then `check` keeps no budget.
pub fn open_store(location: &Location) -> Result<Option<Store>, OpenError> {
    let result = match location {
        Location::Disabled => return Ok(None),
        Location::Explicit(dir) | Location::Defaulted(dir) => Store::open_shared(dir),
    };
    match (result, location) {
        (Ok(store), _) => Ok(Some(store)),
        (Err(error), Location::Explicit(_)) => Err(error),
        (Err(error), _) => {
            tracing::warn!(%error, "checking without the state store: Basic logins are not counted against the daemon's budget");
            Ok(None)
        }
    }
}

/// Probes every connection once, at most `concurrency` at a time; reports keep the input order.
pub async fn run(prober: &Prober, connections: Vec<Connection>, options: &Options) -> Vec<Report> {
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let total = connections.len();
    let kept = connections.clone();
    let mut matches = org_matches(&options.orgs, &connections);
    let logins = login_budget(options.store.as_ref());
    let gates = match (&options.store, options.ignore_rate_limits) {
        (Some(store), false) => Arc::new(store.closed_gates().unwrap_or_default()),
        _ => Arc::default(),
    };
    // Beside a daemon, its shard and replica are check's too (unless --replica says), so that
    // a Basic account another shard or replica owns gets no login from here.
    let (shard, replica) = match &options.store {
        Some(store) => (
            store.shard().ok().flatten(),
            options.replica.or(store.replica().ok().flatten()),
        ),
        None => (None, options.replica),
    };
    for (index, connection) in connections.into_iter().enumerate() {
        if let Some(owner) = replica
            .filter(|r| !r.watches(&connection))
            .and_then(|r| r.sole_owner(&connection))
        {
            tasks.spawn(async move { (index, one::owned_elsewhere(connection, owner)) });
            continue;
        }
        if let Some(shard) = shard.filter(|s| {
            s.count > 1 && connection.login_account().is_some() && !s.owns(connection.shard_key())
        }) {
            let owner = crate::shard::owner(connection.shard_key(), shard.count);
            tasks.spawn(async move { (index, one::on_another_shard(connection, owner)) });
            continue;
        }
        let job = one::Job {
            prober: prober.clone(),
            store: options.store.clone(),
            logins: logins.clone(),
            force: options.force,
            matched: matches.remove(&connection.name),
            gates: gates.clone(),
        };
        let permits = permits.clone();
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = permits.acquire_owned().await;
            (index, job.check(connection).await)
        });
    }
    let mut slots: Vec<Option<Report>> = vec![None; total];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, report)) => slots[index] = Some(report),
            Err(error) => tracing::error!(%error, "a probe task failed"),
        }
    }
    // A connection whose task failed is reported, never silently dropped.
    slots
        .into_iter()
        .zip(kept)
        .map(|(slot, connection)| {
            slot.unwrap_or_else(|| Report {
                outcome: one::internal_failure(&connection),
                expiry: expiry::assess(&connection, None, Utc::now()),
                connection,
                attempts: 0,
                paused: None,
                pending: None,
                owned_by_replica: None,
                owned_by_shard: None,
                gated_until: None,
            })
        })
        .collect()
}

/// Each organization's list indexed once, every connection of it matched against it.
fn org_matches(
    orgs: &[crate::org::OrgStatus],
    connections: &[Connection],
) -> HashMap<String, crate::org::OrgMatch> {
    let mut matches = HashMap::new();
    for status in orgs {
        let Some((_, tokens)) = &status.tokens else {
            continue;
        };
        let accounts = crate::org::ByAccount::new(tokens);
        for connection in connections {
            if connection.settings.org.as_deref() == Some(status.org.name.as_str()) {
                let matched = accounts.match_token(connection, &status.org.name);
                matches.insert(connection.name.clone(), matched);
            }
        }
    }
    matches
}

/// Where `check` keeps the login accounts' budgets: the daemon's store, or one in memory, so
/// that the names of one account share a budget within this run too. `None` only when not even
/// that can be had (logged; Basic logins are then sent without a budget, one per connection).
/// The per-name budgets of a format-1 store are the daemon's to move to their accounts, at its
/// start: `check` never rewrites a store it does not own.
fn login_budget(store: Option<&Arc<Store>>) -> Option<Arc<Store>> {
    match store {
        Some(store) => Some(store.clone()),
        None => match Store::open_memory() {
            Ok(store) => Some(Arc::new(store)),
            Err(error) => {
                tracing::warn!(%error, "cannot keep the login budget in memory");
                None
            }
        },
    }
}

/// The exit status `check` ends with: 0 when every credential is valid, 1 otherwise.
pub fn exit_code(reports: &[Report]) -> u8 {
    u8::from(reports.iter().any(|r| r.outcome.state != State::Valid))
}
