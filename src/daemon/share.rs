//! Which part of the fleet this process watches: with `--shard K/N`, the connections
//! rendezvous hashing assigns to its shard (a Basic connection by its login account, so that
//! an account's names and its one budget stay together); with `--replica I/N`, less the Basic
//! accounts another replica of its HA group owns, which it lists but neither probes nor
//! exports. And the one WARN per account that a change of the shard count moved here.

use std::sync::Arc;

use crate::config::Config;
use crate::replica::Replica;
use crate::shard::Shard;
use crate::state::Foreign;
use crate::store::Store;

/// The part of `config` that this process watches: what `shard` owns (all of it without
/// sharding), less the Basic connections whose login account another replica of the HA group
/// owns (`replica`), which are returned apart with their owner, for the API to list.
pub(super) fn this_part(
    mut config: Config,
    shard: Option<Shard>,
    replica: Option<Replica>,
) -> (Config, Vec<Foreign>) {
    if let Some(shard) = shard {
        let total = config.connections.len();
        // A Basic connection goes with its login account: every name of the account lands on
        // one shard, whose store keeps the account's one budget.
        config.connections.retain(|c| shard.owns(c.shard_key()));
        // An organization is read by the shard that exports it (the owner of its name) and by
        // every shard with connections that match against its list.
        let connections = &config.connections;
        config.orgs.retain(|org| {
            shard.owns(&org.name)
                || connections
                    .iter()
                    .any(|c| c.settings.org.as_deref() == Some(org.name.as_str()))
        });
        tracing::info!(%shard, owned = config.connections.len(), total, "sharded: probing this replica's share");
    }
    let mut foreign = Vec::new();
    if let Some(replica) = replica {
        let (mine, theirs): (Vec<_>, Vec<_>) = config
            .connections
            .into_iter()
            .partition(|c| replica.watches(c));
        config.connections = mine;
        foreign = theirs
            .into_iter()
            .map(|connection| Foreign {
                owner: replica.sole_owner(&connection).unwrap_or(replica.index),
                connection: Arc::new(connection),
            })
            .collect();
        tracing::info!(%replica, watched = config.connections.len(), owned_elsewhere = foreign.len(), "HA group: this replica sends the logins of the Basic accounts it owns, and probes every token");
    }
    (config, foreign)
}

/// Logs, once at start, each login account that a change of the shard count (or index) moved
/// to this shard: the store here does not know what its old shard's store counted, so the
/// account may be granted up to 2 more failed logins. The shard is kept in the store for the
/// next start.
pub(super) fn log_moved_accounts(store: &Store, config: &Config, shard: Option<Shard>) {
    let now = shard.unwrap_or(Shard { index: 0, count: 1 });
    let before = match store.shard() {
        Ok(before) => before,
        Err(error) => {
            tracing::warn!(%error, "cannot read the shard the state store was last used by");
            None
        }
    };
    if let Some(before) = before.filter(|before| *before != now) {
        let mut seen = std::collections::HashSet::new();
        for account in config.connections.iter().filter_map(|c| c.login_account()) {
            if seen.insert(account) && !before.owns(account) {
                tracing::warn!(
                    account,
                    from_shard = %crate::shard::owner(account, before.count),
                    shards_before = before.count,
                    shard = %now,
                    "this login account moved to this shard, whose state store does not know its failed-login count: up to 2 more failed logins may be sent for it"
                );
            }
        }
    }
    if let Err(error) = store.set_shard(now) {
        tracing::warn!(%error, "cannot record this shard in the state store");
    }
}
