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

mod families;
mod orgs;
mod text;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body::{Body, Frame, SizeHint};
use prometheus::{Encoder as _, Registry, TextEncoder};

use families::{Item, Row, FAMILIES};
use text::{flag, seconds, Family};

use crate::state::{Board, Snapshot};

/// The content type of the text exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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
pub(crate) struct Metrics {
    process: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// With the process metrics of this process.
    pub(crate) fn new() -> Metrics {
        let process = Registry::new();
        let collector = prometheus::process_collector::ProcessCollector::for_self();
        if let Err(error) = process.register(Box::new(collector)) {
            tracing::warn!(%error, "process metrics are unavailable");
        }
        Metrics { process }
    }

    /// The exposition of the status as it is now, rendered as it is sent.
    pub(crate) fn exposition(&self, status: &Board) -> Exposition {
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

    /// The whole exposition as one string (for the unit tests).
    #[cfg(test)]
    pub(crate) fn render(&self, status: &Board) -> String {
        self.exposition(status).collect()
    }
}

/// The exposition of one snapshot, rendered chunk by chunk as the server sends it: an
/// iterator of text chunks, and a response body.
pub(crate) struct Exposition {
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
        let shard = self.snapshot.group.shard;
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
        let replica = self.snapshot.group.replica;
        Family::new(
            out,
            "credwatch_replicas",
            "gauge",
            "The number of replicas of an HA group that watch this shard's connections (1 without --replica).",
        )
        .sample(&[], f64::from(replica.map_or(1, |r| r.count)));
        Family::new(
            out,
            "credwatch_replica_info",
            "gauge",
            "This process's replica in its HA group (0 without --replica) and its shard, always 1: count the replicas of each shard that report against credwatch_replicas.",
        )
        .sample(
            &[
                ("shard", &shard.index.to_string()),
                ("credwatch_replica", &replica.map_or(0, |r| r.index).to_string()),
            ],
            1.0,
        );
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
        orgs::render(out, &self.snapshot.orgs, self.now);
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

    use crate::probe::{Outcome, RateLimit, Reason, State};
    use crate::state::Probed;

    /// A status of `n` connections, `c00000`...; every third one has been probed.
    fn fleet(n: usize) -> Board {
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
        let status = Board::new();
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
            token_request: crate::probe::TokenRequest::None,
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
        let text = Metrics::new().render(&Board::new());
        let families = families(&text);
        for family in FAMILIES.iter().map(|f| f.name) {
            assert!(families[family].is_empty(), "{family} has samples");
        }
        assert_eq!(sample(&text, "credwatch_connections "), Some("0".into()));
    }
}
