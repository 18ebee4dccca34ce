//! The gates the state store says are closed: a site or a token endpoint that answered a rate
//! limit to any process that uses the store (this daemon before a restart, a `check` beside
//! it). The store's writer reads them once a second (and the daemon once at start); every
//! probe's admission asks here, without touching the store.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Board;

impl Board {
    /// Replaces what the store says of the gates.
    pub(crate) fn set_stored_gates(&self, gates: HashMap<String, DateTime<Utc>>) {
        self.lock().gates = Arc::new(gates);
    }

    /// Until when the store says the gate `key` is closed, if it still is.
    pub(crate) fn stored_gate(&self, key: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let gates = self.lock().gates.clone();
        gates.get(key).copied().filter(|until| *until > now)
    }
}
