//! The status page at `GET /`: server-rendered HTML with no external assets (it works offline
//! and behind strict proxies), refreshing itself, readable on a phone.
//!
//! Everything that comes from the configuration or from Jira is escaped; no secret is ever
//! rendered (a connection's secret is simply never read here). Each row carries `data-*`
//! attributes so that tests can compare what a browser rendered with the API.

use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};

use crate::expiry::Assessment;
use crate::probe::State;
use crate::state::{Board, Entry, Snapshot};

/// How often the page reloads itself, in seconds.
pub(crate) const REFRESH_SECONDS: u32 = 15;

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

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

/// Renders the page from the status at `now`.
pub(crate) fn render(status: &Board, now: DateTime<Utc>) -> String {
    render_snapshot(&status.snapshot(), now)
}

fn render_snapshot(snapshot: &Snapshot, now: DateTime<Utc>) -> String {
    let mut rows: Vec<(&Entry, Assessment)> = snapshot
        .entries
        .iter()
        .map(|entry| (&**entry, entry.assessment(now)))
        .collect();
    rows.sort_by(|(a, ea), (b, eb)| {
        severity(a.state(), ea.rotation_due == Some(true))
            .cmp(&severity(b.state(), eb.rotation_due == Some(true)))
            .then_with(|| a.connection.name.cmp(&b.connection.name))
    });

    let mut out = String::with_capacity(4096 + rows.len() * 1024);
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>credwatch: {} connections</title><style>{STYLE}</style></head><body>",
        rows.len()
    );
    let _ = writeln!(
        out,
        "<header><h1>credwatch</h1><p class=\"muted\">Jira credentials, as of {} UTC; this page refreshes every {REFRESH_SECONDS} s. \
         <a href=\"/metrics\">metrics</a> · <a href=\"/api/v1/connections\">API</a> · <a href=\"/readyz\">readiness</a></p></header>",
        now.format("%Y-%m-%d %H:%M:%S")
    );

    out.push_str("<section class=\"summary\" aria-label=\"Summary\">");
    for state in State::ALL {
        let count = rows.iter().filter(|(e, _)| e.state() == state).count();
        let _ = write!(
            out,
            "<div class=\"tile s-{0}\" data-summary-state=\"{0}\"><span class=\"n\">{count}</span> <span>{1} {0}</span></div>",
            state.as_str(),
            symbol(state)
        );
    }
    let due = rows
        .iter()
        .filter(|(_, e)| e.rotation_due == Some(true))
        .count();
    let _ = write!(
        out,
        "<div class=\"tile rot\" data-summary-rotation-due=\"{due}\"><span class=\"n\">{due}</span> <span>↻ rotation due</span></div>"
    );
    out.push_str("</section>\n");

    out.push_str(
        "<table><thead><tr><th>Connection</th><th>Kind</th><th>Account</th><th>State</th>\
         <th>Reason</th><th>Expires</th><th>Last probe</th><th>Next probe</th></tr></thead><tbody>\n",
    );
    for (entry, expiry) in &rows {
        render_row(&mut out, entry, expiry, now);
    }
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"8\">No connection is configured.</td></tr>");
    }
    out.push_str("</tbody></table>\n</body></html>\n");
    out
}

