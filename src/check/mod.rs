//! `credwatch check`: one probe round over the selected connections, for people and scripts.
//!
//! What a connector's "Save & test connection" button does for one credential, done for a
//! fleet: probes run concurrently under a bound; a 429 or 503 whose `Retry-After` fits within
//! [`MAX_RETRY_WAIT`] is retried once it has passed (never anything else: a retried failed
//! Basic login counts towards Jira's CAPTCHA lock). The results render as a table or as JSON.
//!
//! With a state store (the daemon's, opened without taking it over), a Basic login spends
//! the same budget the daemon spends: it is recorded before it is sent, and a connection whose
//! budget is spent is not probed unless `--force` says so. The store's pending confirmations
//! are shown beside what Jira answered now.

mod orgs;

pub use orgs::{
    exit_code as orgs_exit_code, read_orgs, render_json as render_orgs_json,
    render_table as render_orgs_table,
};

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use backon::{ConstantBuilder, Retryable};
use chrono::Utc;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::Connection;
use crate::expiry::{self, Assessment, Listing};
use crate::probe::{Outcome, Prober, Reason, State, TokenListOutcome};
use crate::state::Pause;
use crate::state::Pending;
use crate::store::logins::{self, Reserved};
use crate::store::{Location, OpenError, Store};
use crate::view::{self, View};

/// The longest `Retry-After` that `check` waits out before retrying.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// How many times `check` retries a rate-limited probe at most.
pub const MAX_RETRIES: usize = 2;

/// One connection's result.
#[derive(Debug, Clone)]
pub struct Report {
    /// The connection probed.
    pub connection: Connection,
    /// The last probe's outcome.
    pub outcome: Outcome,
    /// How many probes were sent (more than one only after a `Retry-After`).
    pub attempts: u32,
    /// The credential's expiry and rotation (with Jira's PAT list, for Data Center PATs).
    pub expiry: Assessment,
    /// Why the connection was not probed: its login budget is spent.
    pub paused: Option<Pause>,
    /// The daemon's pending confirmation, from the state store.
    pub pending: Option<Pending>,
    /// With `--replica`: the replica of the HA group that owns this connection's login
    /// account, when it is not this one (then nothing was sent).
    pub owned_by_replica: Option<u32>,
}

/// How `check` runs.
#[derive(Debug, Default)]
pub struct Options {
    /// How many probes may run at once.
    pub concurrency: usize,
    /// The state store whose login budget `check` spends.
    pub store: Option<Arc<Store>>,
    /// Send Basic logins even when the budget is spent.
    pub force: bool,
    /// This process's place in an HA group: the Basic accounts another replica owns are not
    /// probed.
    pub replica: Option<crate::replica::Replica>,
    /// The organizations' lists, read before the probes ([`read_orgs`]).
    pub orgs: Vec<crate::org::OrgStatus>,
}

/// Opens the store `location` names without owning it: an explicit directory that cannot be
/// used is an error; the default one is a warning, and then `check` keeps no budget.
pub fn open_store(location: &Location) -> Result<Option<Store>, OpenError> {
    let result = match location {
        Location::Disabled => return Ok(None),
        Location::Explicit(dir) | Location::Defaulted(dir) => Store::open_shared(dir),
    };
    match (result, location) {
        (Ok(store), _) => Ok(Some(store)),
        (Err(error), Location::Explicit(_)) => Err(error),
        (Err(error), _) => {
            tracing::warn!(%error, "checking without the state store: Basic logins are not counted against the daemon's budget");
            Ok(None)
        }
    }
}

