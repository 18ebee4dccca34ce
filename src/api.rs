//! `GET /api/v1/connections` in its three forms, all from one snapshot of the board:
//!
//! - no parameter: every connection, the plain JSON array that clients have always read;
//! - `?limit=N` (`?cursor=C` for the next page), or any filter (`?state=`, `?label=k:v`,
//!   `?q=`): `{"connections", "next", "totals", "rotation_due", "changes"}`, worst first then
//!   by name ([`crate::listing`]);
//! - `?changed_since=TOKEN`: `{"connections", "removed", "totals", "rotation_due",
//!   "changes"}`, only the connections whose state, reason, pending confirmation, expiry or
//!   pause changed since the token (`changes` of an earlier answer); 410 when this process
//!   did not issue it.
//!
//! `GET /api/v1/connections/{name}` answers one connection's object (the page's details
//! fetch it when opened). A connection's object is `check --output json`'s ([`crate::view`]) plus the daemon's
//! schedule; no secret is ever read here.

use std::collections::{BTreeMap, HashMap};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::account;
use crate::listing::query::DEFAULT_LIMIT;
use crate::listing::{self, Form, Item, Request, Subject};
use crate::state::{Board, Snapshot};
use crate::view::{self, View};

/// The API's view of a connection: `check`'s JSON plus the daemon's schedule.
#[derive(Serialize)]
pub(crate) struct ApiConnection<'a> {
    #[serde(flatten)]
    view: View<'a>,
    probes_total: u64,
    last_probe_at: Option<String>,
    next_probe_at: Option<String>,
    backoff_seconds: Option<f64>,
    paused: Option<&'static str>,
    /// With `--replica`: the replica that owns the connection's login account alone (a
    /// Basic connection); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    owned_by_replica: Option<u32>,
}

/// The login accounts of a snapshot's connections (own and foreign), for `shares_login_with`.
fn accounts(snapshot: &Snapshot) -> HashMap<&str, Vec<&str>> {
    account::accounts(
        snapshot
            .entries
            .iter()
            .map(|e| &*e.connection)
            .chain(snapshot.group.foreign.iter().map(|f| &*f.connection)),
    )
}

/// The API's view of one listed connection.
pub(crate) fn api_connection<'a>(
    item: &'a Item<'a>,
    accounts: &HashMap<&str, Vec<&'a str>>,
    snapshot: &Snapshot,
) -> ApiConnection<'a> {
    let connection = item.connection();
    let shares = account::shares_login_with(connection, accounts);
    match item.subject {
        Subject::Own(entry) => ApiConnection {
            view: view::view(
                connection,
                shares,
                item.state,
                entry.memory.last.as_ref(),
                entry.hint(),
                &item.expiry,
                entry.memory.pending,
            ),
            probes_total: entry.probes,
            last_probe_at: entry
                .memory
                .last
                .as_ref()
                .map(|o| o.finished_at.to_rfc3339()),
            next_probe_at: entry.memory.schedule.next_probe_at.map(|t| t.to_rfc3339()),
            backoff_seconds: entry.memory.schedule.backoff.map(|b| b.as_secs_f64()),
            paused: entry.memory.schedule.paused.map(|p| p.as_str()),
            owned_by_replica: snapshot.group.sole_owner(connection),
        },
        // Another replica owns it: `unknown`, no reason, and its owner.
        Subject::Foreign(foreign) => ApiConnection {
            view: view::view(
                connection,
                shares,
                item.state,
                None,
                None,
                &item.expiry,
                None,
            ),
            probes_total: 0,
            last_probe_at: None,
            next_probe_at: None,
            backoff_seconds: None,
            paused: None,
            owned_by_replica: Some(foreign.owner),
        },
    }
}

/// A page of the list.
#[derive(Serialize)]
struct Page<'a> {
    connections: Vec<ApiConnection<'a>>,
    next: Option<String>,
    totals: &'a BTreeMap<&'static str, usize>,
    rotation_due: usize,
    changes: String,
}

/// What changed since a token.
#[derive(Serialize)]
struct Changed<'a> {
    connections: Vec<ApiConnection<'a>>,
    removed: Vec<&'a str>,
    totals: &'a BTreeMap<&'static str, usize>,
    rotation_due: usize,
    changes: String,
}

/// The answer to `GET /api/v1/connections?{query}` at `now`.
pub(crate) fn connections(board: &Board, query: &str, now: DateTime<Utc>) -> Response {
    let request = match Request::parse(query, false) {
        Ok(request) => request,
        Err(error) => return text(StatusCode::BAD_REQUEST, format!("{error}\n")),
    };
    match request.form {
        Form::All => {
            let snapshot = board.snapshot();
            let selection = listing::select(&snapshot, &request.filter, None, now);
            let accounts = accounts(&snapshot);
            // The plain array keeps its order of old: by name, another replica's last.
            let views: Vec<ApiConnection<'_>> = ordered_by_name(&selection.items)
                .into_iter()
                .map(|item| api_connection(item, &accounts, &snapshot))
                .collect();
            json(&views)
        }
        Form::Page { limit, cursor } => {
            let snapshot = board.snapshot();
            let selection = listing::select(&snapshot, &request.filter, None, now);
            let accounts = accounts(&snapshot);
            let (items, next) = selection.page(cursor.as_ref(), limit.unwrap_or(DEFAULT_LIMIT));
            json(&Page {
                connections: items
                    .iter()
                    .map(|item| api_connection(item, &accounts, &snapshot))
                    .collect(),
                next: next.map(|cursor| cursor.to_string()),
                totals: &selection.totals,
                rotation_due: selection.rotation_due,
                changes: snapshot.changes.to_string(),
            })
        }
        Form::Changes { since } => {
            let Ok((snapshot, since, removed)) = board.snapshot_since(since) else {
                return text(StatusCode::GONE, format!("{}\n", crate::state::Gone));
            };
            let selection = listing::select(&snapshot, &request.filter, Some(since), now);
            let accounts = accounts(&snapshot);
            let mut gone: Vec<&str> = removed.iter().map(String::as_str).collect();
            gone.extend(selection.left.iter().copied());
            json(&Changed {
                connections: selection
                    .items
                    .iter()
                    .map(|item| api_connection(item, &accounts, &snapshot))
                    .collect(),
                removed: gone,
                totals: &selection.totals,
                rotation_due: selection.rotation_due,
                changes: snapshot.changes.to_string(),
            })
        }
    }
}

/// The answer to `GET /api/v1/connections/{name}`: that connection's object, or 404.
pub(crate) fn connection(board: &Board, name: &str, now: DateTime<Utc>) -> Response {
    let snapshot = board.snapshot();
    match listing::named(&snapshot, name, now) {
        Some(item) => {
            let accounts = accounts(&snapshot);
            json(&api_connection(&item, &accounts, &snapshot))
        }
        None => text(
            StatusCode::NOT_FOUND,
            format!("no connection named {name:?}\n"),
        ),
    }
}

/// Own connections by name, then another replica's by name, as the array always listed them.
fn ordered_by_name<'a, 'b>(items: &'b [Item<'a>]) -> Vec<&'b Item<'a>> {
    let mut ordered: Vec<&Item<'_>> = items.iter().collect();
    ordered.sort_by_key(|item| {
        (
            matches!(item.subject, Subject::Foreign(_)),
            &item.connection().name,
        )
    });
    ordered
}

fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

fn text(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}