fn render_row(out: &mut String, entry: &Entry, expiry: &Assessment, now: DateTime<Utc>) {
    let connection = &entry.connection;
    let state = entry.state();
    let last = entry.last.as_ref();
    let reason = last.map_or("not probed yet", |o| o.reason.as_str());
    let account = last
        .and_then(|o| o.identity.as_ref())
        .and_then(|i| i.account(connection.settings.kind).map(str::to_owned))
        .or_else(|| connection.settings.username.clone())
        .unwrap_or_else(|| "-".to_owned());
    let _ = write!(
        out,
        "<tr data-connection=\"{}\" data-state=\"{}\" data-reason=\"{}\">",
        escape(&connection.name),
        state.as_str(),
        escape(reason)
    );
    let _ = write!(
        out,
        "<td data-label=\"Connection\"><strong>{}</strong>",
        escape(&connection.name)
    );
    if !connection.settings.labels.is_empty() {
        out.push_str("<div class=\"labels\">");
        for (key, value) in &connection.settings.labels {
            let _ = write!(
                out,
                "<span class=\"label\">{}={}</span> ",
                escape(key),
                escape(value)
            );
        }
        out.push_str("</div>");
    }
    let _ = write!(
        out,
        "</td><td data-label=\"Kind\">{} / {}</td><td data-label=\"Account\" class=\"account\">{}</td>",
        connection.settings.kind,
        connection.settings.auth,
        escape(&account)
    );
    let _ = write!(
        out,
        "<td data-label=\"State\"><span class=\"badge s-{0}\" role=\"status\">{1} {0}</span></td>",
        state.as_str(),
        symbol(state)
    );
    let _ = write!(
        out,
        "<td data-label=\"Reason\"><code>{}</code>",
        escape(reason)
    );
    if let Some(hint) = entry.hint() {
        let _ = write!(out, "<div class=\"hint\">{}</div>", escape(hint));
    }
    if expiry.never_expires == Some(true) {
        out.push_str("<div class=\"hint\">policy: the token never expires; create tokens with an expiry</div>");
    }
    if let Some(note) = &expiry.note {
        let _ = write!(out, "<div class=\"hint\">expiry: {}</div>", escape(note));
    }
    out.push_str("</td>");
    let source = expiry.source.map_or(String::new(), |s| {
        format!(" <span class=\"muted\">({})</span>", s.as_str())
    });
    let rotation = if expiry.rotation_due == Some(true) {
        " <span class=\"rot-due\">↻ rotation due</span>"
    } else {
        ""
    };
    let title = expiry
        .expires_at
        .map_or(String::new(), |t| format!(" title=\"{}\"", t.to_rfc3339()));
    let _ = write!(
        out,
        "<td data-label=\"Expires\"{title}>{}{source}{rotation}</td>",
        escape(&countdown(expiry, now))
    );
    let last_probe = last.map_or("never".to_owned(), |o| relative(o.finished_at, now));
    let next_probe = match (entry.paused, entry.next_probe_at) {
        (Some(pause), _) => format!("stopped ({})", pause.as_str()),
        (None, Some(at)) => relative(at, now),
        (None, None) => "-".to_owned(),
    };
    let _ = writeln!(
        out,
        "<td data-label=\"Last probe\">{}</td><td data-label=\"Next probe\">{}</td></tr>",
        escape(&last_probe),
        escape(&next_probe)
    );
}

const STYLE: &str = "\
:root{--fg:#1b1f24;--muted:#59636e;--line:#d1d9e0;--bg:#fff}\
*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);background:var(--bg);margin:0;padding:16px}\
h1{font-size:22px;margin:0 0 4px}.muted{color:var(--muted);margin:0 0 12px;font-size:13px}a{color:#0550ae}\
.summary{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0 16px}\
.tile{border:1px solid var(--line);border-left-width:6px;border-radius:6px;padding:6px 10px;min-width:120px}\
.tile .n{font-size:20px;font-weight:700}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:8px;border-bottom:1px solid var(--line)}\
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}\
.badge{display:inline-block;white-space:nowrap;border-radius:12px;padding:1px 9px;font-weight:600;border:1px solid}\
.s-valid{border-color:#1a7f37;color:#116329;background:#dafbe1}.s-invalid{border-color:#cf222e;color:#a40e26;background:#ffebe9}\
.s-expired{border-color:#bc4c00;color:#953800;background:#fff1e5}.s-locked{border-color:#8250df;color:#6639ba;background:#fbefff}\
.s-forbidden{border-color:#9a6700;color:#7d4e00;background:#fff8c5}.s-unknown{border-color:#6e7781;color:#424a53;background:#f6f8fa}\
.tile.rot{border-left-color:#0969da}.tile.s-valid,.tile.s-invalid,.tile.s-expired,.tile.s-locked,.tile.s-forbidden,.tile.s-unknown{background:none}\
.hint{color:var(--muted);font-size:13px;margin-top:4px;max-width:60ch}.rot-due{color:#0550ae;font-weight:600;white-space:nowrap}\
.label{display:inline-block;font-size:12px;background:#eef1f4;border-radius:4px;padding:0 6px;margin:2px 2px 0 0}\
.account{word-break:break-all}code{font-size:13px}\
@media (max-width:700px){thead{display:none}table,tbody,tr,td{display:block;width:100%}\
tr{border:1px solid var(--line);border-radius:8px;margin-bottom:12px;padding:4px 8px}\
td{border:none;padding:4px 0}td::before{content:attr(data-label);display:block;font-size:11px;text-transform:uppercase;color:var(--muted)}}\
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert(\"x\")</script>&'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }

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
