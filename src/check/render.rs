//! How `check`'s reports are shown: an aligned table with what to do below it (and, for the
//! connections named with `--connection`, each account's tokens), or the JSON that the daemon's
//! API shares field for field ([`crate::view`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::Utc;
use serde::Serialize;

use super::Report;
use crate::expiry::Assessment;
use crate::probe::State;
use crate::state::Pause;
use crate::view::{self, View};

/// The JSON form of a report: the shared view plus the number of attempts.
#[derive(Debug, Serialize)]
pub(crate) struct JsonReport<'a> {
    #[serde(flatten)]
    view: View<'a>,
    attempts: u32,
    paused: Option<&'static str>,
    /// With `--replica`: the replica that owns the connection's login account alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    owned_by_replica: Option<u32>,
    /// Beside a sharded daemon: the shard that owns the connection's login account.
    #[serde(skip_serializing_if = "Option::is_none")]
    owned_by_shard: Option<u32>,
    /// Until when the stored gate of its site kept `check` from sending (RFC 3339), or null.
    gated_until: Option<String>,
}

impl Report {
    /// The JSON view of this report; `accounts` groups the reports' connections by login
    /// account ([`crate::config::account::accounts`]).
    pub(crate) fn json<'a>(&'a self, accounts: &HashMap<&str, Vec<&'a str>>) -> JsonReport<'a> {
        let mut view = view::view(
            &self.connection,
            crate::config::account::shares_login_with(&self.connection, accounts),
            self.outcome.state,
            Some(&self.outcome),
            None,
            &self.expiry,
            self.pending,
        );
        if self.owned_by_replica.is_some() || self.owned_by_shard.is_some() {
            // Nothing was sent: no reason, no time; the detail names the owner.
            view.reason = None;
            view.checked_at = None;
            view.latency_ms = None;
        }
        JsonReport {
            view,
            attempts: self.attempts,
            paused: self.paused.map(Pause::as_str),
            owned_by_replica: self.owned_by_replica,
            owned_by_shard: self.owned_by_shard,
            gated_until: self.gated_until.map(|t| t.to_rfc3339()),
        }
    }
}

/// Renders reports as a JSON array.
pub fn render_json(reports: &[Report]) -> String {
    let accounts = crate::config::account::accounts(reports.iter().map(|r| &r.connection));
    let views: Vec<JsonReport<'_>> = reports.iter().map(|r| r.json(&accounts)).collect();
    serde_json::to_string_pretty(&views).unwrap_or_else(|e| format!("[] # cannot render: {e}"))
}

/// Renders reports as an aligned table, what to do below it, and a one-line summary; with
/// `show_tokens` (connections named with `--connection`), each account's PATs by name.
pub fn render_table(reports: &[Report], show_tokens: bool) -> String {
    let header = [
        "NAME",
        "PRODUCT/KIND/AUTH",
        "STATE",
        "REASON",
        "HTTP",
        "ACCOUNT",
        "LATENCY",
        "EXPIRES",
        "ROTATE",
    ];
    let rows: Vec<Vec<String>> = reports.iter().map(row).collect();
    let mut out = aligned(&header, &rows);
    let notes: Vec<String> = reports.iter().flat_map(notes).collect();
    if !notes.is_empty() {
        out.push('\n');
        for note in notes {
            out.push_str(&note);
            out.push('\n');
        }
    }
    if show_tokens {
        for report in reports.iter().filter(|r| r.expiry.audit.is_some()) {
            token_table(&mut out, report);
        }
    }
    summary(&mut out, reports);
    out
}

/// One connection's row of the table.
fn row(report: &Report) -> Vec<String> {
    let connection = &report.connection;
    let outcome = &report.outcome;
    vec![
        connection.name.clone(),
        format!(
            "{}/{}/{}",
            connection.settings.product, connection.settings.kind, connection.settings.auth
        ),
        outcome.state.to_string(),
        if report.owned_by_replica.is_some() || report.owned_by_shard.is_some() {
            "-".to_owned()
        } else {
            outcome.reason.to_string()
        },
        outcome.http_status.map_or("-".into(), |s| s.to_string()),
        outcome
            .identity
            .as_ref()
            .and_then(|i| i.account(connection.settings.kind))
            .map_or("-".into(), printable),
        format!("{}ms", outcome.latency.as_millis()),
        expires_cell(&report.expiry),
        match report.expiry.rotation_due {
            Some(true) => "due".into(),
            Some(false) => "ok".into(),
            None => "-".into(),
        },
    ]
}

