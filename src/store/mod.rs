//! The state store: what credwatch learned, kept across restarts, so that a deploy neither
//! blanks its verdicts nor grants new failed logins.
//!
//! SQLite (through rusqlite, built in): one file, `credwatch.db`, in the state directory.
//! It was chosen over redb and over an atomically replaced file because two processes must
//! share the login budget: `credwatch check` records its Basic logins in the daemon's store
//! while the daemon runs, and SQLite's transactions serialise the two across processes; a
//! crash or power loss at any moment leaves the previous or the new state (write-ahead log),
//! never a torn one. A redb database is open in one process at a time, and a replaced file
//! would have to be rewritten whole for every login.
//!
//! Writes are batched off the probe path: the status marks what changed, and a writer thread
//! ([`writer`]) writes it once a second in one transaction. The one exception is a Basic
//! login, recorded durably (`synchronous = FULL`) before it is sent ([`logins`]).
//!
//! One process owns a directory (a lock on `DIR/lock`); `check` opens the database without
//! the lock. A row is restored only while the connection's credential is the same: URL, kind,
//! auth, username and a keyed digest (HMAC-SHA256, the key kept in the store) of the secret.

pub(crate) mod gates;
mod location;
pub(crate) mod logins;
mod open;
pub(crate) mod record;
pub(crate) mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use rusqlite::{params, OptionalExtension as _};

use crate::config::Connection;
use crate::state::Transition;
pub use location::Location;
pub use open::OpenError;
pub use record::Record;

/// The store's format; a store of a newer one is set aside, not read. Format 2 keeps the
/// login budget per login account (format 1 kept it per connection name; its rows are
/// adopted by their account, [`Store::adopt_logins`]).
pub const FORMAT: i64 = 2;

/// The database's file name in the state directory.
pub const DB_FILE: &str = "credwatch.db";

/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "lock";

/// What the store held at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Each connection's identity digest and row.
    pub records: HashMap<String, (Vec<u8>, Record)>,
    /// Each connection's state changes, oldest first.
    pub history: HashMap<String, Vec<Transition>>,
    /// When the process that wrote the store was last known alive.
    pub alive_at: Option<DateTime<Utc>>,
    /// Rows that could not be read (and are dropped).
    pub unreadable: usize,
}

/// An open state store.
pub struct Store {
    path: PathBuf,
    /// The batch writer's connection (`synchronous = NORMAL`).
    db: Mutex<rusqlite::Connection>,
    /// The logins' connection (`synchronous = FULL`: a login is on disk before it is sent).
    logins: Mutex<rusqlite::Connection>,
    key: ring::hmac::Key,
    /// Held for as long as the store is open by its owner.
    _lock: Option<File>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.path.display())
    }
}

