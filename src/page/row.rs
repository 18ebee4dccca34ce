//! One connection's row of the status page, every value decided before askama escapes it as
//! it writes it: a single line (name, kind, account, state, reason, expiry), and the details
//! a person opens on demand (the hint, the notes, the probe times, the labels, the 30-day
//! strip and the state changes). `templates/status.js` builds the same row from the API's
//! JSON; `tests/page.rs` and `tests/demo.rs` compare the two.

use chrono::{DateTime, Utc};

use super::{countdown, relative, span, symbol, timeline, HISTORY_DAYS};
use crate::listing::{Item, Subject};
use crate::state::Transition;

/// One row.
pub(super) struct Row {
    pub(super) name: String,
    pub(super) labels: Vec<String>,
    pub(super) product: &'static str,
    pub(super) kind: &'static str,
    pub(super) auth: &'static str,
    pub(super) account: String,
    pub(super) state: &'static str,
    pub(super) symbol: &'static str,
    pub(super) rank: u8,
    pub(super) pending: String,
    pub(super) reason: String,
    pub(super) hint: String,
    pub(super) notes: Vec<String>,
    pub(super) expires: String,
    pub(super) expires_iso: String,
    pub(super) never_expires: bool,
    pub(super) expiry_source: &'static str,
    pub(super) rotation_due: bool,
    pub(super) last: String,
    pub(super) last_iso: String,
    pub(super) next: String,
    pub(super) next_iso: String,
    pub(super) paused: &'static str,
    pub(super) days: Vec<timeline::Day>,
    pub(super) strip_label: String,
    pub(super) transitions: Vec<Change>,
}

/// A state change in the details list, newest first.
pub(super) struct Change {
    pub(super) at: String,
    pub(super) at_iso: String,
    pub(super) from: &'static str,
    pub(super) to: &'static str,
    pub(super) reason: &'static str,
}

/// The notes under the hint: a token that never expires, why the expiry is unknown, the login
/// account and who shares it, and the replica that owns a connection this one does not probe.
fn notes(item: &Item<'_>, shares_login_with: Option<&[&str]>) -> Vec<String> {
    let connection = item.connection();
    let mut notes = Vec::new();
    if item.expiry.never_expires == Some(true) {
        notes.push("policy: the token never expires; create tokens with an expiry".to_owned());
    }
    if let Some(note) = &item.expiry.note {
        notes.push(format!("expiry: {note}"));
    }
    if let (Some(login), Some(others)) = (connection.login_account(), shares_login_with) {
        // The login budget (and its pause) is the account's: say with whom it is shared.
        if others.is_empty() {
            notes.push(format!("login account: {login}"));
        } else {
            notes.push(format!(
                "login account: {login}, shared with {}",
                others.join(", ")
            ));
        }
    }
    if let Subject::Foreign(foreign) = item.subject {
        notes.push(format!(
            "owned by replica {}: it probes this login account, this replica does not",
            foreign.owner
        ));
    }
    notes
}

/// The row of `item`, whose state changes are `changes` (oldest first).
pub(super) fn row(
    item: &Item<'_>,
    changes: &[Transition],
    shares_login_with: Option<&[&str]>,
    now: DateTime<Utc>,
) -> Row {
    let connection = item.connection();
    let settings = &connection.settings;
    let entry = match item.subject {
        Subject::Own(entry) => Some(entry),
        Subject::Foreign(_) => None,
    };
    let last = entry.and_then(|e| e.memory.last.as_ref());
    let schedule = entry.map(|e| e.memory.schedule).unwrap_or_default();
    let pending = entry
        .and_then(|e| e.memory.pending)
        .map_or(String::new(), |p| {
            format!(
                "pending: {} since {}, to be confirmed",
                p.reason.as_str(),
                span(now - p.since)
            )
        });
    let next = match (schedule.paused, schedule.next_probe_at) {
        (Some(pause), _) => format!("stopped ({})", pause.as_str()),
        (None, Some(at)) => relative(at, now),
        (None, None) => "-".to_owned(),
    };
    let days = timeline::days(changes, item.state, now, HISTORY_DAYS);
    let expiry = &item.expiry;
    Row {
        name: connection.name.clone(),
        labels: settings
            .labels
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect(),
        product: settings.product.as_str(),
        kind: settings.kind.as_str(),
        auth: settings.auth.as_str(),
        account: item.account().unwrap_or("-").to_owned(),
        state: item.state.as_str(),
        symbol: symbol(item.state),
        rank: item.rank,
        pending,
        reason: item.reason().to_owned(),
        hint: entry.and_then(|e| e.hint()).unwrap_or_default().to_owned(),
        notes: notes(item, shares_login_with),
        expires: countdown(expiry, now),
        expires_iso: expiry.expires_at.map_or(String::new(), |t| t.to_rfc3339()),
        never_expires: expiry.never_expires == Some(true),
        expiry_source: expiry.source.map_or("", |s| s.as_str()),
        rotation_due: expiry.rotation_due == Some(true),
        last: last.map_or("never".to_owned(), |o| relative(o.finished_at, now)),
        last_iso: last.map_or(String::new(), |o| o.finished_at.to_rfc3339()),
        next,
        next_iso: schedule
            .next_probe_at
            .map_or(String::new(), |t| t.to_rfc3339()),
        paused: schedule.paused.map_or("", |p| p.as_str()),
        strip_label: timeline::label(&days),
        days,
        transitions: changes
            .iter()
            .rev()
            .map(|change| Change {
                at: change.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                at_iso: change.at.to_rfc3339(),
                from: change.from.as_str(),
                to: change.to.as_str(),
                reason: change.reason.as_str(),
            })
            .collect(),
    }
}
