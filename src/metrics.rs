//! `/metrics`: the Prometheus text exposition of the shared status.
//!
//! Per-connection series are rendered straight from [`Status`] at scrape time rather than kept
//! in a registry of label vectors: the status is the single source of truth, a removed
//! connection's series vanish with it, a value that is unknown is simply not written (no
//! sentinel values), and memory stays proportional to the connections, not to their series.
//! The `prometheus` crate supplies the process metrics.

use std::fmt::Write as _;

use prometheus::{Encoder as _, Registry, TextEncoder};

use crate::expiry::Assessment;
use crate::probe::State;
use crate::state::{Entry, Inner, Status};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Where HELP texts say values come from: the scrape never triggers a probe.
const BACKGROUND: &str = "from background probes, not from the scrape";

/// Renders the metrics; `process` holds the process collector.
pub struct Metrics {
    process: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// With the process metrics of this process.
    pub fn new() -> Metrics {
        let process = Registry::new();
        let collector = prometheus::process_collector::ProcessCollector::for_self();
        if let Err(error) = process.register(Box::new(collector)) {
            tracing::warn!(%error, "process metrics are unavailable");
        }
        Metrics { process }
    }

    /// The whole exposition.
    pub fn render(&self, status: &Status) -> String {
        let mut out = status.read(render_status);
        let mut process = Vec::new();
        if TextEncoder::new()
            .encode(&self.process.gather(), &mut process)
            .is_ok()
        {
            out.push_str(&String::from_utf8_lossy(&process));
        }
        out
    }
}

/// One metric family: a header, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(key);
                self.out.push_str("=\"");
                escape_into(self.out, value);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_value(value));
    }
}

/// Label values escape backslash, double quote and line feed (exposition format 0.0.4).
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

fn seconds(time: chrono::DateTime<chrono::Utc>) -> f64 {
    time.timestamp_millis() as f64 / 1000.0
}

/// A per-connection family: one sample per entry for which `value` knows a value.
fn per_connection(
    out: &mut String,
    entries: &[&Entry],
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&Entry) -> Option<f64>,
) {
    let mut family = Family::new(out, name, kind, help);
    for entry in entries {
        if let Some(v) = value(entry) {
            family.sample(name, &[("connection", &entry.connection.name)], v);
        }
    }
}

