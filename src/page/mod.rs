//! The status page at `GET /`: HTML rendered by askama from `templates/status.html`, which
//! escapes every value by default (names Jira chose and labels users wrote are text, never
//! markup), with no external assets (it works offline and behind strict proxies), readable on
//! a phone and with a screen reader.
//!
//! It shows a page of the list at a time, worst first ([`crate::listing`], the API's own
//! order and filters), one line per connection with its details on demand (`row.rs`), and
//! the totals per state of every connection that matches. It is complete without its
//! script: the filters are a plain GET form (`?state=&product=&label=&q=`) and the pages are links
//! (`?cursor=`), answered here. The script (`templates/status.js`) filters as you type
//! through the paged API, turns the pages without a reload, and refreshes through
//! `?changed_since`, fetching only what changed; it can be paused. Each row carries `data-*`
//! attributes so that tests compare what a browser shows with the API. No secret is ever
//! rendered (a connection's secret is simply never read here).

mod row;
mod timeline;

use askama::Template;
use chrono::{DateTime, Duration, Utc};

use crate::config::{account, Product};
use crate::expiry::Assessment;
use crate::listing::{self, BadQuery, Form, Request};
use crate::probe::State;
use crate::state::Board;

/// How often the script refreshes the page's data, in seconds, unless `?refresh=N` says.
pub(crate) const REFRESH_SECONDS: u32 = 15;

/// The rows of a page, unless `?limit=N` says: a few screens on a laptop, a few hundred
/// kilobytes of HTML whatever the fleet's size.
pub(crate) const PAGE_ROWS: usize = 50;

/// The days the history strip shows.
const HISTORY_DAYS: u32 = 30;

/// A badge's symbol, so that the state does not rely on colour alone (the word follows it).
/// Plain symbols that common fonts carry: an emoji font cannot be assumed on a server.
fn symbol(state: State) -> &'static str {
    match state {
        State::Valid => "✔",
        State::Invalid => "✖",
        State::Expired => "◷",
        State::Locked => "⊠",
        State::Forbidden => "⊘",
        State::Unknown => "?",
    }
}

