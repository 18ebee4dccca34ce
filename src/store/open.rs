//! Opening a state store: the directory (created for its owner alone), the lock that makes one
//! process its owner, the database and its format (created, upgraded in place from format 1,
//! or set aside when it is damaged or newer), the digest key; or a store in memory for a process
//! that keeps no state.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use rusqlite::params;

use super::{Store, DB_FILE, FORMAT, LOCK_FILE};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS connections (
    name TEXT PRIMARY KEY, identity BLOB NOT NULL, record TEXT NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS transitions (
    name TEXT NOT NULL, at INTEGER NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,
    reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS transitions_by_name ON transitions (name, at);
CREATE TABLE IF NOT EXISTS logins (
    name TEXT PRIMARY KEY, identity BLOB NOT NULL, failed INTEGER NOT NULL, locked INTEGER NOT NULL,
    updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS login_attempts (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, identity BLOB NOT NULL, started_at INTEGER NOT NULL,
    stale_at INTEGER NOT NULL, owner TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS account_logins (
    account TEXT PRIMARY KEY, failed INTEGER NOT NULL, locked INTEGER NOT NULL,
    updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS account_attempts (
    id INTEGER PRIMARY KEY, account TEXT NOT NULL, name TEXT NOT NULL, started_at INTEGER NOT NULL,
    stale_at INTEGER NOT NULL, owner TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS account_attempts_by_account ON account_attempts (account);
CREATE TABLE IF NOT EXISTS gates (key TEXT PRIMARY KEY, blocked_until INTEGER NOT NULL);
";

/// Why a store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory cannot be created or written.
    #[error("cannot use the state directory {}: {source}", dir.display())]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process owns the directory.
    #[error("the state directory {} is in use by another credwatch (an HA pair or two shards need a directory each)", .0.display())]
    InUse(PathBuf),
    /// The database cannot be opened or read.
    #[error("cannot use the state store {}: {source}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The database was written by a newer credwatch.
    #[error("the state store {} has format {found}, newer than this credwatch's {FORMAT}", path.display())]
    Newer {
        /// The database file.
        path: PathBuf,
        /// Its format.
        found: i64,
    },
}

impl OpenError {
    /// Whether the database itself is damaged or of a newer format (set aside and started
    /// afresh), rather than out of reach (a permission, a full disk: left alone).
    pub fn is_damage(&self) -> bool {
        match self {
            OpenError::Newer { .. } => true,
            OpenError::Database { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
            ),
            _ => false,
        }
    }
}

impl Store {
    /// Opens the store in `dir` as its owner (the daemon): creates the directory, takes its
    /// lock, and opens or creates the database. A database that is corrupt or of a newer
    /// format is set aside (renamed, with a WARN that names both files) and a new one
    /// started, so the daemon starts as on a first run. One that cannot be read for another
    /// reason (its permissions) is an error, left as it is.
    pub fn open_owned(dir: &Path) -> Result<Store, OpenError> {
        let directory = |source| OpenError::Directory {
            dir: dir.to_owned(),
            source,
        };
        create_private_dir(dir).map_err(directory)?;
        let lock = std::os::unix::fs::OpenOptionsExt::mode(
            File::options().create(true).truncate(false).write(true),
            0o600,
        )
        .open(dir.join(LOCK_FILE))
        .map_err(directory)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(OpenError::InUse(dir.to_owned())),
            Err(std::fs::TryLockError::Error(error)) => return Err(directory(error)),
        }
        let path = dir.join(DB_FILE);
        match Self::open_db(&path, Some(lock.try_clone().map_err(directory)?)) {
            Ok(store) => Ok(store),
            Err(error) if error.is_damage() => {
                let aside = set_aside(&path, matches!(error, OpenError::Newer { .. }));
                tracing::warn!(
                    store = %path.display(),
                    set_aside = %aside.display(),
                    %error,
                    "the state store cannot be read; it was set aside and credwatch starts as on a first run"
                );
                Self::open_db(&path, Some(lock))
            }
            Err(error) => Err(error),
        }
    }

    /// Opens the store in `dir` without owning it (`credwatch check` beside a running
    /// daemon): the database is created if missing, never set aside.
    pub fn open_shared(dir: &Path) -> Result<Store, OpenError> {
        create_private_dir(dir).map_err(|source| OpenError::Directory {
            dir: dir.to_owned(),
            source,
        })?;
        Self::open_db(&dir.join(DB_FILE), None)
    }

    /// A store in memory, for the login budget of a daemon or `check` that keeps no state
    /// (`--no-state`, or no usable directory): the connections of one account still share one
    /// budget within the process, and nothing survives it.
    pub fn open_memory() -> Result<Store, OpenError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let uri = format!(
            "file:credwatch-{}-{n}?mode=memory&cache=shared",
            std::process::id()
        );
        Self::open_db(Path::new(&uri), None)
    }

    fn open_db(path: &Path, lock: Option<File>) -> Result<Store, OpenError> {
        let database = |source| OpenError::Database {
            path: path.to_owned(),
            source,
        };
        let in_memory = path.as_os_str().to_string_lossy().starts_with("file:");
        let connect = |synchronous: &str| -> rusqlite::Result<rusqlite::Connection> {
            let db = if in_memory {
                rusqlite::Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::default() | rusqlite::OpenFlags::SQLITE_OPEN_URI,
                )?
            } else {
                rusqlite::Connection::open(path)?
            };
            db.busy_timeout(Duration::from_secs(10))?;
            db.pragma_update(None, "journal_mode", "WAL")?;
            db.pragma_update(None, "synchronous", synchronous)?;
            Ok(db)
        };
        let db = connect("NORMAL").map_err(database)?;
        let found: i64 = db
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(database)?;
        if found > FORMAT {
            return Err(OpenError::Newer {
                path: path.to_owned(),
                found,
            });
        }
        let check: String = db
            .pragma_query_value(None, "quick_check", |row| row.get(0))
            .map_err(database)?;
        if check != "ok" {
            return Err(database(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(check),
            )));
        }
        // Only the store's owner upgrades an older format: a `check` beside a daemon of the
        // previous format must not change the tables that daemon counts logins in. Such a check
        // finds no account budget to record a login in, and so sends none (without --force).
        let owner = lock.is_some() || in_memory;
        if owner || found == 0 {
            db.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {FORMAT}; COMMIT;"
            ))
            .map_err(database)?;
        } else if found < FORMAT {
            tracing::warn!(
                store = %path.display(),
                found,
                "the state store is of an older format, kept by an older credwatch: it is read as it is, and no Basic login is sent (--force sends it unrecorded)"
            );
        }
        let key = digest_key(&db).map_err(database)?;
        if !in_memory {
            restrict(path);
        }
        let logins = connect("FULL").map_err(database)?;
        Ok(Store {
            path: path.to_owned(),
            db: Mutex::new(db),
            logins: Mutex::new(logins),
            key,
            _lock: lock,
        })
    }
}