/// Probes every connection once, at most `concurrency` at a time; reports keep the input order.
pub async fn run(prober: &Prober, connections: Vec<Connection>, options: &Options) -> Vec<Report> {
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let total = connections.len();
    let kept = connections.clone();
    // Each organization's list indexed once, every connection matched against it.
    let mut matches = std::collections::HashMap::new();
    for status in &options.orgs {
        let Some((_, tokens)) = &status.tokens else {
            continue;
        };
        let accounts = crate::org::ByAccount::new(tokens);
        for connection in &connections {
            if connection.settings.org.as_deref() == Some(status.org.name.as_str()) {
                let matched = accounts.match_token(connection, &status.org.name);
                matches.insert(connection.name.clone(), matched);
            }
        }
    }
    let logins = login_budget(options.store.as_ref(), &connections);
    for (index, connection) in connections.into_iter().enumerate() {
        let prober = prober.clone();
        let permits = permits.clone();
        let store = options.store.clone();
        let logins = logins.clone();
        let force = options.force;
        let matched = matches.get(&connection.name).cloned();
        if let Some(owner) = options
            .replica
            .filter(|r| !r.watches(&connection))
            .and_then(|r| r.sole_owner(&connection))
        {
            tasks.spawn(async move { (index, owned_elsewhere(connection, owner)) });
            continue;
        }
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = permits.acquire_owned().await;
            let remembered = match &store {
                Some(store) => remembered(store, &connection).await,
                None => Remembered::default(),
            };
            let probed = match (&logins, connection.login_account()) {
                (Some(logins), Some(_)) => budgeted(&prober, logins, &connection, force).await,
                _ => {
                    // The organization's list may know the expiry: a 401 after it is `expired`.
                    let listed = matched.clone().map(Listing::Org);
                    let known = expiry::known_expiry(&connection, listed.as_ref());
                    Ok(probe_with_retry(&prober, &connection, known).await)
                }
            };
            let (mut outcome, attempts) = match probed {
                Ok(probed) => probed,
                Err(refused) => {
                    let expiry = expiry::assess(&connection, None, Utc::now());
                    let pause = match refused {
                        Reserved::Spent(pause) => Some(pause),
                        _ => None,
                    };
                    let outcome = not_probed(refused, remembered.verdict);
                    let report = Report {
                        connection,
                        outcome,
                        attempts: 0,
                        expiry,
                        paused: pause,
                        pending: remembered.pending,
                        owned_by_replica: None,
                    };
                    return (index, report);
                }
            };
            let listing = if outcome.state == State::Valid && expiry::discoverable(&connection) {
                match prober.list_tokens(&connection).await {
                    TokenListOutcome::Listed(entries) => Some(Listing::Tokens(entries)),
                    TokenListOutcome::Unavailable(code) => Some(Listing::Unavailable(code)),
                    TokenListOutcome::Failed(failure) => {
                        tracing::info!(connection = %connection.name, reason = %failure.reason, "the token list could not be fetched");
                        None
                    }
                }
            } else {
                None
            };
            crate::org::explain(&mut outcome, matched.as_ref());
            let listing = listing.or(matched.map(Listing::Org));
            let expiry = expiry::assess(&connection, listing.as_ref(), Utc::now());
            (
                index,
                Report {
                    connection,
                    outcome,
                    attempts,
                    expiry,
                    paused: None,
                    pending: remembered.pending,
                    owned_by_replica: None,
                },
            )
        });
    }
    let mut slots: Vec<Option<Report>> = vec![None; total];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, report)) => slots[index] = Some(report),
            Err(error) => tracing::error!(%error, "a probe task failed"),
        }
    }
    // A connection whose task failed is reported, never silently dropped.
    slots
        .into_iter()
        .zip(kept)
        .map(|(slot, connection)| {
            slot.unwrap_or_else(|| Report {
                outcome: internal_failure(&connection),
                expiry: expiry::assess(&connection, None, Utc::now()),
                connection,
                attempts: 0,
                paused: None,
                pending: None,
                owned_by_replica: None,
            })
        })
        .collect()
}

