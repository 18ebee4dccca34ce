//! `/metrics`: the Prometheus text exposition of the shared status.
//!
//! Per-connection series are rendered straight from the status at scrape time rather than kept
//! in a registry of label vectors: the status is the single source of truth, a removed
//! connection's series vanish with it, a value that is unknown is simply not written (no
//! sentinel values), and memory stays proportional to the connections, not to their series.
//! The `prometheus` crate supplies the process metrics.
//!
//! A scrape renders from a [`Snapshot`] (the lock is held only to copy one pointer per
//! connection) and streams: [`Exposition`] is a response body that renders the next chunk of
//! about 256 KiB only when the server has room to send it. At 100,000 connections the
//! exposition is about 180 MiB; it is never held whole in memory, no probe waits for it, and
//! its cost grows linearly with the number of connections.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body::{Body, Frame, SizeHint};
use prometheus::{Encoder as _, Registry, TextEncoder};

use crate::expiry::{Assessment, Audit, Source};
use crate::probe::{Reason, State};
use crate::state::{Entry, Snapshot, Status};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Where HELP texts say values come from: the scrape never triggers a probe.
macro_rules! background {
    () => {
        "from background probes, not from the scrape"
    };
}

/// A chunk is sent once it holds this many bytes.
const CHUNK_BYTES: usize = 256 * 1024;

/// Connections rendered in one step of one family (well under a millisecond of work).
const STEP: usize = 256;

/// The process's user and system CPU time, in seconds, to the clock tick (10 ms on Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    let ticks = procfs::ticks_per_second();
    (ticks > 0).then(|| (stat.utime + stat.stime) as f64 / ticks as f64)
}

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

    /// The exposition of the status as it is now, rendered as it is sent.
    pub fn exposition(&self, status: &Status) -> Exposition {
        // The collector's CPU counter counts whole seconds (prometheus 0.14 divides clock
        // ticks by the tick rate in integers): it is replaced by one with the ticks' precision.
        let families: Vec<_> = self
            .process
            .gather()
            .into_iter()
            .filter(|family| family.name() != "process_cpu_seconds_total")
            .collect();
        let mut process = Vec::new();
        let mut process = match TextEncoder::new().encode(&families, &mut process) {
            Ok(()) => String::from_utf8_lossy(&process).into_owned(),
            Err(_) => String::new(),
        };
        if let Some(seconds) = cpu_seconds() {
            Family::new(
                &mut process,
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
            )
            .sample(&[], seconds);
        }
        Exposition {
            snapshot: status.snapshot(),
            now: Utc::now(),
            rows: Vec::new(),
            names: String::new(),
            family: 0,
            next: 0,
            process,
            done: false,
        }
    }

    /// The whole exposition as one string (for tests and small fleets).
    pub fn render(&self, status: &Status) -> String {
        self.exposition(status).collect()
    }
}

/// One metric family: a header, then its samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out, name }
    }

    /// A family whose header is already written.
    fn resume(out: &'a mut String, name: &'static str) -> Family<'a> {
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.sample_named(self.name, labels, value);
    }

    fn sample_named(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
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
        self.out.push(' ');
        write_value(self.out, value);
        self.out.push('\n');
    }

    /// A sample labelled with the connection's name alone; none while the value is unknown
    /// (never a sentinel).
    fn connection(&mut self, item: &Item<'_>, value: impl Into<Option<f64>>) {
        if let Some(value) = value.into() {
            self.sample(&[("connection", item.name)], value);
        }
    }
}