/// Creates the state directory, readable by its owner alone (an existing one is left as it
/// is: under systemd, `StateDirectoryMode=` decides).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Makes the database and its side files readable by their owner alone: the rows hold no
/// secret, but the digests of the credentials are nobody else's business.
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    for extension in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{extension}", path.display()));
        // Only the owner can change the mode; another user's files are left as they are.
        let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
    }
}

/// The digest key: drawn once, on the store's first open, and kept in it.
fn digest_key(db: &rusqlite::Connection) -> rusqlite::Result<ring::hmac::Key> {
    let mut fresh = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut fresh)
        .map_err(|_| rusqlite::Error::InvalidQuery)?;
    // Two processes opening a new store at once both insert; the first one's key stays.
    db.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('digest_key', ?1)",
        params![fresh.to_vec()],
    )?;
    let key: Vec<u8> =
        db.query_row("SELECT value FROM meta WHERE key = 'digest_key'", [], |r| {
            r.get(0)
        })?;
    Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key))
}

/// Renames a store that cannot be read (and its write-ahead log) out of the way; returns the
/// new name of the database file.
fn set_aside(path: &Path, newer: bool) -> PathBuf {
    let suffix = if newer { "newer" } else { "corrupt" };
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    let aside = PathBuf::from(format!("{}.{suffix}-{stamp}", path.display()));
    for extension in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{extension}", path.display()));
        let to = PathBuf::from(format!("{}{extension}", aside.display()));
        if from.exists() {
            if let Err(error) = std::fs::rename(&from, &to) {
                tracing::warn!(from = %from.display(), %error, "cannot set the state store aside; removing it");
                let _ = std::fs::remove_file(&from);
            }
        }
    }
    aside
}