pub(crate) fn unix_millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_millis(millis: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(millis).single()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Store {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keyed digest of a connection's credential: URL, kind, auth, login (user name, or an OAuth client id) and secret.
    /// A row is restored only while this is unchanged.
    pub fn identity(&self, connection: &Connection) -> Vec<u8> {
        let mut context = ring::hmac::Context::with_key(&self.key);
        for part in [
            connection.url.as_str(),
            connection.settings.kind.as_str(),
            connection.settings.auth.as_str(),
            connection.settings.login().unwrap_or(""),
            connection.secret.expose(),
        ] {
            // Length-prefixed, so that no two different tuples give the same input.
            context.update(&(part.len() as u64).to_le_bytes());
            context.update(part.as_bytes());
        }
        context.sign().as_ref().to_vec()
    }

    /// Reads every row (history older than `retention` is left out and deleted).
    pub fn load(&self, retention: Duration) -> rusqlite::Result<Loaded> {
        let db = lock(&self.db);
        let cutoff = unix_millis(Utc::now())
            .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        db.execute("DELETE FROM transitions WHERE at < ?1", params![cutoff])?;
        let mut loaded = Loaded::default();
        let mut rows = db.prepare("SELECT name, identity, record FROM connections")?;
        let mut query = rows.query([])?;
        while let Some(row) = query.next()? {
            let name: String = row.get(0)?;
            let identity: Vec<u8> = row.get(1)?;
            let text: String = row.get(2)?;
            match serde_json::from_str::<Record>(&text) {
                Ok(record) => {
                    loaded.records.insert(name, (identity, record));
                }
                Err(error) => {
                    tracing::warn!(store = %self.path.display(), connection = %name, %error, "a row of the state store cannot be read; that connection starts afresh");
                    loaded.unreadable += 1;
                }
            }
        }
        let mut rows = db.prepare(
            "SELECT name, at, from_state, to_state, reason FROM transitions ORDER BY name, at",
        )?;
        let mut query = rows.query([])?;
        while let Some(row) = query.next()? {
            let parsed = (|| {
                Some(Transition {
                    at: from_millis(row.get(1).ok()?)?,
                    from: word(row.get(2).ok()?)?,
                    to: word(row.get(3).ok()?)?,
                    reason: word(row.get(4).ok()?)?,
                })
            })();
            if let (Some(transition), Ok(name)) = (parsed, row.get::<_, String>(0)) {
                loaded.history.entry(name).or_default().push(transition);
            }
        }
        let alive: Option<i64> = db
            .query_row("SELECT value FROM meta WHERE key = 'alive_at'", [], |r| {
                r.get(0)
            })
            .optional()?;
        loaded.alive_at = alive.and_then(from_millis);
        Ok(loaded)
    }

    /// Drops every connection not in `names` (and its history). The login budgets of names
    /// and accounts no longer configured stay for a week (a connection removed and added back
    /// must not be granted new failed logins), then go.
    pub fn retain(
        &self,
        names: &std::collections::HashSet<&str>,
        accounts: &std::collections::HashSet<&str>,
    ) -> rusqlite::Result<usize> {
        let mut db = lock(&self.db);
        let stored: Vec<String> = {
            let mut rows = db.prepare(
                "SELECT name FROM connections UNION SELECT name FROM logins UNION SELECT name FROM transitions",
            )?;
            let names = rows.query_map([], |row| row.get(0))?;
            names.collect::<rusqlite::Result<_>>()?
        };
        let gone: Vec<String> = stored
            .into_iter()
            .filter(|name| !names.contains(name.as_str()))
            .collect();
        let stored_accounts: Vec<String> = {
            let mut rows = db.prepare("SELECT account FROM account_logins")?;
            let accounts = rows.query_map([], |row| row.get(0))?;
            accounts.collect::<rusqlite::Result<_>>()?
        };
        let tx = db.transaction()?;
        let orphaned = unix_millis(Utc::now() - ORPHAN_BUDGET);
        for name in &gone {
            delete_connection(&tx, name)?;
            tx.execute(
                "DELETE FROM logins WHERE name = ?1 AND updated_at < ?2",
                params![name, orphaned],
            )?;
        }
        // Attempts a week past their deadline, of accounts (and format-1 names) no longer
        // configured, count for nothing now; those of configured ones are folded into their
        // count at the next login, never dropped.
        for name in &gone {
            tx.execute(
                "DELETE FROM login_attempts WHERE name = ?1 AND stale_at < ?2",
                params![name, orphaned],
            )?;
        }
        let attempted: Vec<String> = {
            let mut rows = tx.prepare("SELECT DISTINCT account FROM account_attempts")?;
            let found = rows.query_map([], |row| row.get(0))?;
            found.collect::<rusqlite::Result<_>>()?
        };
        for account in attempted
            .iter()
            .filter(|account| !accounts.contains(account.as_str()))
        {
            tx.execute(
                "DELETE FROM account_attempts WHERE account = ?1 AND stale_at < ?2",
                params![account, orphaned],
            )?;
        }
        for account in stored_accounts
            .iter()
            .filter(|account| !accounts.contains(account.as_str()))
        {
            tx.execute(
                "DELETE FROM account_logins WHERE account = ?1 AND updated_at < ?2",
                params![account, orphaned],
            )?;
        }
        tx.commit()?;
        Ok(gone.len())
    }

    /// The shard (`K/N`) of the daemon that last opened the store, if one recorded it.
    pub fn shard(&self) -> rusqlite::Result<Option<crate::shard::Shard>> {
        let db = lock(&self.db);
        let text: Option<String> = db
            .query_row("SELECT value FROM meta WHERE key = 'shard'", [], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(text.and_then(|text| text.parse().ok()))
    }

    /// The replica (`I/N`) of the daemon that owns the store, if it runs in an HA group.
    pub fn replica(&self) -> rusqlite::Result<Option<crate::replica::Replica>> {
        let db = lock(&self.db);
        let text: Option<String> = db
            .query_row("SELECT value FROM meta WHERE key = 'replica'", [], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(text.and_then(|text| text.parse().ok()))
    }

    /// Records the replica of the daemon that owns the store (`None`: not in an HA group), so
    /// that a `check` beside it leaves the other replicas' accounts alone.
    pub fn set_replica(&self, replica: Option<crate::replica::Replica>) -> rusqlite::Result<()> {
        let db = lock(&self.db);
        match replica {
            Some(replica) => db.execute(
                "INSERT INTO meta (key, value) VALUES ('replica', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = ?1",
                params![replica.to_string()],
            )?,
            None => db.execute("DELETE FROM meta WHERE key = 'replica'", [])?,
        };
        Ok(())
    }

    /// Records the shard of the daemon that owns the store.
    pub fn set_shard(&self, shard: crate::shard::Shard) -> rusqlite::Result<()> {
        let db = lock(&self.db);
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('shard', ?1)
             ON CONFLICT (key) DO UPDATE SET value = ?1",
            params![shard.to_string()],
        )?;
        Ok(())
    }

    /// A connection's row, when its identity is `identity` (for `check`).
    pub fn record(&self, name: &str, identity: &[u8]) -> rusqlite::Result<Option<Record>> {
        let db = lock(&self.db);
        let row: Option<(Vec<u8>, String)> = db
            .query_row(
                "SELECT identity, record FROM connections WHERE name = ?1",
                params![name],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(row
            .filter(|(stored, _)| stored == identity)
            .and_then(|(_, text)| serde_json::from_str(&text).ok()))
    }
}

/// How long the login budget of a connection no longer configured is kept.
const ORPHAN_BUDGET: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// A state or reason from its name.
fn word<T: serde::de::DeserializeOwned>(text: String) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text)).ok()
}

