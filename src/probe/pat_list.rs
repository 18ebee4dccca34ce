//! Jira's list of an account's personal access tokens (`GET /rest/pat/latest/tokens`), as
//! the probe reads it: an entry per token, with its dates (docs/jira-answers.md §3).

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
    let date = |text: Option<String>| text.and_then(|t| parse_date_or_time(t.trim()));
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
