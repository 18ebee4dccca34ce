//! The connections as a list, as the paged API and the status page show them: filtered
//! (`?state=`, `?product=`, `?label=k:v`, `?q=`), ordered worst first and then by name, cut into pages
//! at a cursor, and counted per state. The API (`api.rs`) and the page (`page/`) both call
//! [`select`] on a [`Snapshot`], so that a page of the HTML is a page of the API.
//!
//! The list holds this replica's connections and those another replica of its HA group owns
//! (listed as `unknown`, as the plain array lists them); the totals count only the former,
//! as `/readyz` and `credwatch_connections` do. The query string is read by [`query`].

pub(crate) mod query;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::config::Connection;
use crate::expiry::Assessment;
use crate::probe::State;
use crate::state::{Entry, Foreign, Since, Snapshot};

pub(crate) use query::{BadQuery, Cursor, Filter, Form, Request};

/// Worst first: what needs a person now, then what will soon, then what is fine.
pub(crate) fn severity(state: State, rotation_due: bool) -> u8 {
    match state {
        State::Locked => 0,
        State::Expired => 1,
        State::Invalid => 2,
        State::Forbidden => 3,
        State::Unknown => 4,
        State::Valid if rotation_due => 5,
        State::Valid => 6,
    }
}

/// Whose connection an item is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    /// This replica probes it.
    Own(&'a Entry),
    /// Another replica of the HA group owns its login account.
    Foreign(&'a Foreign),
}

/// One connection of the list, with what ordering and filtering it needs.
#[derive(Debug)]
pub(crate) struct Item<'a> {
    /// Whose it is.
    pub subject: Subject<'a>,
    /// What is known of its expiry now.
    pub expiry: Assessment,
    /// Its state (`unknown` for another replica's).
    pub state: State,
    /// Its place in the order ([`severity`]).
    pub rank: u8,
    /// The change feed's counter at its last visible change.
    pub changed: u64,
}

impl<'a> Item<'a> {
    fn own(entry: &'a Entry, now: DateTime<Utc>) -> Item<'a> {
        let expiry = entry.assessment(now);
        let state = entry.state();
        Item {
            rank: severity(state, expiry.rotation_due == Some(true)),
            subject: Subject::Own(entry),
            expiry,
            state,
            changed: entry.changed,
        }
    }

    fn foreign(foreign: &'a Foreign, changed: u64, now: DateTime<Utc>) -> Item<'a> {
        Item {
            subject: Subject::Foreign(foreign),
            expiry: crate::expiry::assess(&foreign.connection, None, now),
            state: State::Unknown,
            rank: severity(State::Unknown, false),
            changed,
        }
    }

    /// Whether its rotation fell due after `since` and by `now`: a change to the list (its
    /// place and its mark), though nothing but time moved.
    fn rotation_fell_due(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let settings = &self.connection().settings;
        let window = chrono::Duration::from_std(settings.rotate_before).ok();
        let by_window = self.expiry.expires_at.zip(window).map(|(e, w)| e - w);
        let by_age = settings
            .max_token_age
            .and_then(|age| chrono::Duration::from_std(age).ok())
            .zip(self.expiry.created_at)
            .map(|(age, created)| created + age);
        let due_at = match (by_window, by_age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        due_at.is_some_and(|due| since < due && due <= now)
    }

    /// The connection.
    pub(crate) fn connection(&self) -> &'a Connection {
        match self.subject {
            Subject::Own(entry) => &entry.connection,
            Subject::Foreign(foreign) => &foreign.connection,
        }
    }

    /// Where it stands in the order.
    pub(crate) fn key(&self) -> (u8, &'a str) {
        (self.rank, &self.connection().name)
    }

    /// The account to show and search: what Jira reported, else the configured login.
    pub(crate) fn account(&self) -> Option<&'a str> {
        let connection = self.connection();
        let reported = match self.subject {
            Subject::Own(entry) => entry
                .memory
                .last
                .as_ref()
                .and_then(|o| o.identity.as_ref())
                .and_then(|i| i.account(connection.settings.kind)),
            Subject::Foreign(_) => None,
        };
        reported.or_else(|| connection.settings.login())
    }

    /// The last probe's reason, as the page writes it.
    pub(crate) fn reason(&self) -> &'static str {
        match self.subject {
            Subject::Own(entry) => entry
                .memory
                .last
                .as_ref()
                .map_or("not probed yet", |o| o.reason.as_str()),
            Subject::Foreign(_) => "not probed yet",
        }
    }
}

