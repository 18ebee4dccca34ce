//! `credwatch check`: one probe round over the selected connections, for people and scripts.
//!
//! What a connector's "Save & test connection" button does for one credential, done for a
//! fleet: probes run concurrently under a bound; a 429 or 503 whose `Retry-After` fits within
//! [`MAX_RETRY_WAIT`] is retried once it has passed (never anything else: a retried failed
//! Basic login counts towards Jira's CAPTCHA lock). The results render as a table or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use backon::{ConstantBuilder, Retryable};
use chrono::Utc;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::Connection;
use crate::probe::{Outcome, Prober, Reason, State};
use crate::report::{self, View};

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
}

/// Probes every connection once, at most `concurrency` at a time; reports keep the input order.
pub async fn run(prober: &Prober, connections: Vec<Connection>, concurrency: usize) -> Vec<Report> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let total = connections.len();
    let kept = connections.clone();
    for (index, connection) in connections.into_iter().enumerate() {
        let prober = prober.clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = permits.acquire_owned().await;
            let (outcome, attempts) = probe_with_retry(&prober, &connection).await;
            (
                index,
                Report {
                    connection,
                    outcome,
                    attempts,
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
                connection,
                attempts: 0,
            })
        })
        .collect()
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
        hint: Reason::UnexpectedResponse.hint(connection.auth),
        detail: Some("credwatch failed while probing this connection (see the log)".to_owned()),
        finished_at: Utc::now(),
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

async fn probe_with_retry(prober: &Prober, connection: &Connection) -> (Outcome, u32) {
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let result = (|| async {
        attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = prober.probe(connection).await;
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
pub struct JsonReport<'a> {
    #[serde(flatten)]
    view: View<'a>,
    attempts: u32,
}

impl Report {
    /// The JSON view of this report.
    pub fn json(&self) -> JsonReport<'_> {
        JsonReport {
            view: report::view(
                &self.connection,
                self.outcome.state,
                Some(&self.outcome),
                None,
            ),
            attempts: self.attempts,
        }
    }
}

/// Renders reports as a JSON array.
pub fn render_json(reports: &[Report]) -> String {
    let views: Vec<JsonReport<'_>> = reports.iter().map(Report::json).collect();
    serde_json::to_string_pretty(&views).unwrap_or_else(|e| format!("[] # cannot render: {e}"))
}

/// Renders reports as an aligned table, the hints below it and a one-line summary.
pub fn render_table(reports: &[Report]) -> String {
    let header = [
        "NAME",
        "KIND/AUTH",
        "STATE",
        "REASON",
        "HTTP",
        "ACCOUNT",
        "LATENCY",
        "EXPIRES",
    ];
    let rows: Vec<[String; 8]> = reports
        .iter()
        .map(|report| {
            let connection = &report.connection;
            let outcome = &report.outcome;
            [
                connection.name.clone(),
                format!("{}/{}", connection.kind, connection.auth),
                outcome.state.to_string(),
                outcome.reason.to_string(),
                outcome.http_status.map_or("-".into(), |s| s.to_string()),
                outcome
                    .identity
                    .as_ref()
                    .and_then(|i| i.account(connection.kind))
                    .map_or("-".into(), printable),
                format!("{}ms", outcome.latency.as_millis()),
                connection
                    .expires_at
                    .map_or("-".into(), |t| t.format("%Y-%m-%d").to_string()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    let troubled: Vec<&Report> = reports
        .iter()
        .filter(|r| r.outcome.hint.is_some())
        .collect();
    if !troubled.is_empty() {
        out.push('\n');
        for report in troubled {
            let _ = writeln!(
                out,
                "{} ({}): {}",
                report.connection.name,
                report.outcome.reason,
                report.outcome.hint.unwrap_or_default()
            );
        }
    }
    let mut counts: BTreeMap<State, usize> = BTreeMap::new();
    for report in reports {
        *counts.entry(report.outcome.state).or_default() += 1;
    }
    let summary: Vec<String> = counts
        .iter()
        .map(|(state, count)| format!("{count} {state}"))
        .collect();
    let _ = writeln!(
        out,
        "\n{} connection{}: {}",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        summary.join(", ")
    );
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
