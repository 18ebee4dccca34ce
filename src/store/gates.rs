//! The gates of sites and OAuth token endpoints, kept in the store: when a site (a tenant
//! behind the gateway) or a token endpoint answered a rate limit, until when nothing is sent to
//! it. Whoever closes a gate (the daemon, or `credwatch check` beside it) writes it here, and
//! every process that uses the store honours it: the running daemon, a `check`, and the daemon
//! after a restart. A gate lasts a day at most; one past its time, corrupt or missing is open.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{from_millis, lock, unix_millis, Store};

/// The longest a stored gate stays closed, as the in-memory gates (`Retry-After` capped).
pub(crate) const MAX_GATE: chrono::TimeDelta = chrono::TimeDelta::days(1);

impl Store {
    /// Closes the gate `key` (a politeness site or a token endpoint) until `until` (a day from
    /// now at most); a gate already closed for longer stays so.
    pub fn close_gate(&self, key: &str, until: DateTime<Utc>) -> rusqlite::Result<()> {
        let until = until.min(Utc::now() + MAX_GATE);
        let db = lock(&self.db);
        db.execute(
            "INSERT INTO gates (key, blocked_until) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET blocked_until = max(blocked_until, ?2)",
            params![key, unix_millis(until)],
        )?;
        Ok(())
    }

    /// The gates closed now, by key; those past their time are deleted.
    pub fn closed_gates(&self) -> rusqlite::Result<HashMap<String, DateTime<Utc>>> {
        let db = lock(&self.db);
        let now = unix_millis(Utc::now());
        db.execute("DELETE FROM gates WHERE blocked_until <= ?1", params![now])?;
        let mut rows = db.prepare("SELECT key, blocked_until FROM gates")?;
        let gates = rows.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?;
        let mut closed = HashMap::new();
        for gate in gates {
            let (key, until) = gate?;
            if let Some(until) = from_millis(until) {
                closed.insert(key, until);
            }
        }
        Ok(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_closed_by_one_process_is_closed_for_the_other_until_its_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let daemon = Store::open_owned(dir.path()).expect("owner");
        let check = Store::open_shared(dir.path()).expect("shared");
        let soon = Utc::now() + chrono::TimeDelta::milliseconds(300);
        check.close_gate("https://a:443", soon).expect("close");
        check
            .close_gate("https://b:443", Utc::now() + chrono::TimeDelta::days(30))
            .expect("close");
        let closed = daemon.closed_gates().expect("read");
        assert_eq!(closed.len(), 2);
        // A day at most.
        assert!(closed["https://b:443"] <= Utc::now() + MAX_GATE);
        // An earlier time never reopens a gate closed for longer.
        daemon
            .close_gate("https://a:443", Utc::now() - chrono::TimeDelta::hours(1))
            .expect("close");
        std::thread::sleep(std::time::Duration::from_millis(400));
        let closed = daemon.closed_gates().expect("read");
        assert_eq!(closed.keys().collect::<Vec<_>>(), ["https://b:443"]);
    }
}
