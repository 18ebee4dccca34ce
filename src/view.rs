//! The JSON view of one connection's result, shared by `check --output json` and the
//! daemon's `/api/v1/connections`, so that both speak the same field names.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Connection;
use crate::expiry::{Assessment, Audit, Source, TokenView};
use crate::probe::{Outcome, RateLimit, Reason, State};
use crate::state::Pending;

/// What both `check` and the API print for a connection. Unknown values are `null`.
#[derive(Debug, Serialize)]
pub(crate) struct View<'a> {
    /// The connection's name.
    pub name: &'a str,
    /// Its base URL.
    pub url: &'a str,
    /// `jira`, `confluence` or `bitbucket`.
    pub product: &'static str,
    /// `server` or `cloud`.
    pub kind: &'static str,
    /// `pat`, `api_token` or `basic`.
    pub auth: &'static str,
    /// The credential's state.
    pub state: State,
    /// The last probe's reason (`null` before the first probe).
    pub reason: Option<Reason>,
    /// The last probe's HTTP status.
    pub http_status: Option<u16>,
    /// The account Jira reported.
    pub account: Option<&'a str>,
    /// Basic: the login account whose failed-login budget the connection spends (the login
    /// site and the username, `"https://jira.example.com/jira svc-bot"`); `null` otherwise.
    pub login_account: Option<&'a str>,
    /// Basic: the other connections of that login account, which share its budget and its
    /// pause; `null` otherwise.
    pub shares_login_with: Option<Vec<&'a str>>,
    /// Its display name.
    pub display_name: Option<&'a str>,
    /// The last probe's latency.
    pub latency_ms: Option<u64>,
    /// The expiry, when known: from Jira, declared, or derived.
    pub expires_at: Option<String>,
    /// Where the expiry came from: the product's token list (`jira`, `confluence`, `bitbucket`), `config`,
    /// `derived` or `org_admin`.
    pub expiry_source: Option<Source>,
    /// Whether rotation is due by the connection's policy (false when nothing tells).
    pub rotation_due: bool,
    /// Whether the token never expires (`null` unless Jira said).
    pub never_expires: Option<bool>,
    /// When the token was created, when known.
    pub token_created_at: Option<String>,
    /// When Jira last saw the token used.
    pub token_last_used_at: Option<String>,
    /// Why the expiry is unknown, with what to do.
    pub expiry_note: Option<&'a str>,
    /// The account's tokens by status, when Jira listed them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_audit: Option<Audit>,
    /// The account's tokens by name, when Jira listed them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<&'a [TokenView]>,
    /// What to do, when something is wrong.
    pub hint: Option<&'a str>,
    /// What the last probe saw, in a few words.
    pub detail: Option<&'a str>,
    /// Jira's rate-limit headers, when it sent any.
    #[serde(skip_serializing_if = "RateLimit::is_empty")]
    pub rate_limit: &'a RateLimit,
    /// `Retry-After` as Jira sent it.
    pub retry_after: Option<String>,
    /// When the last probe finished.
    pub checked_at: Option<String>,
    /// The static labels.
    pub labels: &'a BTreeMap<String, String>,
    /// The reason of a rejection after `valid` that waits for its confirmation (the state
    /// stands meanwhile); `null` when none waits.
    pub pending_reason: Option<Reason>,
    /// When that rejection was first seen.
    pub pending_since: Option<String>,
}

/// An empty rate limit, for connections not probed yet.
static NO_RATE_LIMIT: RateLimit = RateLimit {
    limit: None,
    remaining: None,
    interval_seconds: None,
    fill_rate: None,
    reset: None,
    near_limit: None,
    reason: None,
};

/// The view of a connection whose credential is in `state`, with `outcome` its last probe
/// and `expiry` what is known of its expiry; `hint` replaces the outcome's hint when given (a
/// stopped connection says why); `shares_login_with` names the other connections of its login
/// account ([`crate::config::account::shares_login_with`]).
pub(crate) fn view<'a>(
    connection: &'a Connection,
    shares_login_with: Option<Vec<&'a str>>,
    state: State,
    outcome: Option<&'a Outcome>,
    hint: Option<&'a str>,
    expiry: &'a Assessment,
    pending: Option<Pending>,
) -> View<'a> {
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339());
    let identity = outcome.and_then(|o| o.identity.as_ref());
    View {
        name: &connection.name,
        url: connection.url.as_str().trim_end_matches('/'),
        product: connection.settings.product.as_str(),
        kind: connection.settings.kind.as_str(),
        auth: connection.settings.auth.as_str(),
        state,
        reason: outcome.map(|o| o.reason),
        http_status: outcome.and_then(|o| o.http_status),
        account: identity.and_then(|i| i.account(connection.settings.kind)),
        login_account: connection.login_account(),
        shares_login_with,
        display_name: identity.and_then(|i| i.display_name.as_deref()),
        latency_ms: outcome.map(|o| u64::try_from(o.latency.as_millis()).unwrap_or(u64::MAX)),
        expires_at: time(expiry.expires_at),
        expiry_source: expiry.source,
        rotation_due: expiry.rotation_due.unwrap_or(false),
        never_expires: expiry.never_expires,
        token_created_at: time(expiry.created_at),
        token_last_used_at: time(expiry.last_used_at),
        expiry_note: expiry.note.as_deref(),
        token_audit: expiry.audit,
        tokens: expiry.audit.map(|_| expiry.tokens.as_slice()),
        hint: hint.or(outcome.and_then(|o| o.hint)),
        detail: outcome.and_then(|o| o.detail.as_deref()),
        rate_limit: outcome.map_or(&NO_RATE_LIMIT, |o| &o.rate_limit),
        retry_after: outcome.and_then(|o| o.retry_after.map(|r| r.to_string())),
        checked_at: outcome.map(|o| o.finished_at.to_rfc3339()),
        labels: &connection.settings.labels,
        pending_reason: pending.map(|p| p.reason),
        pending_since: pending.map(|p| p.since.to_rfc3339()),
    }
}