/// The list for one request: the connections that match every filter, worst first, and the
/// totals.
#[derive(Debug)]
pub(crate) struct Selection<'a> {
    /// The matching connections, in order.
    pub items: Vec<Item<'a>>,
    /// This replica's connections that match every filter but `state`, per state (every state
    /// present, zeros included).
    pub totals: BTreeMap<&'static str, usize>,
    /// Of those, how many are due for rotation.
    pub rotation_due: usize,
    /// Those that changed after the client's token but match no more: they left its view.
    pub left: Vec<&'a str>,
}

/// The connections of `snapshot` that `filter` selects, at `now`; with `since` (where a
/// client's token stands in the change feed), only those that changed after it (or whose
/// rotation fell due since), and in `left` the names of those that changed and no longer
/// match.
pub(crate) fn select<'a>(
    snapshot: &'a Snapshot,
    filter: &Filter,
    since: Option<Since>,
    now: DateTime<Utc>,
) -> Selection<'a> {
    let group = &snapshot.group;
    let all = snapshot
        .entries
        .iter()
        .map(|entry| Item::own(entry, now))
        .chain(
            group
                .foreign
                .iter()
                .map(|foreign| Item::foreign(foreign, group.changed, now)),
        );
    let mut totals: BTreeMap<&'static str, usize> =
        State::ALL.into_iter().map(|s| (s.as_str(), 0)).collect();
    let mut rotation_due = 0;
    let mut items = Vec::new();
    let mut left = Vec::new();
    for item in all {
        let changed = since
            .is_none_or(|since| item.changed > since.seq || item.rotation_fell_due(since.at, now));
        if !filter.matches_except_state(&item) {
            if changed && since.is_some() {
                left.push(item.connection().name.as_str());
            }
            continue;
        }
        if let Subject::Own(_) = item.subject {
            *totals.entry(item.state.as_str()).or_default() += 1;
            rotation_due += usize::from(item.expiry.rotation_due == Some(true));
        }
        if filter.state.is_some_and(|state| state != item.state) {
            if changed && since.is_some() {
                left.push(item.connection().name.as_str());
            }
            continue;
        }
        if changed {
            items.push(item);
        }
    }
    items.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
    Selection {
        items,
        totals,
        rotation_due,
        left,
    }
}

/// The connection named `name` in `snapshot`, this replica's or another's.
pub(crate) fn named<'a>(
    snapshot: &'a Snapshot,
    name: &str,
    now: DateTime<Utc>,
) -> Option<Item<'a>> {
    if let Ok(at) = snapshot
        .entries
        .binary_search_by(|e| e.connection.name.as_str().cmp(name))
    {
        return Some(Item::own(&snapshot.entries[at], now));
    }
    let group = &snapshot.group;
    group
        .foreign
        .iter()
        .find(|f| f.connection.name == name)
        .map(|foreign| Item::foreign(foreign, group.changed, now))
}

impl<'a> Selection<'a> {
    /// The page of at most `limit` items after `cursor` (from the start without one), and the
    /// cursor of the page after it, if any.
    pub(crate) fn page(
        &self,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> (&[Item<'a>], Option<Cursor>) {
        let start = self.offset(cursor);
        let end = start.saturating_add(limit).min(self.items.len());
        let page = &self.items[start..end];
        let next = (end < self.items.len())
            .then(|| page.last().map(|item| Cursor::after(item.key())))
            .flatten();
        (page, next)
    }

    /// How many items come before the page that starts after `cursor`.
    pub(crate) fn offset(&self, cursor: Option<&Cursor>) -> usize {
        cursor.map_or(0, |cursor| {
            self.items
                .partition_point(|item| item.key() <= (cursor.rank, cursor.name.as_str()))
        })
    }
}

#[cfg(test)]
mod tests;
