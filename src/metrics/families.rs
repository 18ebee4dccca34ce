//! The per-connection metric families: what each writes for one connection, from a [`Row`]
//! copied out of the connection's entry once per scrape.

use chrono::{DateTime, Utc};

use super::text::{flag, seconds, Family};
use crate::expiry::{Assessment, Audit, Source};
use crate::probe::{Reason, State};
use crate::state::Entry;

/// Where HELP texts say values come from: the scrape never triggers a probe.
macro_rules! background {
    () => {
        "from background probes, not from the scrape"
    };
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
pub(super) struct Row {
    /// Where the connection's name ends in the names string (it starts where the last ends).
    pub(super) name_end: usize,
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
    pub(super) fn new(entry: &Entry, name_end: usize, now: DateTime<Utc>) -> Row {
        Row {
            name_end,
            state: entry.state(),
            last: entry.memory.last.as_ref().map(|o| Last {
                reason: o.reason,
                latency: o.latency.as_secs_f64(),
                http_status: o.http_status,
                finished_at: o.finished_at,
                remaining: o.rate_limit.remaining,
            }),
            probes: entry.probes,
            failed: !entry.failures.is_empty(),
            rate_limited: entry.rate_limited,
            last_success_at: entry.memory.last_success_at,
            interval: entry.connection.settings.interval.as_secs_f64(),
            next_probe_at: entry.memory.schedule.next_probe_at,
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
pub(super) struct Item<'a> {
    pub(super) name: &'a str,
    pub(super) row: &'a Row,
    /// The whole entry, for the few families that need more than the row.
    pub(super) entry: &'a Entry,
}

/// A per-connection metric family: `write` adds the samples of one connection.
pub(super) struct PerConnection {
    pub(super) name: &'static str,
    pub(super) kind: &'static str,
    pub(super) help: &'static str,
    pub(super) write: fn(&mut Family<'_>, &Item<'_>),
}

/// Every per-connection family, in the order they are exposed.
pub(super) const FAMILIES: &[PerConnection] = &[
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
        help: "When the credential expires, with where that is known from (source: jira, org_admin, config or derived); absent while unknown.",
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
        help: "Static information about each connection, always 1: url, atlassian_product, kind, auth, the account (as Jira reported it, else as configured) and the connection's static labels.",
        write: |family, item| {
            let entry = item.entry;
            let connection = &entry.connection;
            let account = entry
                .memory.last
                .as_ref()
                .and_then(|o| o.identity.as_ref())
                .and_then(|i| i.account(connection.settings.kind))
                .or(connection.settings.expect_account.as_deref())
                .or(connection.settings.login())
                .unwrap_or_default();
            let url = connection.url.as_str().trim_end_matches('/');
            let mut labels: Vec<(&str, &str)> = vec![
                ("connection", item.name),
                ("url", url),
                ("atlassian_product", connection.settings.product.as_str()),
                ("kind", connection.settings.kind.as_str()),
                ("auth", connection.settings.auth.as_str()),
                ("account", account),
            ];
            labels.extend(connection.settings.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            family.sample(&labels, 1.0);
        },
    },
];
