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

use crate::config::{parse_date_or_time, AuthMethod, Connection, Kind};

/// How long Atlassian's Cloud API tokens live by default (since 2024-12-15).
pub const CLOUD_TOKEN_LIFETIME_DAYS: i64 = 365;

/// Where a known expiry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Jira's PAT list.
    Jira,
    /// `expires_at` in the configuration.
    Config,
    /// `created_at` + 365 days (Cloud API tokens).
    Derived,
    /// The organization admin API's token list (Cloud API tokens of managed accounts).
    OrgAdmin,
}

impl Source {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Jira => "jira",
            Source::Config => "config",
            Source::Derived => "derived",
            Source::OrgAdmin => "org_admin",
        }
    }
}

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
    connection.settings.kind == Kind::Server && connection.settings.auth == AuthMethod::Pat
}

/// The expiry declared or derived from the configuration alone.
pub fn declared(connection: &Connection) -> Option<(DateTime<Utc>, Source)> {
    if let Some(expiry) = connection.settings.expires_at {
        return Some((expiry, Source::Config));
    }
    if connection.settings.kind == Kind::Cloud && connection.settings.auth == AuthMethod::ApiToken {
        let created = connection.settings.created_at?;
        return Some((
            created + chrono::Duration::days(CLOUD_TOKEN_LIFETIME_DAYS),
            Source::Derived,
        ));
    }
    None
}

/// Just the known expiry (Jira's, else the declared one): what every probe needs, without the
/// rest of [`assess`]'s work.
pub fn known_expiry(connection: &Connection, listing: Option<&Listing>) -> Option<DateTime<Utc>> {
    if let Some(Listing::Tokens(entries)) = listing {
        if let Ok(entry) = pick(entries, connection.settings.token_name.as_deref()) {
            return entry.expiring_at;
        }
    }
    if let Some(Listing::Org(matched)) = listing {
        if let Some(expiry) = matched.token.as_ref().and_then(|t| t.expires_at) {
            return Some(expiry);
        }
    }
    declared(connection).map(|(expiry, _)| expiry)
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
            assessment.note = Some(format!(
                "Jira's personal access token API answered {status}: it needs Jira 8.14+ with PATs enabled, so the expiry is unknown; declare it with expires_at"
            ));
        }
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
        assessment.source = entry.expiring_at.map(|_| Source::Jira);
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

