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
            let status = match kept.remove(&org.name) {
                Some(status) if status.org == *org => {
                    let mut status = (*status).clone();
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

    /// Keeps what the organization's list says of connection `name`.
    pub(crate) fn set_org_match(&self, name: &str, matched: OrgMatch, now: DateTime<Utc>) {
        let mut inner = self.lock();
        let Some(entry) = inner.connections.get_mut(name) else {
            return;
        };
        // A 401 that came before the list is explained by it: the standing verdict becomes
        // `blocked_by_admin` when the list says an admin blocked the token.
        let explained = entry.last.as_ref().and_then(|last| {
            let mut outcome = last.clone();
            crate::org::explain(&mut outcome, Some(&matched));
            (outcome.reason != last.reason).then_some(outcome)
        });
        let listing = Listing::Org(matched);
        if entry.listing() == Some(&listing) && explained.is_none() {
            return;
        }
        let entry = Arc::make_mut(entry);
        entry.tokens = Some(Arc::new(TokenList {
            fetched_at: now,
            listing,
        }));
        if let Some(outcome) = explained {
            if let Some(standing) = entry
                .verdict
                .as_mut()
                .filter(|s| s.reason == crate::probe::Reason::Unauthorized)
            {
                standing.state = outcome.state;
                standing.reason = outcome.reason;
            }
            entry.last = Some(outcome);
        }
        inner.mark(name);
    }

    /// What the organization's list last said of connection `name`.
    pub(crate) fn org_match(&self, name: &str) -> Option<OrgMatch> {
        let inner = self.lock();
        match inner.connections.get(name)?.listing()? {
            Listing::Org(matched) => Some(matched.clone()),
            _ => None,
        }
    }

    /// The organizations, by name.
    pub(crate) fn orgs(&self) -> Vec<Arc<OrgStatus>> {
        self.lock().orgs.values().cloned().collect()
    }
}
