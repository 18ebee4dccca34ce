//! The status page at `GET /`: HTML rendered by askama from `templates/status.html`, which
//! escapes every value by default (names Jira chose and labels users wrote are text, never
//! markup), with no external assets (it works offline and behind strict proxies), readable on
//! a phone and with a screen reader.
//!
//! The page is complete without its script: the filters are a plain GET form
//! (`?state=&team=&q=`), filtered here. The script (`templates/status.js`) refreshes the rows
//! in place from `/api/v1/connections` and can be paused. Each row carries `data-*` attributes
//! so that tests compare what a browser shows with the API. No secret is ever rendered (a
//! connection's secret is simply never read here).

mod timeline;

use askama::Template;
use chrono::{DateTime, Duration, Utc};

use crate::config::account;
use crate::expiry::Assessment;
use crate::probe::State;
use crate::state::{Board, Entry, Transition};

/// How often the script refreshes the page's data, in seconds, unless `?refresh=N` says.
pub(crate) const REFRESH_SECONDS: u32 = 15;

/// The days the history strip shows.
const HISTORY_DAYS: u32 = 30;

/// Worst first: what needs a person now, then what will soon, then what is fine.
fn severity(state: State, rotation_due: bool) -> u8 {
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

/// The filters of the page: `?state=invalid&team=platform&q=ci`, and `refresh=N` seconds.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query {
    state: String,
    team: String,
    q: String,
    refresh: Option<u32>,
}

impl Query {
    /// Reads a URL's query string; unknown keys and values that are not numbers are ignored.
    pub(crate) fn parse(query: &str) -> Query {
        let mut parsed = Query::default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "state" => parsed.state = value.into_owned(),
                "team" => parsed.team = value.into_owned(),
                "q" => parsed.q = value.into_owned(),
                "refresh" => parsed.refresh = value.parse().ok(),
                _ => {}
            }
        }
        parsed
    }
}

/// What the filter form shows as chosen.
struct Filter {
    state: String,
    team: String,
    text: String,
}

impl Filter {
    fn is_state(&self, state: &str) -> bool {
        self.state == state
    }

    fn is_team(&self, team: &str) -> bool {
        self.team == team
    }
}

struct Tile {
    state: &'static str,
    symbol: &'static str,
    count: usize,
}

/// One row, every value decided; askama escapes each as it writes it.
struct Row {
    name: String,
    labels: Vec<String>,
    team: String,
    search: String,
    product: &'static str,
    kind: &'static str,
    auth: &'static str,
    account: String,
    state: &'static str,
    symbol: &'static str,
    pending: String,
    reason: String,
    hint: String,
    notes: Vec<String>,
    expires: String,
    expires_iso: String,
    never_expires: bool,
    expiry_source: &'static str,
    rotation_due: bool,
    last: String,
    last_iso: String,
    next: String,
    next_iso: String,
    paused: &'static str,
    days: Vec<timeline::Day>,
    strip_label: String,
    transitions: Vec<Change>,
}

/// A state change in the details list, newest first.
struct Change {
    at: String,
    at_iso: String,
    from: &'static str,
    to: &'static str,
    reason: &'static str,
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
    teams: Vec<String>,
    filter: Filter,
    days: u32,
    rows: Vec<Row>,
    empty: &'static str,
    orgs: Vec<OrgRow>,
}