/// The entry this connection uses: the one named `token_name`, or the only one.
fn pick<'a>(entries: &'a [PatEntry], token_name: Option<&str>) -> Result<&'a PatEntry, String> {
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
                    "{} tokens are named {wanted:?}, so Jira's list cannot say which one this is: give the token a unique name",
                    several.len()
                )),
            }
        }
        None => match entries {
            [entry] => Ok(entry),
            [] => Err("the account's token list is empty".to_owned()),
            _ => Err(format!(
                "the account has {} tokens ({}) and Jira does not say which one credwatch uses: set token_name to this token's name",
                entries.len(),
                names()
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse_date_or_time(text).expect("time")
    }

    fn connection(extra: &str) -> Connection {
        let text = format!(
            "[[connection]]\nname = \"c\"\nurl = \"https://jira.example.com\"\ntoken = \"t\"\n{extra}\n"
        );
        crate::config::Config::from_sources(&[("t.toml".into(), text)])
            .unwrap_or_else(|e| panic!("{e}"))
            .connections
            .remove(0)
    }

    fn entry(id: u64, name: &str, expires: Option<&str>, used: Option<&str>) -> PatEntry {
        PatEntry {
            id,
            name: name.to_owned(),
            created_at: Some(at("2026-09-01T00:00:00Z")),
            last_accessed_at: used.map(at),
            expiring_at: expires.map(at),
        }
    }

    const NOW: &str = "2026-11-22T12:00:00Z";

    #[test]
    fn the_entry_named_token_name_wins() {
        let conn = connection("token_name = \"credwatch\"");
        let list = Listing::Tokens(vec![
            entry(1, "laptop", Some("2027-01-01T00:00:00Z"), None),
            entry(
                2,
                "credwatch",
                Some("2026-12-03T22:35:14.728+00:00"),
                Some("2026-11-22T11:00:00Z"),
            ),
        ]);
        let a = assess(&conn, Some(&list), at(NOW));
        assert_eq!(a.expires_at, Some(at("2026-12-03T22:35:14.728+00:00")));
        assert_eq!(a.source, Some(Source::Jira));
        assert_eq!(a.never_expires, Some(false));
        assert_eq!(a.last_used_at, Some(at("2026-11-22T11:00:00Z")));
        assert_eq!(
            a.rotation_due,
            Some(true),
            "11 days left, rotate_before 14d"
        );
        assert_eq!(a.note, None);
        assert!(a
            .tokens
            .iter()
            .any(|t| t.name == "credwatch" && t.this_connection));
        assert!(a
            .tokens
            .iter()
            .any(|t| t.name == "laptop" && !t.this_connection));
    }

    #[test]
    fn the_only_entry_is_used_without_token_name_and_several_are_ambiguous() {
        let conn = connection("");
        let one = Listing::Tokens(vec![entry(1, "any", Some("2027-06-01T00:00:00Z"), None)]);
        let a = assess(&conn, Some(&one), at(NOW));
        assert_eq!(
            (a.expires_at, a.source),
            (Some(at("2027-06-01T00:00:00Z")), Some(Source::Jira))
        );
        assert_eq!(a.rotation_due, Some(false));

        let two = Listing::Tokens(vec![
            entry(1, "a", Some("2027-06-01T00:00:00Z"), None),
            entry(2, "b", Some("2027-07-01T00:00:00Z"), None),
        ]);
        let a = assess(&conn, Some(&two), at(NOW));
        assert_eq!(a.expires_at, None);
        assert_eq!(a.rotation_due, None, "nothing tells");
        assert!(
            a.note
                .as_deref()
                .is_some_and(|n| n.contains("set token_name")),
            "{:?}",
            a.note
        );

        let named = connection("token_name = \"missing\"");
        let a = assess(&named, Some(&two), at(NOW));
        assert!(a
            .note
            .as_deref()
            .is_some_and(|n| n.contains("no token named \"missing\"")));
        let dup = Listing::Tokens(vec![entry(1, "x", None, None), entry(2, "x", None, None)]);
        let a = assess(&connection("token_name = \"x\""), Some(&dup), at(NOW));
        assert!(a
            .note
            .as_deref()
            .is_some_and(|n| n.contains("2 tokens are named \"x\"")));
    }

    #[test]
    fn jira_beats_the_configuration_and_a_token_without_expiry_never_expires() {
        let conn = connection("expires_at = \"2026-12-01\"");
        let forever = Listing::Tokens(vec![entry(1, "ci", None, None)]);
        let a = assess(&conn, Some(&forever), at(NOW));
        assert_eq!(a.never_expires, Some(true));
        assert_eq!(
            a.expires_at, None,
            "Jira says never; the configuration loses"
        );
        assert_eq!(a.source, None);
        assert_eq!(a.rotation_due, Some(false));

        let a = assess(&conn, None, at(NOW));
        assert_eq!(
            (a.expires_at, a.source),
            (Some(at("2026-12-01")), Some(Source::Config))
        );
        assert_eq!(a.never_expires, None);
        assert_eq!(a.rotation_due, Some(true), "9 days left");
    }

    #[test]
    fn an_unavailable_api_leaves_the_expiry_unknown_with_a_hint() {
        let a = assess(&connection(""), Some(&Listing::Unavailable(404)), at(NOW));
        assert_eq!(a.expires_at, None);
        assert!(a
            .note
            .as_deref()
            .is_some_and(|n| n.contains("404") && n.contains("8.14")));
        assert_eq!(a.audit, None);
    }

    #[test]
    fn cloud_expiry_is_declared_or_derived_from_created_at() {
        let cloud = |extra: &str| {
            let text = format!(
                "[[connection]]\nname = \"c\"\nurl = \"https://acme.atlassian.net\"\nusername = \"a@b.c\"\ntoken = \"t\"\n{extra}\n"
            );
            crate::config::Config::from_sources(&[("t.toml".into(), text)])
                .unwrap_or_else(|e| panic!("{e}"))
                .connections
                .remove(0)
        };
        let derived = assess(&cloud("created_at = \"2026-01-10\""), None, at(NOW));
        assert_eq!(derived.expires_at, Some(at("2027-01-10")));
        assert_eq!(derived.source, Some(Source::Derived));
        assert_eq!(derived.created_at, Some(at("2026-01-10")));
        assert_eq!(derived.rotation_due, Some(false), "49 days left");
        let declared = assess(
            &cloud("created_at = \"2026-01-10\"\nexpires_at = \"2026-12-01\""),
            None,
            at(NOW),
        );
        assert_eq!(
            (declared.expires_at, declared.source),
            (Some(at("2026-12-01")), Some(Source::Config))
        );
    }

    #[test]
    fn rotation_is_due_by_window_or_by_age() {
        let window = assess(
            &connection("expires_at = \"2026-12-10\"\nrotate_before = \"30d\""),
            None,
            at(NOW),
        );
        assert_eq!(window.rotation_due, Some(true));
        let not_yet = assess(
            &connection("expires_at = \"2026-12-10\"\nrotate_before = \"7d\""),
            None,
            at(NOW),
        );
        assert_eq!(not_yet.rotation_due, Some(false));
        let old = assess(
            &connection("created_at = \"2026-07-01\"\nmax_token_age = \"90d\""),
            None,
            at(NOW),
        );
        assert_eq!(old.rotation_due, Some(true), "144 days old");
        let young = assess(
            &connection("created_at = \"2026-11-01\"\nmax_token_age = \"90d\""),
            None,
            at(NOW),
        );
        assert_eq!(young.rotation_due, Some(false));
        // A token that never expires is still due when it is too old.
        let forever = Listing::Tokens(vec![entry(1, "ci", None, None)]);
        let aged = assess(
            &connection("max_token_age = \"30d\""),
            Some(&forever),
            at(NOW),
        );
        assert_eq!(
            aged.rotation_due,
            Some(true),
            "created 2026-09-01 by Jira's list"
        );
    }

    #[test]
    fn the_audit_counts_every_token_of_the_account() {
        let list = Listing::Tokens(vec![
            entry(
                1,
                "fresh",
                Some("2027-01-01T00:00:00Z"),
                Some("2026-11-20T00:00:00Z"),
            ),
            entry(
                2,
                "stale",
                Some("2027-01-01T00:00:00Z"),
                Some("2026-05-01T00:00:00Z"),
            ),
            entry(3, "never-used", Some("2027-01-01T00:00:00Z"), None),
            entry(
                4,
                "gone",
                Some("2026-10-01T00:00:00Z"),
                Some("2026-09-30T00:00:00Z"),
            ),
            entry(5, "forever", None, Some("2026-11-21T00:00:00Z")),
        ]);
        let a = assess(&connection("token_name = \"fresh\""), Some(&list), at(NOW));
        assert_eq!(
            a.audit,
            Some(Audit {
                active: 4,
                expired: 1,
                unused: 2,
                never_expiring: 1
            })
        );
        let stale = a.tokens.iter().find(|t| t.name == "stale").expect("stale");
        assert!(stale.unused && stale.status == "active");
    }

    #[test]
    fn jira_list_answers_parse() {
        let body = br#"[{"id":58,"name":"test","createdAt":"2026-09-04T22:35:14.728+00:00","lastAccessedAt":"2026-09-04T22:55:16.025+00:00","expiringAt":"2026-12-03T22:35:14.728+00:00"},{"id":59,"name":"forever","createdAt":"2026-01-01T00:00:00.000+00:00"}]"#;
        let entries = parse_pat_list(body).expect("list");
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].expiring_at,
            Some(at("2026-12-03T22:35:14.728+00:00"))
        );
        assert_eq!(
            entries[0].expiring_at.map(|e| e.timestamp_millis()),
            Some(1_796_337_314_728)
        );
        assert_eq!(entries[1].expiring_at, None);
        assert_eq!(entries[1].last_accessed_at, None);
        assert!(parse_pat_list(b"<html>login</html>").is_none());
        assert!(parse_pat_list(br#"{"errorMessages":[]}"#).is_none());
    }
}
