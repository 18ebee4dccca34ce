//! Jira's and Confluence's list of an account's personal access tokens (`GET
//! /rest/pat/latest/tokens`), as the probe reads it: an entry per token, with its dates
//! (docs/jira-answers.md §3, §13). Jira writes the offset `+00:00`, Confluence `+0000`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::parse_date_or_time;

/// One entry of Jira's PAT list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatEntry {
    /// Jira's id.
    pub id: u64,
    /// The name given at creation (not a secret).
    pub name: String,
    /// Creation time.
    pub created_at: Option<DateTime<Utc>>,
    /// Last use (Jira updates it at most once a minute; absent for a never-used token).
    pub last_accessed_at: Option<DateTime<Utc>>,
    /// Expiry; absent for a token that never expires.
    pub expiring_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    #[serde(default)]
    id: u64,
    name: String,
    created_at: Option<String>,
    last_accessed_at: Option<String>,
    expiring_at: Option<String>,
}

/// Parses the body of `GET /rest/pat/latest/tokens`; `None` if it is not the list.
pub fn parse_pat_list(body: &[u8]) -> Option<Vec<PatEntry>> {
    let raw: Vec<RawEntry> = serde_json::from_slice(body).ok()?;
    let date = |text: Option<String>| text.and_then(|t| pat_date(t.trim()));
    Some(
        raw.into_iter()
            .map(|entry| PatEntry {
                id: entry.id,
                name: entry.name,
                created_at: date(entry.created_at),
                last_accessed_at: date(entry.last_accessed_at),
                expiring_at: date(entry.expiring_at),
            })
            .collect(),
    )
}

/// A PAT list date: RFC 3339 (Jira's `2026-12-03T22:35:14.728+00:00`) or with an offset
/// without a colon (Confluence's `2026-04-15T10:30:00.000+0000`).
fn pat_date(text: &str) -> Option<DateTime<Utc>> {
    parse_date_or_time(text).or_else(|| {
        DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
            .ok()
            .map(|time| time.with_timezone(&Utc))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jira_and_confluence_dates_both_read() {
        let body = br#"[
            {"id": 1, "name": "jira", "createdAt": "2026-12-03T22:35:14.728+00:00", "expiringAt": "2027-03-03T22:35:14.728+00:00"},
            {"id": 2, "name": "confluence", "createdAt": "2026-04-15T10:30:00.000+0000", "expiringAt": "2026-07-14T12:30:00.000+0200"}
        ]"#;
        let entries = parse_pat_list(body).expect("a list");
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .expect("time")
                .with_timezone(&Utc)
        };
        assert_eq!(entries[0].expiring_at, Some(at("2027-03-03T22:35:14.728Z")));
        assert_eq!(entries[1].created_at, Some(at("2026-04-15T10:30:00Z")));
        assert_eq!(entries[1].expiring_at, Some(at("2026-07-14T10:30:00Z")));
    }
}