/// What to do about one connection, a line each: its hint, a rotation due, a token that never
/// expires, an unknown expiry, an owner elsewhere.
fn notes(report: &Report) -> Vec<String> {
    let mut notes = Vec::new();
    let name = &report.connection.name;
    let elsewhere = report.owned_by_replica.is_some() || report.owned_by_shard.is_some();
    if let (true, Some(detail)) = (elsewhere, &report.outcome.detail) {
        notes.push(format!("{name}: {detail}"));
    }
    if let Some(hint) = report.outcome.hint {
        notes.push(format!("{name} ({}): {hint}", report.outcome.reason));
    }
    let expiry = &report.expiry;
    if expiry.rotation_due == Some(true) {
        let when = expiry.expires_at.map_or(String::new(), |t| {
            format!(
                ", expires {} from {}",
                t.format("%Y-%m-%d %H:%M UTC"),
                expiry.source.map_or("?", |s| s.as_str())
            )
        });
        notes.push(format!(
            "{name} (rotation due{when}): create a new token, update the integration, then revoke the old one"
        ));
    }
    if expiry.never_expires == Some(true) {
        notes.push(format!(
            "{name} (policy): the token never expires; create tokens with an expiry (90 days is the usual recommendation)"
        ));
    }
    if let Some(note) = &expiry.note {
        notes.push(format!("{name} (expiry unknown): {note}"));
    }
    notes
}

/// The account's tokens by name, under the table.
fn token_table(out: &mut String, report: &Report) {
    let account = report
        .outcome
        .identity
        .as_ref()
        .and_then(|i| i.account(report.connection.settings.kind))
        .map_or("the account".to_owned(), printable);
    let _ = writeln!(out, "\nTokens of {account} ({}):", report.connection.name);
    let date = |t: Option<chrono::DateTime<Utc>>, none: &str| {
        t.map_or(none.to_owned(), |t| t.format("%Y-%m-%d").to_string())
    };
    let rows: Vec<Vec<String>> = report
        .expiry
        .tokens
        .iter()
        .map(|token| {
            vec![
                printable(&token.name),
                date(token.created_at, "-"),
                date(token.last_used_at, "never"),
                date(token.expires_at, "never"),
                format!(
                    "{}{}",
                    token.status,
                    if token.unused { ", unused" } else { "" }
                ),
                if token.this_connection {
                    "<- this connection".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    out.push_str(&aligned(
        &["TOKEN", "CREATED", "LAST USED", "EXPIRES", "STATUS", ""],
        &rows,
    ));
}

/// The closing line: how many connections in which state, and rotations due.
fn summary(out: &mut String, reports: &[Report]) {
    let mut counts: BTreeMap<State, usize> = BTreeMap::new();
    for report in reports {
        *counts.entry(report.outcome.state).or_default() += 1;
    }
    let mut summary: Vec<String> = counts
        .iter()
        .map(|(state, count)| format!("{count} {state}"))
        .collect();
    let due = reports
        .iter()
        .filter(|r| r.expiry.rotation_due == Some(true))
        .count();
    if due > 0 {
        summary.push(format!("{due} rotation due"));
    }
    let _ = writeln!(
        out,
        "\n{} connection{}: {}",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        summary.join(", ")
    );
}

/// The EXPIRES cell: the date and where it came from, "never", or "-".
fn expires_cell(expiry: &Assessment) -> String {
    match (expiry.expires_at, expiry.never_expires) {
        (Some(at), _) => format!(
            "{} ({})",
            at.format("%Y-%m-%d"),
            expiry.source.map_or("?", |s| s.as_str())
        ),
        (None, Some(true)) => "never".into(),
        _ => "-".into(),
    }
}

/// Rows under a header, each column as wide as its widest cell.
pub(crate) fn aligned(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for cells in std::iter::once(&header).chain(rows) {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(&widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// Text from Jira made safe for a terminal: control characters (escape sequences) replaced.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
