//! A [`Snapshot`]: the status at one moment, which `/metrics`, the status page and the API
//! render without holding the board's lock, and the changes after a client's token that the
//! entries alone cannot tell (the names removed since).

use std::sync::Arc;

use chrono::Utc;

use super::{Board, Entry, Gone, Group, Inner, Lateness, ReloadStatus, Since, Token};

/// The status at one moment, read without holding the lock: what `/metrics`, the status page
/// and the API render, however many connections there are.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// Every connection's entry, by name.
    pub entries: Vec<Arc<Entry>>,
    /// The configuration's reload status.
    pub reload: ReloadStatus,
    /// How late probes started.
    pub lateness: Lateness,
    /// This replica's shard, its place in an HA group, and what other replicas own.
    pub group: Arc<Group>,
    /// The Atlassian organizations, by name.
    pub orgs: Vec<Arc<crate::org::OrgStatus>>,
    /// The change feed's position when the snapshot was taken (an entry whose `changed` is
    /// greater changed after the token `since` the client held).
    pub changes: Token,
}

impl Board {
    /// The status now. The lock is held only to copy one pointer per connection (about a
    /// millisecond at 100,000 connections), so a large scrape never stalls the probes.
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.snapshot_and(|_| ()).0
    }

    /// The status now and what changed after `since` that the entries cannot tell: the names
    /// removed since (those that came back are left out: they are among the entries).
    pub(crate) fn snapshot_since(
        &self,
        since: Token,
    ) -> Result<(Snapshot, Since, Vec<String>), Gone> {
        let (snapshot, found) = self.snapshot_and(|inner| {
            let since = inner.feed.check(since)?;
            Ok((since, inner.feed.removed_since(since.seq)))
        });
        let (since, mut removed) = found?;
        removed.sort_unstable();
        removed.dedup();
        removed.retain(|name| {
            let present = |n: &str| {
                snapshot
                    .entries
                    .binary_search_by(|e| e.connection.name.as_str().cmp(n))
                    .is_ok()
            };
            !present(name) && snapshot.group.owner_elsewhere(name).is_none()
        });
        Ok((snapshot, since, removed))
    }

    /// A snapshot, and what `also` reads under the same lock.
    fn snapshot_and<R>(&self, also: impl FnOnce(&Inner) -> R) -> (Snapshot, R) {
        let (mut snapshot, extra) = {
            let inner = self.lock();
            let snapshot = Snapshot {
                entries: inner.connections.values().cloned().collect(),
                reload: inner.reload.clone(),
                lateness: inner.lateness.clone(),
                group: inner.group.clone(),
                orgs: inner.orgs.values().cloned().collect(),
                changes: inner.feed.token(Utc::now()),
            };
            (snapshot, also(&inner))
        };
        // In name order, sorted after the lock is released.
        snapshot
            .entries
            .sort_unstable_by(|a, b| a.connection.name.cmp(&b.connection.name));
        (snapshot, extra)
    }
}
