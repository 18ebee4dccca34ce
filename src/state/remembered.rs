//! What outlives a connection's task: [`Memory`], the one type that holds what credwatch
//! knows of a connection (what the board shows, the store writes and a restart restores), the
//! history of state changes, [`Restored`] (a memory and its history, handed to the
//! connection's next task by the store or by the entry a reload replaces), and [`Changes`],
//! what the store's writer takes to write.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Entry, Schedule};
use crate::expiry::TokenList;
use crate::probe::{GatewayTry, Outcome, Reason, State};
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

/// What credwatch knows of a connection: the board's entry holds it, the state store writes
/// it (`store/record.rs` is its one serialised form) and a restart restores it. A field added
/// here and to the record is kept across restarts.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// The standing verdict: the last state that was not `unknown`.
    pub verdict: Option<Standing>,
    /// A rejection waiting for its confirmation.
    pub pending: Option<Pending>,
    /// The last probe's outcome.
    pub last: Option<Outcome>,
    /// When a probe last ended in `ok`.
    pub last_success_at: Option<DateTime<Utc>>,
    /// What Jira's PAT API (or the organization's list) last said, for connections whose
    /// expiry it can tell (shared, so that copying an entry for a snapshot never copies the
    /// list).
    pub tokens: Option<Arc<TokenList>>,
    /// When the next probe is due, the backoff, the rhythm, the failed logins and a pause.
    pub schedule: Schedule,
    /// What the API gateway said of this secret after the site rejected it.
    pub gateway: Option<GatewayTry>,
}

/// What a state store, or the entry a reload replaces, hands to a connection's next task: its
/// memory and its history.
#[derive(Debug, Clone, Default)]
pub(crate) struct Restored {
    /// What credwatch knew of the connection.
    pub memory: Memory,
    /// The state changes, oldest first.
    pub history: Vec<Transition>,
}

impl super::Board {
    /// What the API gateway said of a connection's secret, for its task to start from: asked
    /// once per secret, across restarts too.
    pub(crate) fn gateway_try(&self, name: &str) -> Option<crate::probe::GatewayTry> {
        self.lock().connections.get(name)?.memory.gateway.clone()
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