/// Where `check` keeps the login accounts' budgets: the daemon's store (whose per-name
/// budgets of a format-1 store join their accounts first), or one in memory, so that the
/// names of one account share a budget within this run too. `None` only when not even that
/// can be had (logged; Basic logins are then sent without a budget, one per connection).
fn login_budget(store: Option<&Arc<Store>>, connections: &[Connection]) -> Option<Arc<Store>> {
    let Some(store) = store else {
        return match Store::open_memory() {
            Ok(store) => Some(Arc::new(store)),
            Err(error) => {
                tracing::warn!(%error, "cannot keep the login budget in memory");
                None
            }
        };
    };
    let members: Vec<(&str, &str)> = connections
        .iter()
        .filter_map(|c| Some((c.name.as_str(), c.login_account()?)))
        .collect();
    if let Err(error) = store.adopt_logins(&members) {
        tracing::warn!(%error, "cannot move the login budgets kept per connection name to their accounts");
    }
    Some(store.clone())
}

/// The report of a connection whose login account another replica owns: not probed, and
/// who to ask.
fn owned_elsewhere(connection: Connection, owner: u32) -> Report {
    let mut outcome = internal_failure(&connection);
    outcome.hint = None;
    outcome.detail = Some(format!(
        "not probed: replica {owner} of the HA group owns this login account and sends its logins; check it with --replica {owner}/N"
    ));
    Report {
        expiry: expiry::assess(&connection, None, Utc::now()),
        connection,
        outcome,
        attempts: 0,
        paused: None,
        pending: None,
        owned_by_replica: Some(owner),
    }
}

/// What the store remembers of a connection whose credential is unchanged.
#[derive(Debug, Default)]
struct Remembered {
    verdict: Option<(State, Reason)>,
    pending: Option<Pending>,
}

async fn remembered(store: &Arc<Store>, connection: &Connection) -> Remembered {
    let store = store.clone();
    let connection = connection.clone();
    tokio::task::spawn_blocking(move || {
        let identity = store.identity(&connection);
        let record = store.record(&connection.name, &identity).ok().flatten();
        Remembered {
            verdict: record
                .as_ref()
                .and_then(|r| r.verdict.map(|v| (v.state, v.reason))),
            pending: record.and_then(|r| r.pending),
        }
    })
    .await
    .unwrap_or_default()
}

/// A Basic probe under the store's login budget: recorded before it is sent, resolved with
/// its answer, and not sent at all (`Err`) when the budget is spent, unless `force`.
async fn budgeted(
    prober: &Prober,
    store: &Arc<Store>,
    connection: &Connection,
    force: bool,
) -> Result<(Outcome, u32), Reserved> {
    let attempt = match logins::reserve(store, connection, "check", force).await {
        Reserved::Granted(attempt) => Some(attempt),
        // With --force, a login the store cannot record is sent all the same.
        Reserved::Unrecorded if force => None,
        refused => return Err(refused),
    };
    // A password is never sent twice in one check: no retry, whatever Jira answers.
    let outcome = prober.probe(connection).await;
    if let Some(attempt) = attempt {
        logins::resolve(store, connection, attempt, &outcome).await;
    }
    Ok((outcome, 1))
}

/// The report of a connection whose login budget is spent: what the store last knew, and
/// why nothing was sent.
fn not_probed(refused: Reserved, verdict: Option<(State, Reason)>) -> Outcome {
    let (fallback, hint, detail) = match refused {
        Reserved::Spent(pause) => (
            match pause {
                Pause::Locked => (State::Locked, Reason::CaptchaRequired),
                Pause::FailedLogins => (State::Invalid, Reason::Unauthorized),
            },
            Some(pause.hint()),
            format!(
                "not probed: the login account's budget is spent ({}); --force sends the login anyway",
                pause.as_str()
            ),
        ),
        Reserved::Busy(wait) => (
            (State::Unknown, Reason::RateLimited),
            None,
            format!(
                "not probed: another login for this account is in flight (the daemon's or another check's), and a third failure could lock it; try again in {}",
                humantime::format_duration(Duration::from_secs(wait.as_secs().max(1)))
            ),
        ),
        _ => (
            (State::Unknown, Reason::UnexpectedResponse),
            None,
            "not probed: the state store cannot record the login, and a login that cannot be counted is not sent; --force sends it anyway".to_owned(),
        ),
    };
    let (state, reason) = verdict.unwrap_or(fallback);
    Outcome {
        state,
        reason,
        http_status: None,
        latency: Duration::ZERO,
        identity: None,
        rate_limit: crate::probe::RateLimit::default(),
        retry_after: None,
        hint,
        detail: Some(detail),
        finished_at: Utc::now(),
        token_request: crate::probe::TokenRequest::None,
    }
}

