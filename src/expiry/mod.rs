//! Token expiry and rotation: where a credential's expiry comes from, whether rotation is due,
//! and the audit of the account's personal access tokens.
//!
//! The expiry comes, in order of preference, from Jira itself (`GET /rest/pat/latest/tokens`,
//! Data Center PATs: the entry named `token_name`, or the only entry), from the configuration
//! (`expires_at`), or is derived (Cloud API tokens: `created_at` + 365 days, Atlassian's default
//! lifetime since 2024-12-15). [`assess`] is a pure function of the connection, the last token
//! list and the time, so `check`, the daemon's API, its metrics and its logs agree, and the
//! rules are tested without a network.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Connection, Product};

pub use crate::config::CLOUD_TOKEN_LIFETIME_DAYS;

/// Where a known expiry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Jira's PAT list.
    Jira,
    /// Confluence's PAT list.
    Confluence,
    /// The Bitbucket token owner's list of HTTP access tokens.
    Bitbucket,
    /// `expires_at` in the configuration.
    Config,
    /// `created_at` + 365 days (Cloud API tokens).
    Derived,
    /// The organization admin API's token list (Cloud API tokens of managed accounts).
    OrgAdmin,
}

impl Source {
    /// The product whose own token list tells the expiry.
    pub fn list_of(product: Product) -> Source {
        match product {
            Product::Jira => Source::Jira,
            Product::Confluence => Source::Confluence,
            Product::Bitbucket => Source::Bitbucket,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Jira => "jira",
            Source::Confluence => "confluence",
            Source::Bitbucket => "bitbucket",
            Source::Config => "config",
            Source::Derived => "derived",
            Source::OrgAdmin => "org_admin",
        }
    }
}

pub use crate::probe::{parse_pat_list, PatEntry};

/// What Jira's PAT API last said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Listing {
    /// The caller's tokens.
    Tokens(Vec<PatEntry>),
    /// 404, 403 or 405: Jira older than 8.14, or PATs disabled. Not a credential failure.
    Unavailable(u16),
    /// What the organization admin API's list says of a Cloud API token.
    Org(crate::org::OrgMatch),
}

/// A token list with the time it was fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenList {
    /// When it was fetched.
    pub fetched_at: DateTime<Utc>,
    /// What Jira said.
    pub listing: Listing,
}

/// The audit of an account's tokens. The statuses overlap: a token can be active, unused and
/// never expiring at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Audit {
    /// Not past its expiry.
    pub active: usize,
    /// Past its expiry but still listed.
    pub expired: usize,
    /// Never used, or not used for `unused_after`.
    pub unused: usize,
    /// Without an expiry.
    pub never_expiring: usize,
}

impl Audit {
    /// `(status label, count)` pairs, in a fixed order.
    pub fn counts(&self) -> [(&'static str, usize); 4] {
        [
            ("active", self.active),
            ("expired", self.expired),
            ("unused", self.unused),
            ("never_expiring", self.never_expiring),
        ]
    }
}

/// One token as `check --connection` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenView {
    /// Its name.
    pub name: String,
    /// Creation time.
    pub created_at: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Expiry (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// `active` or `expired`, and whether it is unused.
    pub status: &'static str,
    /// Not used for `unused_after`, or never.
    pub unused: bool,
    /// Whether it is the token this connection uses, as far as credwatch can tell.
    pub this_connection: bool,
}

/// Everything known about a credential's expiry and rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Assessment {
    /// The expiry, when known.
    pub expires_at: Option<DateTime<Utc>>,
    /// Where it came from.
    pub source: Option<Source>,
    /// Whether the token never expires, when Jira said.
    pub never_expires: Option<bool>,
    /// When the token was created, when known.
    pub created_at: Option<DateTime<Utc>>,
    /// When Jira last saw the token used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Whether rotation is due by the connection's policy; `None` when nothing tells.
    pub rotation_due: Option<bool>,
    /// Why Jira's expiry is unknown, with what to do.
    pub note: Option<String>,
    /// The account's tokens, when Jira listed them.
    pub audit: Option<Audit>,
    /// The account's tokens by name, when Jira listed them.
    pub tokens: Vec<TokenView>,
}

