//! The store's writer: a thread that, once a second, takes what changed from the status and
//! writes it in one transaction, with the time it was last known alive (what a restart after
//! `kill -9` measures the missed probes from). Probes never wait for it; a SIGTERM ends it
//! with a last write.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use rusqlite::params;

use super::{delete_connection, lock, unix_millis, Record, Store};
use crate::state::{Board, Changes};

/// How often what changed is written.
pub(crate) const FLUSH_PERIOD: Duration = Duration::from_secs(1);

/// How often history older than the retention is deleted.
const PRUNE_PERIOD: Duration = Duration::from_secs(3600);

/// The running writer; [`Writer::stop`] writes what is left and ends it.
pub(crate) struct Writer {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts writing `status`'s changes to `store`.
    pub(crate) fn start(
        store: Arc<Store>,
        status: Board,
        retention: Duration,
    ) -> std::io::Result<Writer> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("credwatch-state".to_owned())
            .spawn(move || {
                let mut pruned = Instant::now();
                let mut failing = false;
                loop {
                    let last = !matches!(
                        stopped.recv_timeout(FLUSH_PERIOD),
                        Err(mpsc::RecvTimeoutError::Timeout)
                    );
                    let changes = status.take_changes();
                    match store.write(&changes) {
                        Ok(()) if failing => {
                            failing = false;
                            tracing::info!(store = %store.path().display(), "the state store is written again");
                        }
                        Ok(()) => {}
                        Err(error) => {
                            if !failing {
                                tracing::warn!(store = %store.path().display(), %error, "cannot write the state store; the daemon keeps running and tries again");
                            }
                            failing = true;
                            status.requeue(changes);
                        }
                    }
                    // The gates any process closed (a `check` beside the daemon) hold for the
                    // daemon within a second.
                    if let Ok(gates) = store.closed_gates() {
                        status.set_stored_gates(gates);
                    }
                    if pruned.elapsed() >= PRUNE_PERIOD {
                        pruned = Instant::now();
                        if let Err(error) = store.prune(retention) {
                            tracing::warn!(%error, "cannot prune the state store's history");
                        }
                    }
                    if last {
                        return;
                    }
                }
            })?;
        Ok(Writer {
            stop,
            thread: Some(thread),
        })
    }

    /// Writes what is left and stops.
    pub(crate) fn stop(mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Store {
    /// Writes one batch of changes in one transaction.
    pub fn write(&self, changes: &Changes) -> rusqlite::Result<()> {
        let mut db = lock(&self.db);
        let tx = db.transaction()?;
        let now = unix_millis(Utc::now());
        for name in &changes.removed {
            delete_connection(&tx, name)?;
        }
        {
            let mut upsert = tx.prepare(
                "INSERT INTO connections (name, identity, record, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET identity = ?2, record = ?3, updated_at = ?4",
            )?;
            for entry in &changes.entries {
                let record = serde_json::to_string(&Record::of(&entry.memory))
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                let identity = self.identity(&entry.connection);
                upsert.execute(params![entry.connection.name, identity, record, now])?;
            }
            let mut append = tx.prepare(
                "INSERT INTO transitions (name, at, from_state, to_state, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (name, t) in &changes.transitions {
                append.execute(params![
                    name,
                    unix_millis(t.at),
                    t.from.as_str(),
                    t.to.as_str(),
                    t.reason.as_str()
                ])?;
            }
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('alive_at', ?1)
             ON CONFLICT (key) DO UPDATE SET value = ?1",
            params![now],
        )?;
        tx.commit()
    }

    /// Deletes history older than `retention`, and beyond the cap per connection.
    pub fn prune(&self, retention: Duration) -> rusqlite::Result<()> {
        let db = lock(&self.db);
        let cutoff = unix_millis(Utc::now())
            .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        db.execute("DELETE FROM transitions WHERE at < ?1", params![cutoff])?;
        db.execute(
            "DELETE FROM transitions WHERE rowid IN (
                SELECT rowid FROM (SELECT rowid, row_number() OVER (PARTITION BY name ORDER BY at DESC) AS n FROM transitions)
                WHERE n > ?1)",
            params![crate::state::HISTORY_CAP as i64],
        )?;
        Ok(())
    }
}