/// "3 days", "5 h", "12 min", "40 s".
fn span(delta: Duration) -> String {
    let seconds = delta.num_seconds().abs();
    match seconds {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 7_200 => format!("{} h", s / 3_600),
        s if s >= 120 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// "in 12 days", "2 days ago", or "now".
pub(crate) fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let delta = at - now;
    if delta.num_seconds() == 0 {
        "now".to_owned()
    } else if delta.num_seconds() > 0 {
        format!("in {}", span(delta))
    } else {
        format!("{} ago", span(delta))
    }
}

/// The expiry countdown: "in 12 days", "expired 2 days ago", "never" or "unknown".
pub(crate) fn countdown(expiry: &Assessment, now: DateTime<Utc>) -> String {
    match (expiry.expires_at, expiry.never_expires) {
        (Some(at), _) if at > now => format!("in {}", span(at - now)),
        (Some(at), _) => format!("expired {} ago", span(now - at)),
        (None, Some(true)) => "never".to_owned(),
        _ => "unknown".to_owned(),
    }
}

/// What the filter form shows as chosen.
struct Chosen {
    state: String,
    product: String,
    team: String,
    text: String,
    /// Labels other than `team`, kept as hidden fields of the form.
    other_labels: Vec<String>,
}

impl Chosen {
    fn is_state(&self, state: &str) -> bool {
        self.state == state
    }

    fn is_product(&self, product: &str) -> bool {
        self.product == product
    }

    fn is_team(&self, team: &str) -> bool {
        self.team == team
    }
}

/// The links between pages and what the page shows.
struct Pager {
    /// Rows `from` to `to` of the matching connections (1-based; 0 when there are none).
    from: usize,
    to: usize,
    /// The first page, when this is not it.
    first: Option<String>,
    /// The next page, when there is one.
    next: Option<String>,
    /// The next page's cursor (for the script).
    next_cursor: String,
    /// This page's cursor (for the script).
    cursor: String,
    /// The page size.
    limit: usize,
    /// The page size when the address names none.
    page_rows: usize,
}

struct Tile {
    state: &'static str,
    symbol: &'static str,
    count: usize,
}

/// One organization of the page's own section.
struct OrgRow {
    name: String,
    key_state: &'static str,
    key_symbol: &'static str,
    key_expires: String,
    listed: String,
    error: String,
    /// (column label, field name, count or "-").
    counts: Vec<(&'static str, &'static str, String)>,
}

fn org_row(status: &crate::org::OrgStatus, now: DateTime<Utc>) -> OrgRow {
    let inventory = status.inventory(now);
    let count = |pick: fn(&crate::org::Inventory) -> usize| {
        inventory
            .as_ref()
            .map_or("-".to_owned(), |i| pick(i).to_string())
    };
    OrgRow {
        name: status.org.name.clone(),
        key_state: status.key_state.as_str(),
        key_symbol: symbol(status.key_state),
        key_expires: status
            .org
            .api_key_expires_at
            .map_or(String::new(), |at| relative(at, now)),
        listed: status
            .tokens
            .as_ref()
            .map_or("not yet".to_owned(), |(at, _)| relative(*at, now)),
        error: status.last_error.clone().unwrap_or_default(),
        counts: vec![
            ("Allowed", "allowed", count(|i| i.allowed)),
            ("Blocked", "blocked", count(|i| i.blocked)),
            ("Expired", "expired", count(|i| i.expired)),
            (
                "Expiring in 7 days",
                "expiring_7d",
                count(|i| i.expiring_7d),
            ),
            (
                "Expiring in 30 days",
                "expiring_30d",
                count(|i| i.expiring_30d),
            ),
            ("Unused", "unused", count(|i| i.unused)),
        ],
    }
}

#[derive(Template)]
#[template(path = "status.html")]
struct Page {
    now_iso: String,
    now_text: String,
    refresh_seconds: u32,
    tiles: Vec<Tile>,
    rotation_due: usize,
    states: Vec<&'static str>,
    products: Vec<&'static str>,
    teams: Vec<String>,
    filter: Chosen,
    days: u32,
    rows: Vec<row::Row>,
    pager: Pager,
    changes: String,
    empty: &'static str,
    orgs: Vec<OrgRow>,
}

/// The page's link to the list `filter` selects, starting after `cursor` (from the start
/// without one), with `limit` rows unless it is the default.
fn link(filter: &listing::Filter, cursor: Option<&listing::Cursor>, limit: usize) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in filter.pairs() {
        query.append_pair(key, &value);
    }
    if limit != PAGE_ROWS {
        query.append_pair("limit", &limit.to_string());
    }
    if let Some(cursor) = cursor {
        query.append_pair("cursor", &cursor.to_string());
    }
    format!("/?{}", query.finish())
}

/// The teams the filter offers: every value of a `team` label.
fn teams(snapshot: &crate::state::Snapshot) -> Vec<String> {
    let mut teams: Vec<String> = snapshot
        .entries
        .iter()
        .filter_map(|e| e.connection.settings.labels.get("team").cloned())
        .collect();
    teams.sort();
    teams.dedup();
    teams
}

