//! Where this process stands in the fleet: its shard (`--shard`), its place in an HA group
//! (`--replica`), and the connections of its shard that another replica of the group owns
//! (a Basic login account is owned by one replica). Those are listed by the API with their
//! owner, and counted nowhere else: not by `/readyz`, `credwatch_connections` or the page's
//! totals.

use std::sync::Arc;

use super::Board;
use crate::config::Connection;
use crate::replica::Replica;
use crate::shard::Shard;

/// This process's shard and replica.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// The shard and the number of shards (0 of 1 without sharding).
    pub shard: Shard,
    /// The replica and the size of the HA group (`None` without `--replica`).
    pub replica: Option<Replica>,
    /// The connections of this shard that another replica owns, by name.
    pub foreign: Vec<Foreign>,
    /// The change feed's counter when this was set: `?changed_since` lists every foreign
    /// connection again after it.
    pub changed: u64,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            shard: Shard { index: 0, count: 1 },
            replica: None,
            foreign: Vec::new(),
            changed: 0,
        }
    }
}

impl Group {
    /// The replica that owns the connection named `name`, when another one does.
    pub(crate) fn owner_elsewhere(&self, name: &str) -> Option<u32> {
        self.foreign
            .binary_search_by(|f| f.connection.name.as_str().cmp(name))
            .ok()
            .map(|i| self.foreign[i].owner)
    }

    /// The replica that owns `connection` alone (a Basic login account), with `--replica`.
    pub(crate) fn sole_owner(&self, connection: &Connection) -> Option<u32> {
        self.replica?.sole_owner(connection)
    }
}

/// A connection that another replica of the HA group owns.
#[derive(Debug, Clone)]
pub(crate) struct Foreign {
    /// The connection.
    pub connection: Arc<Connection>,
    /// The replica that owns its login account.
    pub owner: u32,
}

impl Board {
    /// Sets this process's shard and replica, and the connections another replica owns (kept
    /// in name order).
    pub(crate) fn set_group(
        &self,
        shard: Shard,
        replica: Option<Replica>,
        mut foreign: Vec<Foreign>,
    ) {
        foreign.sort_by(|a, b| a.connection.name.cmp(&b.connection.name));
        let mut inner = self.lock();
        // A name no other replica owns any more left the list, unless it is on the board.
        let gone: Vec<Arc<Connection>> = inner
            .group
            .foreign
            .iter()
            .filter(|old| {
                foreign
                    .binary_search_by(|f| f.connection.name.cmp(&old.connection.name))
                    .is_err()
            })
            .map(|old| old.connection.clone())
            .collect();
        for connection in gone {
            inner.feed.removed(&connection.name);
        }
        let changed = inner.feed.advance();
        inner.group = Arc::new(Group {
            shard,
            replica,
            foreign,
            changed,
        });
    }
}