/// Label values escape backslash, double quote and line feed (exposition format 0.0.4).
fn escape_into(out: &mut String, value: &str) {
    if !value.contains(['\\', '"', '\n']) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes a sample value as Prometheus reads it: whole numbers without a fraction.
fn write_value(out: &mut String, value: f64) {
    let _ = if value.fract() == 0.0 && value.abs() < 1e15 {
        write!(out, "{}", value as i64)
    } else {
        write!(out, "{value}")
    };
}

fn seconds(time: DateTime<Utc>) -> f64 {
    time.timestamp_millis() as f64 / 1000.0
}

fn flag(on: bool) -> f64 {
    f64::from(u8::from(on))
}

/// What the expiry families need of a connection's [`Assessment`], without its token list.
#[derive(Debug, Clone, Copy)]
struct Expiry {
    expires_at: Option<(DateTime<Utc>, Source)>,
    created_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    rotation_due: Option<bool>,
    never_expires: Option<bool>,
    audit: Option<Audit>,
}

impl From<Assessment> for Expiry {
    fn from(a: Assessment) -> Expiry {
        Expiry {
            expires_at: a.expires_at.zip(a.source),
            created_at: a.created_at,
            last_used_at: a.last_used_at,
            rotation_due: a.rotation_due,
            never_expires: a.never_expires,
            audit: a.audit,
        }
    }
}

/// What most families need of a connection, copied out of its entry in the first pass.
///
/// Rendering reads every connection once per family; at 100,000 connections the entries are
/// spread over half a gigabyte, and chasing three pointers per sample to them made the render
/// grow faster than the fleet. Rows sit side by side, and so do the names (in one string), so
/// later passes read memory in order.
#[derive(Debug, Clone, Copy)]
struct Row {
    /// Where the connection's name ends in the names string (it starts where the last ends).
    name_end: usize,
    state: State,
    last: Option<Last>,
    probes: u64,
    /// Whether any probe failed (the counts by reason are read from the entry).
    failed: bool,
    rate_limited: u64,
    last_success_at: Option<DateTime<Utc>>,
    interval: f64,
    next_probe_at: Option<DateTime<Utc>>,
    expiry: Expiry,
}

impl Row {
    fn new(entry: &Entry, name_end: usize, now: DateTime<Utc>) -> Row {
        Row {
            name_end,
            state: entry.state(),
            last: entry.last.as_ref().map(|o| Last {
                reason: o.reason,
                latency: o.latency.as_secs_f64(),
                http_status: o.http_status,
                finished_at: o.finished_at,
                remaining: o.rate_limit.remaining,
            }),
            probes: entry.probes,
            failed: !entry.failures.is_empty(),
            rate_limited: entry.rate_limited,
            last_success_at: entry.last_success_at,
            interval: entry.connection.settings.interval.as_secs_f64(),
            next_probe_at: entry.next_probe_at,
            expiry: Expiry::from(entry.assessment(now)),
        }
    }
}

/// What the families need of a connection's last probe.
#[derive(Debug, Clone, Copy)]
struct Last {
    reason: Reason,
    latency: f64,
    http_status: Option<u16>,
    finished_at: DateTime<Utc>,
    /// Jira's X-RateLimit-Remaining.
    remaining: Option<u64>,
}

/// One connection, as a family's `write` sees it.
struct Item<'a> {
    name: &'a str,
    row: &'a Row,
    /// The whole entry, for the few families that need more than the row.
    entry: &'a Entry,
}

/// A per-connection metric family: `write` adds the samples of one connection.
struct PerConnection {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    write: fn(&mut Family<'_>, &Item<'_>),
}

