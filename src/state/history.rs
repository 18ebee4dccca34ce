//! The board's history of state changes: what `GET /api/v1/connections/{name}/history`
//! lists, and what the status page's timelines are drawn from.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use super::remembered::prune;
use super::{Board, Transition};

impl Board {
    /// Sets how long state changes are kept.
    pub(crate) fn set_history_retention(&self, retention: Duration) {
        self.lock().history_retention = retention;
    }

    /// A connection's state changes, newest first; `None` for an unknown connection.
    pub(crate) fn history(&self, name: &str) -> Option<Vec<Transition>> {
        let inner = self.lock();
        inner.connections.get(name)?;
        let mut history = inner.history.get(name).cloned().unwrap_or_default();
        prune(&mut history, inner.history_retention);
        history.reverse();
        Some(history)
    }

    /// Every connection's state changes since `since`, oldest first, with the last change
    /// before it (which says the state `since` began in), in one look at the board.
    pub(crate) fn changes_since(&self, since: DateTime<Utc>) -> FxHashMap<String, Vec<Transition>> {
        let inner = self.lock();
        inner
            .history
            .iter()
            .map(|(name, changes)| {
                let first = changes.partition_point(|c| c.at < since);
                (name.clone(), changes[first.saturating_sub(1)..].to_vec())
            })
            .collect()
    }
}