/// Renders the page from the board at `now`, filtered by `query`.
pub(crate) fn render(board: &Board, now: DateTime<Utc>, query: &Query) -> String {
    let snapshot = board.snapshot();
    let since = (now - Duration::days(i64::from(HISTORY_DAYS))).date_naive();
    let since = since.and_hms_opt(0, 0, 0).map_or(now, |t| t.and_utc());
    let changes = board.changes_since(since);
    let mut entries: Vec<(&Entry, Assessment)> = snapshot
        .entries
        .iter()
        .map(|entry| (&**entry, entry.assessment(now)))
        .collect();
    entries.sort_by(|(a, ea), (b, eb)| {
        severity(a.state(), ea.rotation_due == Some(true))
            .cmp(&severity(b.state(), eb.rotation_due == Some(true)))
            .then_with(|| a.connection.name.cmp(&b.connection.name))
    });

    let tiles = State::ALL
        .into_iter()
        .map(|state| Tile {
            state: state.as_str(),
            symbol: symbol(state),
            count: entries.iter().filter(|(e, _)| e.state() == state).count(),
        })
        .collect();
    let rotation_due = entries
        .iter()
        .filter(|(_, e)| e.rotation_due == Some(true))
        .count();
    let mut teams: Vec<String> = entries
        .iter()
        .filter_map(|(e, _)| e.connection.settings.labels.get("team").cloned())
        .collect();
    teams.sort();
    teams.dedup();

    let none = Vec::new();
    let text = query.q.trim().to_lowercase();
    let accounts = account::accounts(entries.iter().map(|(e, _)| &*e.connection));
    let rows: Vec<Row> = entries
        .iter()
        .map(|(entry, expiry)| {
            let changes = changes.get(&entry.connection.name).unwrap_or(&none);
            let shares = account::shares_login_with(&entry.connection, &accounts);
            row(entry, expiry, changes, shares, now)
        })
        .filter(|row| query.state.is_empty() || row.state == query.state)
        .filter(|row| query.team.is_empty() || row.team == query.team)
        .filter(|row| text.is_empty() || row.search.contains(&text))
        .collect();
    let empty = if snapshot.entries.is_empty() {
        "No connection is configured."
    } else {
        "No connection matches the filters."
    };
    let page = Page {
        now_iso: now.to_rfc3339(),
        now_text: now.format("%Y-%m-%d %H:%M:%S").to_string(),
        refresh_seconds: query.refresh.unwrap_or(REFRESH_SECONDS).clamp(1, 3600),
        tiles,
        rotation_due,
        states: State::ALL.into_iter().map(State::as_str).collect(),
        teams,
        filter: Filter {
            state: query.state.clone(),
            team: query.team.clone(),
            text: query.q.clone(),
        },
        days: HISTORY_DAYS,
        rows,
        empty,
        orgs: snapshot
            .orgs
            .iter()
            .filter(|o| o.exported)
            .map(|o| org_row(o, now))
            .collect(),
    };
    page.render()
        .unwrap_or_else(|error| format!("the status page cannot be rendered: {error}\n"))
}

fn row(
    entry: &Entry,
    expiry: &Assessment,
    changes: &[Transition],
    shares_login_with: Option<Vec<&str>>,
    now: DateTime<Utc>,
) -> Row {
    let connection = &entry.connection;
    let settings = &connection.settings;
    let state = entry.state();
    let last = entry.memory.last.as_ref();
    let reason = last
        .map_or("not probed yet", |o| o.reason.as_str())
        .to_owned();
    let account = last
        .and_then(|o| o.identity.as_ref())
        .and_then(|i| i.account(settings.kind).map(str::to_owned))
        .or_else(|| settings.login().map(str::to_owned))
        .unwrap_or_else(|| "-".to_owned());
    let mut notes = Vec::new();
    if expiry.never_expires == Some(true) {
        notes.push("policy: the token never expires; create tokens with an expiry".to_owned());
    }
    if let Some(note) = &expiry.note {
        notes.push(format!("expiry: {note}"));
    }
    if let (Some(login), Some(others)) = (connection.login_account(), &shares_login_with) {
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
    let pending = entry.memory.pending.map_or(String::new(), |p| {
        format!(
            "pending: {} since {}, to be confirmed",
            p.reason.as_str(),
            span(now - p.since)
        )
    });
    let next = match (
        entry.memory.schedule.paused,
        entry.memory.schedule.next_probe_at,
    ) {
        (Some(pause), _) => format!("stopped ({})", pause.as_str()),
        (None, Some(at)) => relative(at, now),
        (None, None) => "-".to_owned(),
    };
    let days = timeline::days(changes, state, now, HISTORY_DAYS);
    let labels: Vec<String> = settings
        .labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    let search = format!(
        "{} {} {} {} {} {}",
        connection.name,
        settings.product,
        account,
        reason,
        state.as_str(),
        labels.join(" ")
    )
    .to_lowercase();
    Row {
        name: connection.name.clone(),
        team: settings.labels.get("team").cloned().unwrap_or_default(),
        search,
        labels,
        product: settings.product.as_str(),
        kind: settings.kind.as_str(),
        auth: settings.auth.as_str(),
        account,
        state: state.as_str(),
        symbol: symbol(state),
        pending,
        reason,
        hint: entry.hint().unwrap_or_default().to_owned(),
        notes,
        expires: countdown(expiry, now),
        expires_iso: expiry.expires_at.map_or(String::new(), |t| t.to_rfc3339()),
        never_expires: expiry.never_expires == Some(true),
        expiry_source: expiry.source.map_or("", |s| s.as_str()),
        rotation_due: expiry.rotation_due == Some(true),
        last: last.map_or("never".to_owned(), |o| relative(o.finished_at, now)),
        last_iso: last.map_or(String::new(), |o| o.finished_at.to_rfc3339()),
        next,
        next_iso: entry
            .memory
            .schedule
            .next_probe_at
            .map_or(String::new(), |t| t.to_rfc3339()),
        paused: entry.memory.schedule.paused.map_or("", |p| p.as_str()),
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