/// Whether a connection's expiry can be discovered from Jira's PAT API.
pub fn discoverable(connection: &Connection) -> bool {
    connection.lists_tokens()
}

/// The expiry declared or derived from the configuration alone.
pub fn declared(connection: &Connection) -> Option<(DateTime<Utc>, Source)> {
    let (expiry, derived) = connection.declared_expiry_and_how()?;
    Some((
        expiry,
        if derived {
            Source::Derived
        } else {
            Source::Config
        },
    ))
}

/// What is known of a credential before it is probed, from what its token lists said
/// (`listing`) and its configuration: its expiry, and whether an organization admin blocked
/// it. The classifier decides with them.
pub fn facts(connection: &Connection, listing: Option<&Listing>) -> crate::probe::Facts {
    let blocked_by_admin = matches!(
        listing,
        Some(Listing::Org(matched)) if matched
            .token
            .as_ref()
            .is_some_and(|t| t.status == crate::org::TokenStatus::Blocked)
    );
    crate::probe::Facts {
        known_expiry: known_expiry(connection, listing),
        blocked_by_admin,
    }
}

/// Just the known expiry (Jira's, else the declared one): what every probe needs, without the
/// rest of [`assess`]'s work.
pub fn known_expiry(connection: &Connection, listing: Option<&Listing>) -> Option<DateTime<Utc>> {
    if let Some(Listing::Tokens(entries)) = listing {
        if let Ok(entry) = pick(entries, connection.settings.token_name.as_deref()) {
            return entry.expiring_at;
        }
    }
    if let Some(Listing::Org(matched)) = listing.filter(|l| listed_for(connection, l)) {
        if let Some(expiry) = matched.token.as_ref().and_then(|t| t.expires_at) {
            return Some(expiry);
        }
    }
    declared(connection).map(|(expiry, _)| expiry)
}

/// Whether an organization's listing is about this connection as configured now: a reload
/// that removed `org`, or named another organization, leaves an old listing behind until the
/// new list is read.
fn listed_for(connection: &Connection, listing: &Listing) -> bool {
    match listing {
        Listing::Org(matched) => connection.settings.org.as_deref() == Some(matched.org.as_str()),
        _ => true,
    }
}

/// Assesses a connection's expiry from its configuration and the last token list.
pub fn assess(
    connection: &Connection,
    listing: Option<&Listing>,
    now: DateTime<Utc>,
) -> Assessment {
    let mut assessment = Assessment::default();
    let mut from_jira: Option<&PatEntry> = None;
    match listing {
        Some(Listing::Tokens(entries)) => {
            let unused_after = chrono::Duration::from_std(connection.settings.unused_after)
                .unwrap_or(chrono::Duration::MAX);
            match pick(entries, connection.settings.token_name.as_deref()) {
                Ok(entry) => from_jira = Some(entry),
                Err(note) => assessment.note = Some(note),
            }
            let mut audit = Audit::default();
            for entry in entries {
                let expired = entry.expiring_at.is_some_and(|e| e <= now);
                let unused = entry
                    .last_accessed_at
                    .is_none_or(|used| now - used >= unused_after);
                if expired {
                    audit.expired += 1;
                } else {
                    audit.active += 1;
                }
                audit.unused += usize::from(unused);
                audit.never_expiring += usize::from(entry.expiring_at.is_none());
                assessment.tokens.push(TokenView {
                    name: entry.name.clone(),
                    created_at: entry.created_at,
                    last_used_at: entry.last_accessed_at,
                    expires_at: entry.expiring_at,
                    status: if expired { "expired" } else { "active" },
                    unused,
                    this_connection: from_jira.is_some_and(|chosen| chosen.id == entry.id),
                });
            }
            assessment.audit = Some(audit);
        }
        Some(Listing::Unavailable(status)) => {
            assessment.note = Some(unavailable(connection, *status));
        }
        Some(listing @ Listing::Org(_)) if !listed_for(connection, listing) => {}
        Some(Listing::Org(matched)) => match &matched.token {
            Some(token) => {
                assessment.expires_at = token.expires_at;
                assessment.source = token.expires_at.map(|_| Source::OrgAdmin);
                assessment.created_at = token.created_at;
                assessment.last_used_at = token.last_active_at;
            }
            None => assessment.note = matched.note.clone(),
        },
        None => {}
    }

    if assessment.source == Some(Source::OrgAdmin) {
        // The organization's list said it: nothing declared overrides it.
    } else if let Some(entry) = from_jira {
        assessment.never_expires = Some(entry.expiring_at.is_none());
        assessment.expires_at = entry.expiring_at;
        assessment.source = entry
            .expiring_at
            .map(|_| Source::list_of(connection.settings.product));
        assessment.created_at = entry.created_at;
        assessment.last_used_at = entry.last_accessed_at;
    } else if let Some((expiry, source)) = declared(connection) {
        assessment.expires_at = Some(expiry);
        assessment.source = Some(source);
    }
    if assessment.created_at.is_none() {
        assessment.created_at = connection.settings.created_at;
    }

    let rotate_before = chrono::Duration::from_std(connection.settings.rotate_before)
        .unwrap_or(chrono::Duration::MAX);
    let by_window = match (assessment.expires_at, assessment.never_expires) {
        (Some(expiry), _) => Some(now >= expiry - rotate_before),
        (None, Some(true)) => Some(false),
        _ => None,
    };
    let by_age = match (connection.settings.max_token_age, assessment.created_at) {
        (Some(max_age), Some(created)) => {
            let max_age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
            Some(now - created >= max_age)
        }
        _ => None,
    };
    assessment.rotation_due = match (by_window, by_age) {
        (None, None) => None,
        (window, age) => Some(window.unwrap_or(false) || age.unwrap_or(false)),
    };
    assessment
}

