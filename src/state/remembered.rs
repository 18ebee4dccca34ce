//! What outlives a connection's task: the standing verdict, a pending confirmation, the
//! history of state changes, [`Restored`], the part of an entry that a state store (or the
//! entry a reload replaces) hands to the connection's next task, and [`Changes`], what the
//! store's writer takes to write.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Entry, Pause};
use crate::expiry::TokenList;
use crate::probe::{Outcome, Reason, State};
use std::sync::Arc;

/// The most state changes kept per connection, however short the retention.
pub(crate) const HISTORY_CAP: usize = 1_000;

/// How long state changes are kept by default: 90 days.
pub(crate) const DEFAULT_HISTORY_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// The standing verdict: the last state that was not `unknown`, and what reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// The state.
    pub state: State,
    /// The reason of the probe that reached it.
    pub reason: Reason,
    /// That probe's HTTP status.
    pub http_status: Option<u16>,
    /// When the state was first reached (a probe that confirms it keeps this time).
    pub since: DateTime<Utc>,
}

/// A rejection after a `valid` verdict that waits for one more probe before it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The state it would turn the credential to.
    pub state: State,
    /// The reason of the first rejection.
    pub reason: Reason,
    /// When the first rejection was seen.
    pub since: DateTime<Utc>,
}

/// What a state store, or the entry a reload replaces, remembers of a connection: the part
/// of an [`Entry`] that outlives its task.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// The standing verdict.
    pub verdict: Option<Standing>,
    /// A rejection waiting for its confirmation.
    pub pending: Option<Pending>,
    /// The last probe.
    pub last: Option<Outcome>,
    /// When a probe last reached `ok`.
    pub last_success_at: Option<DateTime<Utc>>,
    /// What Jira's PAT API last said.
    pub tokens: Option<Arc<TokenList>>,
    /// The backoff wait.
    pub backoff: Option<Duration>,
    /// The wait that keeps the rhythm.
    pub period: Duration,
    /// Consecutive failed Basic logins.
    pub failed_logins: u32,
    /// Why probing stopped.
    pub paused: Option<Pause>,
    /// When the next probe was due.
    pub next_due: Option<DateTime<Utc>>,
    /// The state changes, oldest first.
    pub history: Vec<Transition>,
    /// What the API gateway said of this secret after the site rejected it.
    pub gateway: Option<crate::probe::GatewayTry>,
}

impl Entry {
    /// The part of the entry that outlives its task (without the history, which the status
    /// keeps beside the entries).
    pub fn restorable(&self) -> Restored {
        Restored {
            verdict: self.verdict,
            pending: self.pending,
            last: self.last.clone(),
            last_success_at: self.last_success_at,
            tokens: self.tokens.clone(),
            backoff: self.backoff,
            period: self.period,
            failed_logins: self.failed_logins,
            paused: self.paused,
            next_due: self.next_probe_at,
            history: Vec::new(),
            gateway: self.gateway.clone(),
        }
    }
}

impl super::Board {
    /// What the API gateway said of a connection's secret, for its task to start from: asked
    /// once per secret, across restarts too.
    pub(crate) fn gateway_try(&self, name: &str) -> Option<crate::probe::GatewayTry> {
        self.lock().connections.get(name)?.gateway.clone()
    }
}

/// Drops the state changes older than `retention`, and the oldest beyond [`HISTORY_CAP`].
pub(crate) fn prune(history: &mut Vec<Transition>, retention: Duration) {
    let cutoff = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|retention| Utc::now().checked_sub_signed(retention));
    if let Some(cutoff) = cutoff {
        history.retain(|t| t.at >= cutoff);
    }
    if history.len() > HISTORY_CAP {
        history.drain(..history.len() - HISTORY_CAP);
    }
}

/// A change of the credential's state: logged, kept in the history and in the state store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The state before (`unknown` before the first verdict).
    pub from: State,
    /// The state now.
    pub to: State,
    /// The reason of the probe that changed it.
    pub reason: Reason,
}

/// What changed since the state store's writer last asked.
#[derive(Debug, Default)]
pub struct Changes {
    /// The entries to write, as they are now.
    pub entries: Vec<Arc<Entry>>,
    /// State changes to append to the history.
    pub transitions: Vec<(String, Transition)>,
    /// Connections that are gone.
    pub removed: Vec<String>,
}
