//! The board's Atlassian organizations: each one's last good token list and admin-key state,
//! and what the list says of each connection that opts in (kept as the connection's token
//! listing, so the store remembers it and every view of the expiry agrees).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Board;
use crate::config::Org;
use crate::expiry::{Listing, TokenList};
use crate::org::{list::ReadError, OrgMatch, OrgStatus, OrgToken};

impl Board {
    /// Sets the organizations of the running configuration; one that did not change keeps
    /// what was learned of it. `exported` says whether this replica exports an organization's
    /// series (its shard owns the name).
    pub(crate) fn set_orgs(&self, orgs: &[Org], exported: impl Fn(&str) -> bool) {
        let mut inner = self.lock();
        let mut kept = std::mem::take(&mut inner.orgs);
        for org in orgs {
            // The same organization at the same API keeps its last good list when a reload
            // changes its key, interval or unused_after; a new key has no state until it is
            // used.
            let status = match kept.remove(&org.name) {
                Some(old) if old.org.org_id == org.org_id && old.org.api_url == org.api_url => {
                    let mut status = (*old).clone();
                    if status.org.api_key != org.api_key {
                        status.key_state = crate::probe::State::Unknown;
                        status.last_error = None;
                    }
                    status.org = org.clone();
                    status.exported = exported(&org.name);
                    status
                }
                _ => OrgStatus::new(org.clone(), exported(&org.name)),
            };
            inner.orgs.insert(org.name.clone(), Arc::new(status));
        }
    }

    /// Records a read of an organization's list; returns the list to match against when
    /// there is a good one (the last good one stands after a failed read).
    pub(crate) fn org_read(
        &self,
        org: &Org,
        result: Result<Vec<OrgToken>, ReadError>,
        now: DateTime<Utc>,
    ) -> Option<Arc<Vec<OrgToken>>> {
        let mut inner = self.lock();
        // A reader of an older configuration (a reload replaced it) writes nothing.
        let status = inner.orgs.get_mut(&org.name).filter(|s| s.org == *org)?;
        let status = Arc::make_mut(status);
        status.read(result, now);
        status.tokens.as_ref().map(|(_, tokens)| tokens.clone())
    }

    /// Keeps what the organization's list says of connection `name`. Returns whether what
    /// is known of the credential changed in a way its last probe did not know (the list now
    /// says an admin blocked it): the connection is then probed again, so that the classifier
    /// decides with the fact. Nothing here changes a verdict.
    pub(crate) fn set_org_match(&self, name: &str, matched: OrgMatch, now: DateTime<Utc>) -> bool {
        let mut inner = self.lock();
        let Some(entry) = inner.connections.get_mut(name) else {
            return false;
        };
        let listing = Listing::Org(matched);
        if entry.listing() == Some(&listing) {
            return false;
        }
        let before = crate::expiry::facts(&entry.connection, entry.listing());
        let after = crate::expiry::facts(&entry.connection, Some(&listing));
        let unknown_to_the_last_probe = after.blocked_by_admin
            && !before.blocked_by_admin
            && entry
                .memory
                .last
                .as_ref()
                .is_some_and(|last| last.reason == crate::probe::Reason::Unauthorized);
        let next = inner.feed.next();
        let Some(entry) = inner.connections.get_mut(name) else {
            return false;
        };
        let entry = Arc::make_mut(entry);
        let expiry = entry.expiry_shown();
        entry.memory.tokens = Some(Arc::new(TokenList {
            fetched_at: now,
            listing,
        }));
        if entry.expiry_shown() != expiry {
            entry.changed = next;
            inner.feed.advance();
        }
        inner.mark(name);
        unknown_to_the_last_probe
    }

    /// The organizations, by name.
    pub(crate) fn orgs(&self) -> Vec<Arc<OrgStatus>> {
        self.lock().orgs.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(key: &str, org_id: &str) -> Org {
        let text = format!(
            "[[atlassian_org]]\nname = \"acme\"\norg_id = \"{org_id}\"\napi_key = \"{key}\"\n\n[[connection]]\nname = \"c\"\nurl = \"https://jira.example.com\"\ntoken = \"t\"\n"
        );
        crate::config::Config::from_sources(&[("t.toml".into(), text)])
            .unwrap_or_else(|e| panic!("{e}"))
            .orgs
            .remove(0)
    }

    #[test]
    fn a_reload_keeps_the_last_list_unless_the_organization_itself_changed() {
        let board = Board::new();
        let first = org("key-1", "o-1");
        board.set_orgs(std::slice::from_ref(&first), |_| true);
        let now = Utc::now();
        assert!(board.org_read(&first, Ok(Vec::new()), now).is_some());
        // A rotated key: the list stands, the key's state is unknown until it is used.
        let rotated = org("key-2", "o-1");
        board.set_orgs(std::slice::from_ref(&rotated), |_| true);
        let status = board.orgs().remove(0);
        assert!(status.tokens.is_some());
        assert_eq!(status.key_state, crate::probe::State::Unknown);
        // The old reader's late result is not written over the new configuration.
        assert!(board.org_read(&first, Ok(Vec::new()), now).is_none());
        // Another organization under the same name starts afresh.
        board.set_orgs(&[org("key-2", "o-2")], |_| true);
        assert!(board.orgs()[0].tokens.is_none());
    }
}