fn render_status(inner: &Inner) -> String {
    let entries: Vec<&Entry> = inner.connections.values().collect();
    // About 1,900 bytes a connection (measured at 100,000): sized once, so that a large
    // exposition is never copied into a doubled buffer halfway through.
    let mut out = String::with_capacity(4096 + entries.len() * 2048);

    let name = "credwatch_credential_state";
    let mut family = Family::new(
        &mut out,
        name,
        "gauge",
        &format!("The credential's state, {BACKGROUND}: 1 for the current state (the last verdict; unknown before any), 0 for the others."),
    );
    for entry in &entries {
        let current = entry.state();
        for state in State::ALL {
            family.sample(
                name,
                &[
                    ("connection", &entry.connection.name),
                    ("state", state.as_str()),
                ],
                f64::from(u8::from(state == current)),
            );
        }
    }

    per_connection(
        &mut out,
        &entries,
        "credwatch_probe_success",
        "gauge",
        &format!("1 if the last probe reached ok, else 0, {BACKGROUND}."),
        |e| {
            e.last
                .as_ref()
                .map(|o| f64::from(u8::from(o.reason == crate::probe::Reason::Ok)))
        },
    );
    let name = "credwatch_probe_reason";
    let mut family = Family::new(&mut out, name, "gauge",
        &format!("Always 1, labelled with the reason the last probe ended with, {BACKGROUND}; absent before the first probe."));
    for entry in &entries {
        if let Some(outcome) = &entry.last {
            family.sample(
                name,
                &[
                    ("connection", &entry.connection.name),
                    ("reason", outcome.reason.as_str()),
                ],
                1.0,
            );
        }
    }
    per_connection(
        &mut out,
        &entries,
        "credwatch_probe_duration_seconds",
        "gauge",
        &format!("How long the last probe took, {BACKGROUND}."),
        |e| e.last.as_ref().map(|o| o.latency.as_secs_f64()),
    );
    per_connection(&mut out, &entries, "credwatch_probe_http_status_code", "gauge",
        &format!("The HTTP status of the last probe's answer, {BACKGROUND}; absent when no answer arrived."),
        |e| e.last.as_ref().and_then(|o| o.http_status).map(f64::from));
    per_connection(
        &mut out,
        &entries,
        "credwatch_probes_total",
        "counter",
        &format!("Probes sent, {BACKGROUND}."),
        |e| Some(e.probes as f64),
    );

    let name = "credwatch_probe_failures_total";
    let mut family = Family::new(
        &mut out,
        name,
        "counter",
        &format!("Probes that did not reach ok, by reason, {BACKGROUND}."),
    );
    for entry in &entries {
        for (reason, count) in &entry.failures {
            family.sample(
                name,
                &[
                    ("connection", &entry.connection.name),
                    ("reason", reason.as_str()),
                ],
                *count as f64,
            );
        }
    }

    per_connection(&mut out, &entries, "credwatch_rate_limited_total", "counter",
        &format!("Probes that Jira answered with a rate limit (429, or 503 with Retry-After), {BACKGROUND}."),
        |e| Some(e.rate_limited as f64));
    per_connection(&mut out, &entries, "credwatch_rate_limit_remaining", "gauge",
        &format!("Jira's X-RateLimit-Remaining on the last probe's answer, {BACKGROUND}; absent when Jira did not send it."),
        |e| e.last.as_ref().and_then(|o| o.rate_limit.remaining).map(|r| r as f64));
    per_connection(
        &mut out,
        &entries,
        "credwatch_last_probe_timestamp_seconds",
        "gauge",
        &format!("When the last probe finished, {BACKGROUND}."),
        |e| e.last.as_ref().map(|o| seconds(o.finished_at)),
    );
    per_connection(
        &mut out,
        &entries,
        "credwatch_last_success_timestamp_seconds",
        "gauge",
        &format!("When a probe last reached ok, {BACKGROUND}; absent if none has."),
        |e| e.last_success_at.map(seconds),
    );
    per_connection(
        &mut out,
        &entries,
        "credwatch_probe_interval_seconds",
        "gauge",
        "The connection's configured probe interval (for staleness alerts).",
        |e| Some(e.connection.interval.as_secs_f64()),
    );
    per_connection(&mut out, &entries, "credwatch_next_probe_timestamp_seconds", "gauge",
        "When the next background probe is due; absent while probing is stopped (after failed Basic logins or a CAPTCHA lock).",
        |e| e.next_probe_at.map(seconds));

    let now = chrono::Utc::now();
    let expiries: Vec<Assessment> = entries.iter().map(|e| e.assessment(now)).collect();
    let name = "credwatch_token_expiry_timestamp_seconds";
    let mut family = Family::new(&mut out, name, "gauge",
        "When the credential expires, with where that is known from (source: jira, config or derived); absent while unknown.");
    for (entry, expiry) in entries.iter().zip(&expiries) {
        if let (Some(at), Some(source)) = (expiry.expires_at, expiry.source) {
            family.sample(
                name,
                &[
                    ("connection", &entry.connection.name),
                    ("source", source.as_str()),
                ],
                seconds(at),
            );
        }
    }
    let by_expiry =
        |out: &mut String, name: &str, help: &str, value: &dyn Fn(&Assessment) -> Option<f64>| {
            let mut family = Family::new(out, name, "gauge", help);
            for (entry, expiry) in entries.iter().zip(&expiries) {
                if let Some(v) = value(expiry) {
                    family.sample(name, &[("connection", &entry.connection.name)], v);
                }
            }
        };
    by_expiry(
        &mut out,
        "credwatch_token_created_timestamp_seconds",
        "When the token was created (from Jira's PAT list, or created_at); absent while unknown.",
        &|e| e.created_at.map(seconds),
    );
    by_expiry(
        &mut out,
        "credwatch_token_last_used_timestamp_seconds",
        "When Jira last saw the token used (its lastAccessedAt); absent while unknown.",
        &|e| e.last_used_at.map(seconds),
    );
    by_expiry(&mut out, "credwatch_token_rotation_due",
        "1 if rotation is due by the connection's policy (rotate_before before expiry, or older than max_token_age); absent while nothing tells.",
        &|e| e.rotation_due.map(|due| f64::from(u8::from(due))));
    by_expiry(
        &mut out,
        "credwatch_token_never_expires",
        "1 if Jira lists the token without an expiry; absent unless Jira's PAT list told.",
        &|e| e.never_expires.map(|never| f64::from(u8::from(never))),
    );
    let name = "credwatch_account_tokens";
    let mut family = Family::new(&mut out, name, "gauge",
        "The personal access tokens of the connection's account by status (active, expired, unused, never_expiring; a token may count in several), from Jira's PAT list.");
    for (entry, expiry) in entries.iter().zip(&expiries) {
        if let Some(audit) = expiry.audit {
            for (status, count) in audit.counts() {
                family.sample(
                    name,
                    &[("connection", &entry.connection.name), ("status", status)],
                    count as f64,
                );
            }
        }
    }

    let name = "credwatch_connection_info";
    let mut family = Family::new(&mut out, name, "gauge",
        "Static information about each connection, always 1: url, kind, auth, the account (as Jira reported it, else as configured) and the connection's static labels.");
    for entry in &entries {
        let connection = &entry.connection;
        let reported = entry
            .last
            .as_ref()
            .and_then(|o| o.identity.as_ref())
            .and_then(|i| i.account(connection.kind).map(str::to_owned));
        let account = reported
            .or_else(|| connection.expect_account.clone())
            .or_else(|| connection.username.clone())
            .unwrap_or_default();
        let url = connection.url.as_str().trim_end_matches('/');
        let mut labels: Vec<(&str, &str)> = vec![
            ("connection", &connection.name),
            ("url", url),
            ("kind", connection.kind.as_str()),
            ("auth", connection.auth.as_str()),
            ("account", &account),
        ];
        labels.extend(
            connection
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        family.sample(name, &labels, 1.0);
    }

    let name = "credwatch_probe_lateness_seconds";
    let mut family = Family::new(&mut out, name, "histogram",
        "How late probes started against their schedule (waiting for a concurrency permit, a busy process); late probes mean credwatch is overloaded.");
    let mut cumulative = 0;
    for (bound, count) in crate::state::LATENESS_BUCKETS
        .iter()
        .zip(inner.lateness.buckets)
    {
        cumulative += count;
        family.sample(
            "credwatch_probe_lateness_seconds_bucket",
            &[("le", &bound.to_string())],
            cumulative as f64,
        );
    }
    family.sample(
        "credwatch_probe_lateness_seconds_bucket",
        &[("le", "+Inf")],
        inner.lateness.count as f64,
    );
    family.sample(
        "credwatch_probe_lateness_seconds_sum",
        &[],
        inner.lateness.sum,
    );
    family.sample(
        "credwatch_probe_lateness_seconds_count",
        &[],
        inner.lateness.count as f64,
    );

    let name = "credwatch_connections";
    Family::new(
        &mut out,
        name,
        "gauge",
        "Connections in the running configuration.",
    )
    .sample(name, &[], entries.len() as f64);
    let name = "credwatch_config_last_reload_successful";
    Family::new(
        &mut out,
        name,
        "gauge",
        "1 if the last configuration load or reload succeeded, else 0.",
    )
    .sample(name, &[], f64::from(u8::from(inner.reload.successful)));
    let name = "credwatch_config_last_reload_success_timestamp_seconds";
    Family::new(
        &mut out,
        name,
        "gauge",
        "When the configuration was last loaded successfully.",
    )
    .sample(name, &[], seconds(inner.reload.last_success_at));
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let name = "credwatch_runtime_alive_tasks";
        Family::new(&mut out, name, "gauge", "Tasks alive in credwatch's async runtime (one per connection, plus the server's): growth with a stable configuration is a leak.")
            .sample(name, &[], runtime.metrics().num_alive_tasks() as f64);
    }
    let name = "credwatch_build_info";
    Family::new(&mut out, name, "gauge", "credwatch's version, always 1.").sample(
        name,
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape_into(&mut out, "a\\b\"c\nd");
        assert_eq!(out, "a\\\\b\\\"c\\nd");
    }

    #[test]
    fn values_print_as_prometheus_reads_them() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(1_796_337_314.728), "1796337314.728");
    }
}