/// Forgets a connection's state and history. Its login budget stays: a connection removed
/// and added back with the same credential must not be granted new failed logins (budgets of
/// connections gone for a week are pruned by [`Store::retain`]).
fn delete_connection(tx: &rusqlite::Transaction<'_>, name: &str) -> rusqlite::Result<()> {
    for table in ["connections", "transitions"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE name = ?1"),
            params![name],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::state::{Board, Memory, Restored, Schedule, Standing};

    fn connection(secret: &str) -> Connection {
        let text = format!(
            "[[connection]]\nname = \"c\"\nurl = \"https://jira.example.com\"\ntoken = \"{secret}\"\n"
        );
        crate::config::Config::from_sources(&[("t.toml".into(), text)])
            .expect("loads")
            .connections
            .remove(0)
    }

    #[test]
    fn what_is_written_is_read_back_and_the_identity_follows_the_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_owned(dir.path()).expect("open");
        let first = connection("one");
        assert_eq!(store.identity(&first), store.identity(&connection("one")));
        assert_ne!(store.identity(&first), store.identity(&connection("two")));
        // An OAuth client's id is part of its credential, like a user name.
        let client = |id: &str| {
            let text = format!("[[connection]]\nname = \"c\"\nurl = \"https://jira.example.com\"\nauth = \"oauth_client_credentials\"\nclient_id = \"{id}\"\nclient_secret = \"s\"\n");
            crate::config::Config::from_sources(&[("t.toml".into(), text)])
                .expect("loads")
                .connections
                .remove(0)
        };
        assert_ne!(store.identity(&client("a")), store.identity(&client("b")));

        let status = Board::new();
        // The history keeps milliseconds.
        let since =
            from_millis(unix_millis(Utc::now() - chrono::TimeDelta::hours(1))).expect("time");
        let restored = Restored {
            memory: Memory {
                verdict: Some(Standing {
                    state: crate::probe::State::Invalid,
                    reason: crate::probe::Reason::Unauthorized,
                    http_status: Some(401),
                    since,
                }),
                schedule: Schedule {
                    failed_logins: 1,
                    period: Duration::from_secs(3600),
                    ..Schedule::default()
                },
                ..Memory::default()
            },
            history: vec![Transition {
                at: since,
                from: crate::probe::State::Valid,
                to: crate::probe::State::Invalid,
                reason: crate::probe::Reason::Unauthorized,
            }],
        };
        let next = Utc::now() + chrono::TimeDelta::minutes(5);
        status.insert(Arc::new(first.clone()), Some(next), restored.clone());
        let mut changes = status.take_changes();
        changes.transitions = vec![("c".to_owned(), restored.history[0])];
        store.write(&changes).expect("write");
        drop(store);

        let store = Store::open_owned(dir.path()).expect("reopen");
        let loaded = store.load(Duration::from_secs(86_400)).expect("load");
        let (identity, record) = loaded.records.get("c").expect("row");
        assert_eq!(identity, &store.identity(&first));
        assert_eq!(record.verdict, restored.memory.verdict);
        assert_eq!(record.failed_logins, 1);
        assert_eq!(record.period_ms, 3_600_000);
        assert_eq!(
            record.next_probe_at.map(|t| t.timestamp_millis()),
            Some(next.timestamp_millis())
        );
        assert_eq!(loaded.history["c"], restored.history);
        assert!(loaded.alive_at.is_some());
        // History beyond the retention is not read.
        let loaded = store.load(Duration::from_secs(60)).expect("load");
        assert!(loaded.history.is_empty());
        // A connection no longer configured is dropped.
        assert_eq!(
            store
                .retain(&Default::default(), &Default::default())
                .expect("retain"),
            1
        );
        assert!(store.load(Duration::MAX).expect("load").records.is_empty());
    }

    #[test]
    fn a_second_owner_is_refused_and_a_reader_is_not() {
        use std::os::unix::fs::PermissionsExt as _;
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("state");
        let _owner = Store::open_owned(&dir).expect("open");
        let mode =
            |path: &Path| std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700, "the directory is its owner's alone");
        assert_eq!(mode(&dir.join(DB_FILE)), 0o600);
        assert_eq!(mode(&dir.join(LOCK_FILE)), 0o600);
        assert!(matches!(Store::open_owned(&dir), Err(OpenError::InUse(_))));
        Store::open_shared(&dir).expect("check reads beside the daemon");
    }
}
