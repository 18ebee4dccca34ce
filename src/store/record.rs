//! The one serialised form of a connection's [`Memory`], as JSON in its row of the state
//! store: the standing verdict, the last probe, the expiry facts, the login count and any
//! pause, a pending confirmation, the backoff and the schedule. Never a secret: the row is keyed by the connection's name
//! and a keyed digest of its credential ([`super::Store::identity`]), and nothing here holds
//! the credential or anything derived from it.
//!
//! Every field has a default, so a row written by an older credwatch of the same format
//! reads; a newer format is refused as a whole by the store's version.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Connection;
use crate::expiry::TokenList;
use crate::probe::{GatewayTry, Identity, Outcome, RateLimit, Reason, State};
use crate::state::Pause;
use crate::state::{Memory, Pending, Schedule, Standing};

/// One connection's row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    /// The standing verdict.
    pub verdict: Option<Standing>,
    /// A rejection waiting for its confirmation.
    pub pending: Option<Pending>,
    /// The last probe.
    pub last: Option<LastProbe>,
    /// When a probe last reached `ok`.
    pub last_success_at: Option<DateTime<Utc>>,
    /// What Jira's PAT API last said.
    pub tokens: Option<TokenList>,
    /// The backoff wait, in milliseconds.
    pub backoff_ms: Option<u64>,
    /// The wait that keeps the rhythm, in milliseconds.
    pub period_ms: u64,
    /// Consecutive failed Basic logins (the login budget itself is kept apart, see
    /// [`super::logins`]).
    pub failed_logins: u32,
    /// Why probing stopped.
    pub paused: Option<Pause>,
    /// When the next probe was due (`next_due` in rows of format 2 and before).
    #[serde(alias = "next_due")]
    pub next_probe_at: Option<DateTime<Utc>>,
    /// What the API gateway said of this credential after the site rejected it (the row is
    /// the credential's: a new secret starts without it).
    pub gateway: Option<GatewayRecord>,
    /// When the gateway was last asked (it is asked again `gateway_recheck_interval` later).
    pub gateway_asked_at: Option<DateTime<Utc>>,
}

/// [`GatewayTry`] as the row keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayRecord {
    /// The gateway accepted the token as this account.
    Accepted(Account),
    /// It rejected it too.
    Rejected,
}

/// The last probe, without what only matters at the moment (rate-limit headers,
/// `Retry-After`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastProbe {
    /// Its state.
    pub state: State,
    /// Its reason.
    pub reason: Reason,
    /// The answer's HTTP status.
    pub http_status: Option<u16>,
    /// How long it took.
    pub latency_ms: u64,
    /// What it saw, in a few words (secret-free by construction, see `probe::classify`).
    pub detail: Option<String>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// The account Jira reported.
    pub account: Option<Account>,
}

/// The account Jira reported, field for field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Account {
    /// Server/DC user name.
    pub name: Option<String>,
    /// Server/DC user key.
    pub key: Option<String>,
    /// Cloud account id.
    pub account_id: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Whether the account is active.
    pub active: Option<bool>,
}

impl Account {
    fn of(identity: &Identity) -> Account {
        Account {
            name: identity.name.clone(),
            key: identity.key.clone(),
            account_id: identity.account_id.clone(),
            display_name: identity.display_name.clone(),
            email: identity.email.clone(),
            active: identity.active,
        }
    }

    fn identity(self) -> Arc<Identity> {
        Arc::new(Identity {
            name: self.name,
            key: self.key,
            account_id: self.account_id,
            display_name: self.display_name,
            email: self.email,
            active: self.active,
            ..Identity::default()
        })
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Record {
    /// The row for what is known of a connection now.
    pub fn of(memory: &Memory) -> Record {
        let schedule = &memory.schedule;
        Record {
            verdict: memory.verdict,
            pending: memory.pending,
            last: memory.last.as_ref().map(|o| LastProbe {
                state: o.state,
                reason: o.reason,
                http_status: o.http_status,
                latency_ms: millis(o.latency),
                detail: o.detail.clone(),
                finished_at: o.finished_at,
                account: o.identity.as_deref().map(Account::of),
            }),
            last_success_at: memory.last_success_at,
            tokens: memory.tokens.as_deref().cloned(),
            backoff_ms: schedule.backoff.map(millis),
            period_ms: millis(schedule.period),
            failed_logins: schedule.failed_logins,
            paused: schedule.paused,
            next_probe_at: schedule.next_probe_at,
            gateway_asked_at: match &memory.gateway {
                Some(GatewayTry::Accepted(_, asked_at)) => Some(*asked_at),
                _ => None,
            },
            gateway: memory.gateway.as_ref().map(|tried| match tried {
                GatewayTry::Accepted(identity, _) => GatewayRecord::Accepted(Account::of(identity)),
                GatewayTry::Rejected => GatewayRecord::Rejected,
            }),
        }
    }

    /// What the connection's new task starts from (its hints are the connection's).
    pub fn restore(self, connection: &Connection) -> Memory {
        let last = self.last.map(|last| Outcome {
            state: last.state,
            reason: last.reason,
            http_status: last.http_status,
            latency: Duration::from_millis(last.latency_ms),
            identity: last.account.map(Account::identity),
            rate_limit: RateLimit::default(),
            retry_after: None,
            hint: last.reason.hint(connection.settings.credential_type()),
            detail: last.detail,
            finished_at: last.finished_at,
            token_request: crate::probe::TokenRequest::None,
        });
        Memory {
            verdict: self.verdict,
            pending: self.pending,
            last,
            last_success_at: self.last_success_at,
            tokens: self.tokens.map(Arc::new),
            schedule: Schedule {
                next_probe_at: self.next_probe_at,
                backoff: self.backoff_ms.map(Duration::from_millis),
                period: Duration::from_millis(self.period_ms),
                failed_logins: self.failed_logins,
                paused: self.paused,
            },
            gateway: self.gateway.map(|tried| match tried {
                GatewayRecord::Accepted(account) => GatewayTry::Accepted(
                    account.identity(),
                    // A row written before the time was kept: asked again at the next rejection.
                    self.gateway_asked_at.unwrap_or(DateTime::<Utc>::MIN_UTC),
                ),
                GatewayRecord::Rejected => GatewayTry::Rejected,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_of_an_older_credwatch_reads_and_a_memory_goes_round() {
        // Format 1 and 2 rows name the due time `next_due`.
        let old: Record = serde_json::from_str(
            r#"{"period_ms":300000,"failed_logins":1,"paused":"failed_logins","next_due":"2026-12-01T10:00:00Z"}"#,
        )
        .expect("reads");
        let due = "2026-12-01T10:00:00Z".parse().ok();
        assert_eq!(old.next_probe_at, due);
        let connection = crate::config::Config::from_sources(&[(
            "t.toml".into(),
            "[[connection]]\nname = \"c\"\nurl = \"https://jira.example.com\"\ntoken = \"t\"\n"
                .to_owned(),
        )])
        .expect("loads")
        .connections
        .remove(0);
        let memory = old.restore(&connection);
        assert_eq!(memory.schedule.next_probe_at, due);
        assert_eq!(memory.schedule.paused, Some(Pause::FailedLogins));
        // What is written is what is read back.
        let again = Record::of(&memory);
        let text = serde_json::to_string(&again).expect("writes");
        assert!(text.contains("\"next_probe_at\""), "{text}");
        let read: Record = serde_json::from_str(&text).expect("reads");
        assert_eq!(read, again);
    }
}