/// Every per-connection family, in the order they are exposed.
const FAMILIES: &[PerConnection] = &[
    PerConnection {
        name: "credwatch_credential_state",
        kind: "gauge",
        help: concat!("The credential's state, ", background!(), ": 1 for the current state (the last verdict; unknown before any), 0 for the others."),
        write: |family, item| {
            for state in State::ALL {
                family.sample(
                    &[("connection", item.name), ("state", state.as_str())],
                    flag(state == item.row.state),
                );
            }
        },
    },
    PerConnection {
        name: "credwatch_probe_success",
        kind: "gauge",
        help: concat!("1 if the last probe reached ok, else 0, ", background!(), "."),
        write: |family, item| family.connection(item, item.row.last.map(|last| flag(last.reason == Reason::Ok))),
    },
    PerConnection {
        name: "credwatch_probe_reason",
        kind: "gauge",
        help: concat!("Always 1, labelled with the reason the last probe ended with, ", background!(), "; absent before the first probe."),
        write: |family, item| {
            if let Some(last) = item.row.last {
                family.sample(&[("connection", item.name), ("reason", last.reason.as_str())], 1.0);
            }
        },
    },
    PerConnection {
        name: "credwatch_probe_duration_seconds",
        kind: "gauge",
        help: concat!("How long the last probe took, ", background!(), "."),
        write: |family, item| family.connection(item, item.row.last.map(|last| last.latency)),
    },
    PerConnection {
        name: "credwatch_probe_http_status_code",
        kind: "gauge",
        help: concat!("The HTTP status of the last probe's answer, ", background!(), "; absent when no answer arrived."),
        write: |family, item| family.connection(item, item.row.last.and_then(|l| l.http_status).map(f64::from)),
    },
    PerConnection {
        name: "credwatch_probes_total",
        kind: "counter",
        help: concat!("Probes sent, ", background!(), "."),
        write: |family, item| family.connection(item, item.row.probes as f64),
    },
    PerConnection {
        name: "credwatch_probe_failures_total",
        kind: "counter",
        help: concat!("Probes that did not reach ok, by reason, ", background!(), "."),
        write: |family, item| {
            if !item.row.failed {
                return; // nothing to read from the entry
            }
            for (reason, count) in &item.entry.failures {
                family.sample(&[("connection", item.name), ("reason", reason.as_str())], *count as f64);
            }
        },
    },
    PerConnection {
        name: "credwatch_rate_limited_total",
        kind: "counter",
        help: concat!("Probes that Jira answered with a rate limit (429, or 503 with Retry-After), ", background!(), "."),
        write: |family, item| family.connection(item, item.row.rate_limited as f64),
    },
    PerConnection {
        name: "credwatch_rate_limit_remaining",
        kind: "gauge",
        help: concat!("Jira's X-RateLimit-Remaining on the last probe's answer, ", background!(), "; absent when Jira did not send it."),
        write: |family, item| family.connection(item, item.row.last.and_then(|l| l.remaining).map(|remaining| remaining as f64)),
    },
    PerConnection {
        name: "credwatch_last_probe_timestamp_seconds",
        kind: "gauge",
        help: concat!("When the last probe finished, ", background!(), "."),
        write: |family, item| family.connection(item, item.row.last.map(|last| seconds(last.finished_at))),
    },
    PerConnection {
        name: "credwatch_last_success_timestamp_seconds",
        kind: "gauge",
        help: concat!("When a probe last reached ok, ", background!(), "; absent if none has."),
        write: |family, item| family.connection(item, item.row.last_success_at.map(seconds)),
    },
    PerConnection {
        name: "credwatch_probe_interval_seconds",
        kind: "gauge",
        help: "The connection's configured probe interval (for staleness alerts).",
        write: |family, item| family.connection(item, item.row.interval),
    },
    PerConnection {
        name: "credwatch_next_probe_timestamp_seconds",
        kind: "gauge",
        help: "When the next background probe is due; absent while probing is stopped (after failed Basic logins or a CAPTCHA lock).",
        write: |family, item| family.connection(item, item.row.next_probe_at.map(seconds)),
    },
    PerConnection {
        name: "credwatch_token_expiry_timestamp_seconds",
        kind: "gauge",
        help: "When the credential expires, with where that is known from (source: jira, config or derived); absent while unknown.",
        write: |family, item| {
            if let Some((at, source)) = item.row.expiry.expires_at {
                family.sample(&[("connection", item.name), ("source", source.as_str())], seconds(at));
            }
        },
    },
    PerConnection {
        name: "credwatch_token_created_timestamp_seconds",
        kind: "gauge",
        help: "When the token was created (from Jira's PAT list, or created_at); absent while unknown.",
        write: |family, item| family.connection(item, item.row.expiry.created_at.map(seconds)),
    },
    PerConnection {
        name: "credwatch_token_last_used_timestamp_seconds",
        kind: "gauge",
        help: "When Jira last saw the token used (its lastAccessedAt); absent while unknown.",
        write: |family, item| family.connection(item, item.row.expiry.last_used_at.map(seconds)),
    },
    PerConnection {
        name: "credwatch_token_rotation_due",
        kind: "gauge",
        help: "1 if rotation is due by the connection's policy (rotate_before before expiry, or older than max_token_age); absent while nothing tells.",
        write: |family, item| family.connection(item, item.row.expiry.rotation_due.map(flag)),
    },
    PerConnection {
        name: "credwatch_token_never_expires",
        kind: "gauge",
        help: "1 if Jira lists the token without an expiry; absent unless Jira's PAT list told.",
        write: |family, item| family.connection(item, item.row.expiry.never_expires.map(flag)),
    },
    PerConnection {
        name: "credwatch_account_tokens",
        kind: "gauge",
        help: "The personal access tokens of the connection's account by status (active, expired, unused, never_expiring; a token may count in several), from Jira's PAT list.",
        write: |family, item| {
            if let Some(audit) = item.row.expiry.audit {
                for (status, count) in audit.counts() {
                    family.sample(&[("connection", item.name), ("status", status)], count as f64);
                }
            }
        },
    },
    PerConnection {
        name: "credwatch_connection_info",
        kind: "gauge",
        help: "Static information about each connection, always 1: url, kind, auth, the account (as Jira reported it, else as configured) and the connection's static labels.",
        write: |family, item| {
            let entry = item.entry;
            let connection = &entry.connection;
            let account = entry
                .last
                .as_ref()
                .and_then(|o| o.identity.as_ref())
                .and_then(|i| i.account(connection.settings.kind))
                .or(connection.settings.expect_account.as_deref())
                .or(connection.settings.username.as_deref())
                .unwrap_or_default();
            let url = connection.url.as_str().trim_end_matches('/');
            let mut labels: Vec<(&str, &str)> = vec![
                ("connection", item.name),
                ("url", url),
                ("kind", connection.settings.kind.as_str()),
                ("auth", connection.settings.auth.as_str()),
                ("account", account),
            ];
            labels.extend(connection.settings.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            family.sample(&labels, 1.0);
        },
    },
];

/// The exposition of one snapshot, rendered chunk by chunk as the server sends it: an
/// iterator of text chunks, and a response body.
pub struct Exposition {
    snapshot: Snapshot,
    now: DateTime<Utc>,
    /// Each connection's row, made during the first family's pass.
    rows: Vec<Row>,
    /// Every connection's name, one after the other (see [`Row::name_end`]).
    names: String,
    /// The family being rendered (an index into [`FAMILIES`]; past its end, the rest).
    family: usize,
    /// The next connection of that family.
    next: usize,
    /// The process metrics, gathered at the start of the scrape.
    process: String,
    done: bool,
}

impl Exposition {
    /// Renders the next `STEP` connections of the current family, or the process-wide
    /// families once every per-connection family is done.
    fn step(&mut self, out: &mut String) {
        let Some(family) = FAMILIES.get(self.family) else {
            self.render_rest(out);
            self.done = true;
            return;
        };
        let entries = &self.snapshot.entries;
        let end = entries.len().min(self.next + STEP);
        for entry in &entries[self.rows.len().min(end)..end] {
            self.names.push_str(&entry.connection.name);
            self.rows.push(Row::new(entry, self.names.len(), self.now));
        }
        let mut writer = if self.next == 0 {
            Family::new(out, family.name, family.kind, family.help)
        } else {
            Family::resume(out, family.name)
        };
        let mut start = match self.next {
            0 => 0,
            next => self.rows[next - 1].name_end,
        };
        for (row, entry) in self.rows[self.next..end]
            .iter()
            .zip(&entries[self.next..end])
        {
            let item = Item {
                name: &self.names[start..row.name_end],
                row,
                entry,
            };
            (family.write)(&mut writer, &item);
            start = row.name_end;
        }
        if end == entries.len() {
            self.family += 1;
            self.next = 0;
        } else {
            self.next = end;
        }
    }

    /// The families that are not per connection, and the process metrics.
    fn render_rest(&mut self, out: &mut String) {
        let lateness = &self.snapshot.lateness;
        let name = "credwatch_probe_lateness_seconds";
        let mut family = Family::new(out, name, "histogram",
            "How late probes started against their schedule (waiting for a concurrency permit, a busy process); late probes mean credwatch is overloaded.");
        let mut cumulative = 0;
        for (bound, count) in crate::state::LATENESS_BUCKETS.iter().zip(lateness.buckets) {
            cumulative += count;
            family.sample_named(
                "credwatch_probe_lateness_seconds_bucket",
                &[("le", &bound.to_string())],
                cumulative as f64,
            );
        }
        family.sample_named(
            "credwatch_probe_lateness_seconds_bucket",
            &[("le", "+Inf")],
            lateness.count as f64,
        );
        family.sample_named("credwatch_probe_lateness_seconds_sum", &[], lateness.sum);
        family.sample_named(
            "credwatch_probe_lateness_seconds_count",
            &[],
            lateness.count as f64,
        );

        Family::new(
            out,
            "credwatch_connections",
            "gauge",
            "Connections in the running configuration.",
        )
        .sample(&[], self.snapshot.entries.len() as f64);
        let shard = self.snapshot.shard;
        Family::new(
            out,
            "credwatch_shards",
            "gauge",
            "The number of shards the fleet is split into (1 without sharding).",
        )
        .sample(&[], f64::from(shard.count));
        Family::new(
            out,
            "credwatch_shard_info",
            "gauge",
            "This replica's shard (0 without sharding), always 1: count the shards that report against credwatch_shards.",
        )
        .sample(&[("shard", &shard.index.to_string())], 1.0);
        let reload = &self.snapshot.reload;
        Family::new(
            out,
            "credwatch_config_last_reload_successful",
            "gauge",
            "1 if the last configuration load or reload succeeded, else 0.",
        )
        .sample(&[], flag(reload.successful));
        Family::new(
            out,
            "credwatch_config_last_reload_success_timestamp_seconds",
            "gauge",
            "When the configuration was last loaded successfully.",
        )
        .sample(&[], seconds(reload.last_success_at));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            Family::new(out, "credwatch_runtime_alive_tasks", "gauge", "Tasks alive in credwatch's async runtime (one per connection, plus the server's): growth with a stable configuration is a leak.")
                .sample(&[], runtime.metrics().num_alive_tasks() as f64);
        }
        Family::new(
            out,
            "credwatch_build_info",
            "gauge",
            "credwatch's version, the commit it was built from and its compiler, always 1.",
        )
        .sample(
            &[
                ("version", crate::build::VERSION),
                ("revision", crate::build::REVISION),
                ("rustc", crate::build::RUSTC),
            ],
            1.0,
        );
        out.push_str(&self.process);
    }
}