/// Renders the page of the board at `now` that the query string `query` asks for.
pub(crate) fn render(board: &Board, now: DateTime<Utc>, query: &str) -> Result<String, BadQuery> {
    let request = Request::parse(query, true)?;
    let (limit, cursor) = match request.form {
        Form::All => (PAGE_ROWS, None),
        Form::Page { limit, cursor } => (limit.unwrap_or(PAGE_ROWS), cursor),
        Form::Changes { .. } => {
            return Err(BadQuery::new(
                "changed_since is the API's: /api/v1/connections?changed_since=TOKEN",
            ))
        }
    };
    let filter = &request.filter;
    let snapshot = board.snapshot();
    let selection = listing::select(&snapshot, filter, None, now);
    let (items, next) = selection.page(cursor.as_ref(), limit);
    let offset = selection.offset(cursor.as_ref());
    let since = (now - Duration::days(i64::from(HISTORY_DAYS))).date_naive();
    let since = since.and_hms_opt(0, 0, 0).map_or(now, |t| t.and_utc());
    let changes = board.changes_since(since);
    let accounts = account::accounts(
        snapshot
            .entries
            .iter()
            .map(|e| &*e.connection)
            .chain(snapshot.group.foreign.iter().map(|f| &*f.connection)),
    );
    let none = Vec::new();
    let rows = items
        .iter()
        .map(|item| {
            let connection = item.connection();
            let changes = changes.get(&connection.name).unwrap_or(&none);
            let shares = account::shares_login_with(connection, &accounts);
            row::row(item, changes, shares.as_deref(), now)
        })
        .collect();
    let tiles = State::ALL
        .into_iter()
        .map(|state| Tile {
            state: state.as_str(),
            symbol: symbol(state),
            count: selection.totals.get(state.as_str()).copied().unwrap_or(0),
        })
        .collect();
    let empty = if snapshot.entries.is_empty() && snapshot.group.foreign.is_empty() {
        "No connection is configured."
    } else {
        "No connection matches the filters."
    };
    let team = filter.labels.iter().find(|(key, _)| key == "team");
    let page = Page {
        now_iso: now.to_rfc3339(),
        now_text: now.format("%Y-%m-%d %H:%M:%S").to_string(),
        refresh_seconds: request.refresh.unwrap_or(REFRESH_SECONDS),
        tiles,
        rotation_due: selection.rotation_due,
        states: State::ALL.into_iter().map(State::as_str).collect(),
        products: Product::ALL.into_iter().map(Product::as_str).collect(),
        teams: teams(&snapshot),
        filter: Chosen {
            state: filter.state.map_or("", State::as_str).to_owned(),
            product: filter.product.map_or("", Product::as_str).to_owned(),
            team: team.map_or(String::new(), |(_, value)| value.clone()),
            text: filter.text.clone(),
            other_labels: filter
                .labels
                .iter()
                .filter(|(key, _)| key != "team")
                .map(|(key, value)| format!("{key}:{value}"))
                .collect(),
        },
        days: HISTORY_DAYS,
        pager: Pager {
            from: if items.is_empty() { 0 } else { offset + 1 },
            to: offset + items.len(),
            first: cursor.as_ref().map(|_| link(filter, None, limit)),
            next: next.as_ref().map(|next| link(filter, Some(next), limit)),
            next_cursor: next.as_ref().map_or(String::new(), ToString::to_string),
            cursor: cursor.as_ref().map_or(String::new(), ToString::to_string),
            limit,
            page_rows: PAGE_ROWS,
        },
        rows,
        changes: snapshot.changes.to_string(),
        empty,
        orgs: snapshot
            .orgs
            .iter()
            .filter(|o| o.exported)
            .map(|o| org_row(o, now))
            .collect(),
    };
    Ok(page
        .render()
        .unwrap_or_else(|error| format!("the status page cannot be rendered: {error}\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdowns_read_like_a_person_would_say_them() {
        let now = Utc::now();
        let in_days = |d: i64| Assessment {
            expires_at: Some(now + Duration::days(d) + Duration::minutes(1)),
            ..Assessment::default()
        };
        assert_eq!(countdown(&in_days(12), now), "in 12 days");
        assert_eq!(countdown(&in_days(-2), now), "expired 47 h ago");
        assert_eq!(countdown(&in_days(-4), now), "expired 3 days ago");
        assert_eq!(
            countdown(
                &Assessment {
                    never_expires: Some(true),
                    ..Assessment::default()
                },
                now
            ),
            "never"
        );
        assert_eq!(countdown(&Assessment::default(), now), "unknown");
        assert_eq!(relative(now - Duration::seconds(30), now), "30 s ago");
        assert_eq!(relative(now + Duration::minutes(5), now), "in 5 min");
        assert_eq!(relative(now - Duration::milliseconds(300), now), "now");
    }
}
