//! Atlassian organizations: the token list of the organization admin API
//! (`docs/jira-answers.md` §8), what it says about each Cloud connection that opts in with
//! `org = "..."`, and the organization's inventory.
//!
//! The list is read by [`list::read`] (every page, `Retry-After` and backoff honoured), at
//! start and every `interval` by the daemon and once by `credwatch check`. Matching a
//! connection to its token ([`match_token`]) and counting the inventory ([`Inventory::of`]) are
//! pure functions of the list and the time, tested without a network.

pub(crate) mod list;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Connection, Org};
use crate::probe::State;

/// Whether an admin allows the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenStatus {
    /// The token works (until it expires).
    Allowed,
    /// An admin blocked it: Jira rejects it with 401.
    Blocked,
}

/// One user API token as the organization admin API lists it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgToken {
    /// Atlassian's id of the token.
    pub id: String,
    /// The name the user gave it.
    pub label: String,
    /// `ALLOWED` or `BLOCKED`.
    pub status: TokenStatus,
    /// The account's email.
    pub email: String,
    /// Creation time.
    pub created_at: Option<DateTime<Utc>>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use; absent for a token never used.
    pub last_active_at: Option<DateTime<Utc>>,
}

/// What the list says about one connection's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgMatch {
    /// The organization's name in the configuration.
    pub org: String,
    /// The token, when exactly one entry is this connection's.
    pub token: Option<OrgToken>,
    /// Why there is no token, with what to do.
    pub note: Option<String>,
}

/// An organization's list by account, lower-cased email first: matching every connection of a
/// large organization reads the list once, not once per connection.
pub struct ByAccount<'a>(std::collections::HashMap<String, Vec<&'a OrgToken>>);

impl<'a> ByAccount<'a> {
    /// Indexes `tokens`.
    pub fn new(tokens: &'a [OrgToken]) -> ByAccount<'a> {
        let mut index: std::collections::HashMap<String, Vec<&OrgToken>> = Default::default();
        for token in tokens {
            index
                .entry(token.email.to_lowercase())
                .or_default()
                .push(token);
        }
        ByAccount(index)
    }

    /// [`match_token`] against the indexed list.
    pub fn match_token(&self, connection: &Connection, org: &str) -> OrgMatch {
        let email = connection.settings.username.as_deref().unwrap_or_default();
        let account = self
            .0
            .get(&email.to_lowercase())
            .map_or(&[][..], Vec::as_slice);
        match_account(connection, org, account)
    }
}

/// Finds a connection's token in its organization's list: the entry whose `user.email` is the
/// connection's `username` (without regard to case) and whose `label` is its `token_label`;
/// without `token_label`, the account's only token.
pub fn match_token(connection: &Connection, org: &str, tokens: &[OrgToken]) -> OrgMatch {
    ByAccount::new(tokens).match_token(connection, org)
}

fn match_account(connection: &Connection, org: &str, account: &[&OrgToken]) -> OrgMatch {
    let email = connection.settings.username.as_deref().unwrap_or_default();
    let found = |token: &OrgToken| OrgMatch {
        org: org.to_owned(),
        token: Some(token.clone()),
        note: None,
    };
    let missing = |note: String| OrgMatch {
        org: org.to_owned(),
        token: None,
        note: Some(note),
    };
    let labels = || {
        account
            .iter()
            .map(|t| format!("{:?}", t.label))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match connection.settings.token_label.as_deref() {
        Some(label) => {
            let named: Vec<&&OrgToken> = account.iter().filter(|t| t.label == label).collect();
            match named.as_slice() {
                [token] => found(token),
                [] if account.is_empty() => missing(format!(
                    "organization {org:?} lists no API token of {email}: is the account managed by this organization?"
                )),
                [] => missing(format!(
                    "organization {org:?} lists no token labelled {label:?} for {email} (its tokens: {}): check token_label",
                    labels()
                )),
                several => missing(format!(
                    "{} of {email}'s tokens are labelled {label:?} in organization {org:?}, so the list cannot say which one this is: give the token a unique label",
                    several.len()
                )),
            }
        }
        None => match account {
            [token] => found(token),
            [] => missing(format!(
                "organization {org:?} lists no API token of {email}: is the account managed by this organization?"
            )),
            several => missing(format!(
                "{email} has {} API tokens in organization {org:?} ({}): set token_label to this token's label",
                several.len(),
                labels()
            )),
        },
    }
}

/// The organization's tokens counted, without a series per token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Inventory {
    /// `ALLOWED` and not past `expiresAt`.
    pub allowed: usize,
    /// `BLOCKED`.
    pub blocked: usize,
    /// `ALLOWED` but past `expiresAt`.
    pub expired: usize,
    /// Allowed tokens expiring within 7 days (already expired ones not counted).
    pub expiring_7d: usize,
    /// Allowed tokens expiring within 30 days (the 7-day ones included).
    pub expiring_30d: usize,
    /// Allowed tokens not used for `unused_after`, or never used.
    pub unused: usize,
}

impl Inventory {
    /// Counts `tokens` at `now`.
    pub fn of(
        tokens: &[OrgToken],
        unused_after: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Inventory {
        let unused_after =
            chrono::Duration::from_std(unused_after).unwrap_or(chrono::Duration::MAX);
        let mut inventory = Inventory::default();
        for token in tokens {
            if token.status == TokenStatus::Blocked {
                inventory.blocked += 1;
                continue;
            }
            if token.expires_at.is_some_and(|at| at <= now) {
                inventory.expired += 1;
                continue;
            }
            inventory.allowed += 1;
            if let Some(at) = token.expires_at {
                inventory.expiring_7d += usize::from(at - now <= chrono::Duration::days(7));
                inventory.expiring_30d += usize::from(at - now <= chrono::Duration::days(30));
            }
            inventory.unused += usize::from(
                token
                    .last_active_at
                    .is_none_or(|used| now - used >= unused_after),
            );
        }
        inventory
    }
}

/// What credwatch knows of an organization: its last good list, and how its admin key fares.
#[derive(Debug, Clone)]
pub struct OrgStatus {
    /// The organization as configured.
    pub org: Org,
    /// The last list read whole, with when.
    pub tokens: Option<(DateTime<Utc>, std::sync::Arc<Vec<OrgToken>>)>,
    /// The admin key's state: `valid` once a list was read, `invalid`, `expired` or
    /// `forbidden` when the API rejected it, `unknown` before any answer.
    pub key_state: State,
    /// Why the last read failed, if it did (the last good list stands).
    pub last_error: Option<String>,
    /// Whether this replica exports the organization's series (its shard owns the name).
    pub exported: bool,
}

impl OrgStatus {
    /// An organization not read yet.
    pub fn new(org: Org, exported: bool) -> OrgStatus {
        OrgStatus {
            org,
            tokens: None,
            key_state: State::Unknown,
            last_error: None,
            exported,
        }
    }