impl Iterator for Exposition {
    type Item = String;

    /// The next chunk of about `CHUNK_BYTES`; `None` once everything is rendered.
    fn next(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        let mut out = String::with_capacity(CHUNK_BYTES + 64 * 1024);
        while !self.done && out.len() < CHUNK_BYTES {
            self.step(&mut out);
        }
        Some(out)
    }
}

impl Body for Exposition {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        // Each chunk is a bounded piece of work, and the server polls for the next one only
        // when it has sent the last: the render paces itself to the scraper.
        Poll::Ready(
            self.get_mut()
                .next()
                .map(|chunk| Ok(Frame::data(Bytes::from(chunk)))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::{BTreeMap, HashSet};
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    use crate::probe::{Outcome, RateLimit};
    use crate::state::Probed;

    /// A status of `n` connections, `c00000`...; every third one has been probed.
    fn fleet(n: usize) -> Status {
        let text: String = (0..n)
            .map(|i| {
                format!(
                    "[[connection]]\nname = \"c{i:05}\"\nurl = \"https://jira{}.example.com\"\nauth = \"pat\"\ntoken = \"t\"\n",
                    i % 7
                )
            })
            .collect();
        let config =
            crate::config::Config::from_sources(&[("t.toml".into(), text)]).expect("loads");
        let status = Status::new();
        for (i, connection) in config.connections.into_iter().enumerate() {
            let name = connection.name.clone();
            status.insert(Arc::new(connection), Some(Utc::now()), Default::default());
            if i % 3 == 0 {
                status.record_probe(&name, Probed::outcome(ok()));
            }
        }
        status
    }

    fn ok() -> Outcome {
        Outcome {
            state: State::Valid,
            reason: Reason::Ok,
            http_status: Some(200),
            latency: Duration::from_millis(12),
            identity: None,
            rate_limit: RateLimit::default(),
            retry_after: None,
            hint: None,
            detail: None,
            finished_at: Utc::now(),
        }
    }

    /// Each family's samples, by family, checking that no family is split or repeated.
    fn families(text: &str) -> BTreeMap<String, Vec<String>> {
        let mut families: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                current = rest.split(' ').next().expect("a name").to_owned();
                assert!(
                    families.insert(current.clone(), Vec::new()).is_none(),
                    "{current} is exposed twice"
                );
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().expect("a name");
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix).filter(|b| *b == current))
                    .unwrap_or(name);
                assert_eq!(base, current, "a sample outside its family: {line}");
                families
                    .get_mut(&current)
                    .expect("a family")
                    .push(line.to_owned());
            }
        }
        families
    }

    fn sample(text: &str, line_start: &str) -> Option<String> {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    }

    #[test]
    fn a_large_exposition_streams_in_bounded_chunks_with_every_family_whole() {
        let status = fleet(3000);
        let chunks: Vec<String> = Metrics::new().exposition(&status).collect();
        assert!(chunks.len() > 3, "{} chunks", chunks.len());
        for chunk in &chunks {
            assert!(
                chunk.len() <= CHUNK_BYTES + 64 * 1024,
                "a chunk of {} bytes",
                chunk.len()
            );
        }
        let text = chunks.concat();
        let families = families(&text);
        let names = |family: &str| -> HashSet<String> {
            families[family]
                .iter()
                .map(|l| l.split('"').nth(1).expect("a connection label").to_owned())
                .collect()
        };
        for family in FAMILIES.iter().map(|f| f.name) {
            assert!(families.contains_key(family), "{family} is missing");
        }
        assert_eq!(
            families["credwatch_credential_state"].len(),
            3000 * State::ALL.len()
        );
        assert_eq!(families["credwatch_probes_total"].len(), 3000);
        assert_eq!(names("credwatch_connection_info").len(), 3000);
        assert_eq!(families["credwatch_probe_success"].len(), 1000);
        assert_eq!(sample(&text, "credwatch_connections "), Some("3000".into()));
        assert!(families.contains_key("process_cpu_seconds_total"));
    }

    #[test]
    fn a_scrape_in_progress_holds_no_lock_and_shows_one_moment() {
        let status = fleet(3000);
        let mut exposition = Metrics::new().exposition(&status);
        let mut text = exposition.next().expect("a first chunk");

        // Mid-scrape, another thread changes the status: were the lock held, it would wait.
        let (done, finished) = mpsc::channel();
        let writer = status.clone();
        std::thread::spawn(move || {
            writer.record_probe("c00000", Probed::outcome(ok()));
            writer.remove("c00001");
            let config = crate::config::Config::from_sources(&[(
                "t.toml".into(),
                "[[connection]]\nname = \"new\"\nurl = \"https://jira.example.com\"\nauth = \"pat\"\ntoken = \"t\"\n".into(),
            )])
            .expect("loads");
            writer.insert(
                Arc::new(config.connections[0].clone()),
                Some(Utc::now()),
                Default::default(),
            );
            let _ = done.send(());
        });
        finished
            .recv_timeout(Duration::from_secs(10))
            .expect("the status can be updated while a scrape is in progress");

        text.extend(exposition);
        let probes = "credwatch_probes_total{connection=\"c00000\"} ";
        assert_eq!(
            sample(&text, probes),
            Some("1".into()),
            "the scrape's snapshot"
        );
        assert!(text.contains("connection=\"c00001\""));
        assert!(!text.contains("connection=\"new\""));
        assert_eq!(sample(&text, "credwatch_connections "), Some("3000".into()));

        let after = Metrics::new().render(&status);
        assert_eq!(
            sample(&after, probes),
            Some("2".into()),
            "the next scrape sees the change"
        );
        assert!(!after.contains("connection=\"c00001\""));
        assert!(after.contains("connection=\"new\""));
        families(&after);
    }

    #[test]
    fn an_empty_status_still_exposes_every_family_header() {
        let text = Metrics::new().render(&Status::new());
        let families = families(&text);
        for family in FAMILIES.iter().map(|f| f.name) {
            assert!(families[family].is_empty(), "{family} has samples");
        }
        assert_eq!(sample(&text, "credwatch_connections "), Some("0".into()));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape_into(&mut out, "a\\b\"c\nd");
        assert_eq!(out, "a\\\\b\\\"c\\nd");
        out.clear();
        escape_into(&mut out, "plain-name.1");
        assert_eq!(out, "plain-name.1");
    }

    #[test]
    fn values_print_as_prometheus_reads_them() {
        let value = |v: f64| {
            let mut out = String::new();
            write_value(&mut out, v);
            out
        };
        assert_eq!(value(1.0), "1");
        assert_eq!(value(0.25), "0.25");
        assert_eq!(value(1_796_337_314.728), "1796337314.728");
        assert_eq!(value(-3.0), "-3");
    }
}