/// Why the product's token list could not tell the expiry, with what to do.
fn unavailable(connection: &Connection, status: u16) -> String {
    match connection.settings.product {
        Product::Jira => format!(
            "Jira's personal access token API answered {status}: it needs Jira 8.14+ with PATs enabled, so the expiry is unknown; declare it with expires_at"
        ),
        Product::Confluence => format!(
            "Confluence's personal access token API answered {status}: it needs Confluence 7.9+ with PATs enabled, so the expiry is unknown; declare it with expires_at"
        ),
        Product::Bitbucket if status == 404 => format!(
            "Bitbucket knows no user account by this token's owner's slug (HTTP {status}): a project or repository token has none (its project's or repository's token list needs admin permission), or token_owner_slug is wrong; the expiry is unknown: declare it with expires_at"
        ),
        Product::Bitbucket => format!(
            "the token may not read its owner's token list (Bitbucket answered {status}), so the expiry is unknown; declare it with expires_at, or set token_owner_slug if the owner's slug differs from the username"
        ),
    }
}

/// The entry this connection uses: the one named `token_name`, or the only one.
fn pick<'a>(entries: &'a [PatEntry], token_name: Option<&str>) -> Result<&'a PatEntry, String> {
    // The list is the product's own (Jira's or Confluence's); it never shows the raw token.
    let names = || {
        entries
            .iter()
            .map(|e| format!("{:?}", e.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match token_name {
        Some(wanted) => {
            let named: Vec<&PatEntry> = entries.iter().filter(|e| e.name == wanted).collect();
            match named.as_slice() {
                [entry] => Ok(entry),
                [] => Err(format!(
                    "no token named {wanted:?} in the account's list ({}): check token_name",
                    if entries.is_empty() { "empty".to_owned() } else { names() }
                )),
                several => Err(format!(
                    "{} tokens are named {wanted:?}, so the list cannot say which one this is: give the token a unique name",
                    several.len()
                )),
            }
        }
        None => match entries {
            [entry] => Ok(entry),
            [] => Err("the account's token list is empty".to_owned()),
            _ => Err(format!(
                "the account has {} tokens ({}) and the list does not say which one credwatch uses: set token_name to this token's name",
                entries.len(),
                names()
            )),
        },
    }
}

#[cfg(test)]
mod tests;