    /// The inventory of the last good list at `now`.
    pub fn inventory(&self, now: DateTime<Utc>) -> Option<Inventory> {
        self.tokens
            .as_ref()
            .map(|(_, tokens)| Inventory::of(tokens, self.org.unused_after, now))
    }

    /// Records the result of a read.
    pub fn read(&mut self, result: Result<Vec<OrgToken>, list::ReadError>, now: DateTime<Utc>) {
        match result {
            Ok(tokens) => {
                self.tokens = Some((now, std::sync::Arc::new(tokens)));
                self.key_state = State::Valid;
                self.last_error = None;
            }
            Err(error) => {
                if let Some(state) = error.key_state(self.org.api_key_expires_at, now) {
                    self.key_state = state;
                }
                self.last_error = Some(error.to_string());
            }
        }
    }
}

/// An organization as `GET /api/v1/orgs` and `check --orgs --output json` show it: never
/// the key, never a token.
#[derive(Debug, Serialize)]
pub struct OrgView<'a> {
    /// The name in the configuration.
    pub name: &'a str,
    /// Atlassian's id.
    pub org_id: &'a str,
    /// The admin API's base URL.
    pub api_url: &'a str,
    /// The admin key's state.
    pub api_key_state: State,
    /// When the admin key expires, when declared.
    pub api_key_expires_at: Option<String>,
    /// When the list was last read whole.
    pub last_list_success_at: Option<String>,
    /// Why the last read failed (the last good list stands).
    pub last_error: Option<&'a str>,
    /// The tokens counted, once a list was read.
    pub tokens: Option<Inventory>,
}

impl OrgStatus {
    /// The view of this organization at `now`.
    pub fn view(&self, now: DateTime<Utc>) -> OrgView<'_> {
        OrgView {
            name: &self.org.name,
            org_id: &self.org.org_id,
            api_url: self.org.api_url.as_str().trim_end_matches('/'),
            api_key_state: self.key_state,
            api_key_expires_at: self.org.api_key_expires_at.map(|t| t.to_rfc3339()),
            last_list_success_at: self.tokens.as_ref().map(|(at, _)| at.to_rfc3339()),
            last_error: self.last_error.as_deref(),
            tokens: self.inventory(now),
        }
    }
}

#[cfg(test)]
mod tests;