fn internal_failure(connection: &Connection) -> Outcome {
    Outcome {
        state: State::Unknown,
        reason: Reason::UnexpectedResponse,
        http_status: None,
        latency: Duration::ZERO,
        identity: None,
        rate_limit: crate::probe::RateLimit::default(),
        retry_after: None,
        hint: Reason::UnexpectedResponse.hint(connection.settings.auth),
        detail: Some("credwatch failed while probing this connection (see the log)".to_owned()),
        finished_at: Utc::now(),
        token_request: crate::probe::TokenRequest::None,
    }
}

/// How long to wait before retrying, if this outcome may be retried at all.
fn retry_wait(outcome: &Outcome) -> Option<Duration> {
    if outcome.reason != Reason::RateLimited {
        return None;
    }
    let wait = outcome.retry_after?.delay_from(Utc::now());
    (wait <= MAX_RETRY_WAIT).then_some(wait)
}

async fn probe_with_retry(
    prober: &Prober,
    connection: &Connection,
    known_expiry: Option<chrono::DateTime<Utc>>,
) -> (Outcome, u32) {
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let result = (|| async {
        attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = prober.probe_expecting(connection, known_expiry).await;
        if retry_wait(&outcome).is_some() {
            Err(outcome)
        } else {
            Ok(outcome)
        }
    })
    .retry(ConstantBuilder::default().with_max_times(MAX_RETRIES))
    .sleep(tokio::time::sleep)
    // Retry-After is the wait; the builder only bounds how many times.
    .adjust(|outcome, next| next.and(retry_wait(outcome)))
    .notify(|outcome, wait| {
        tracing::info!(
            connection = %connection.name,
            http_status = ?outcome.http_status,
            wait = %humantime::format_duration(wait),
            "rate limited; retrying after Retry-After"
        );
    })
    .await;
    let outcome = result.unwrap_or_else(|outcome| outcome);
    (outcome, attempts.into_inner())
}

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
        if self.owned_by_replica.is_some() {
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
        "KIND/AUTH",
        "STATE",
        "REASON",
        "HTTP",
        "ACCOUNT",
        "LATENCY",
        "EXPIRES",
        "ROTATE",
    ];
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|report| {
            let connection = &report.connection;
            let outcome = &report.outcome;
            vec![
                connection.name.clone(),
                format!("{}/{}", connection.settings.kind, connection.settings.auth),
                outcome.state.to_string(),
                match report.owned_by_replica {
                    Some(_) => "-".to_owned(),
                    None => outcome.reason.to_string(),
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
        })
        .collect();
    let mut out = aligned(&header, &rows);

    let mut notes = Vec::new();
    for report in reports {
        let name = &report.connection.name;
        if let (Some(_), Some(detail)) = (report.owned_by_replica, &report.outcome.detail) {
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
    }
    if !notes.is_empty() {
        out.push('\n');
        for note in notes {
            out.push_str(&note);
            out.push('\n');
        }
    }

    if show_tokens {
        for report in reports.iter().filter(|r| r.expiry.audit.is_some()) {
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
    }

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
    out
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
pub(super) fn aligned(header: &[&str], rows: &[Vec<String>]) -> String {
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

/// The exit status `check` ends with: 0 when every credential is valid, 1 otherwise.
pub fn exit_code(reports: &[Report]) -> u8 {
    u8::from(reports.iter().any(|r| r.outcome.state != State::Valid))
}
