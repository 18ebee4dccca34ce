//! Secret files, watched for changes: every [`SECRET_POLL`], the next slice of them in name
//! order is `stat()`ed, and a task whose file changed is woken to re-read its secret and
//! probe at once (a rotated token, a fixed password, a Kubernetes secret update).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Notify};

use crate::config::Connection;

/// How often secret files are checked for changes, while there are at most
/// [`SECRET_STATS_PER_SECOND`] × 5 of them (fewer than 50 are checked faster: one a tick).
///
/// Each check is a `stat()` of the path, about 1.5 µs. Every 2 s, as before, it was the
/// largest fixed cost of a daemon with one file per credential: at 1,000 files and the usual
/// 60 s interval, 30 checks per probe. 5 s is still prompt next to how a rotation arrives (a
/// Kubernetes secret reaches the pod a minute or so after it changes).
pub(crate) const SECRET_POLL: Duration = Duration::from_secs(5);

/// The most secret files checked a second. Beyond 12,500 files a sweep takes longer than
/// [`SECRET_POLL`] (100,000 files: 40 s) rather than costing more: at 100,000 files every 2 s,
/// the checks alone cost 0.1 CPU seconds a second, more than all the probes.
pub(crate) const SECRET_STATS_PER_SECOND: usize = 2_500;

/// The secret files are checked a slice at a time, so that no check holds the runtime long.
const SECRET_TICK: Duration = Duration::from_millis(100);

/// A watched secret file.
pub(super) struct Watched {
    pub(super) path: PathBuf,
    pub(super) stamp: Option<FileStamp>,
    pub(super) poke: Arc<Notify>,
}

/// What tells a file changed without reading it (a Kubernetes secret update swaps a symlink,
/// which changes the inode the path resolves to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

pub(super) fn stamp(path: &PathBuf) -> Option<FileStamp> {
    std::fs::metadata(path).ok().map(|m| FileStamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

/// Re-reads a connection's secret; `Some` with the new connection if the secret changed.
pub(super) fn reread_secret(connection: &Connection) -> Option<Connection> {
    let secret = match connection.secret_source.read() {
        Ok(secret) => secret,
        Err(error) => {
            tracing::warn!(connection = %connection.name, %error, "cannot re-read the secret; keeping the one in use");
            return None;
        }
    };
    if secret == connection.secret {
        return None;
    }
    if let Err(error) = crate::config::authorization_header(
        connection.settings.auth,
        connection.settings.login(),
        &secret,
    ) {
        tracing::warn!(connection = %connection.name, %error, "the new secret cannot be used; keeping the one in use");
        return None;
    }
    let mut updated = connection.clone();
    updated.secret = secret;
    Some(updated)
}

/// Checks the next slice of the watched files after `cursor`, wakes the tasks whose file
/// changed, and returns where the next slice starts (`None`: from the first again).
fn check_slice(watched: &mut BTreeMap<String, Watched>, cursor: Option<String>) -> Option<String> {
    let ticks_per_sweep = (SECRET_POLL.as_millis() / SECRET_TICK.as_millis()) as usize;
    let most_per_tick = SECRET_STATS_PER_SECOND * SECRET_TICK.as_millis() as usize / 1000;
    let slice = watched
        .len()
        .div_ceil(ticks_per_sweep)
        .clamp(1, most_per_tick);
    let after = match &cursor {
        Some(name) => std::ops::Bound::Excluded(name.as_str()),
        None => std::ops::Bound::Unbounded,
    };
    let mut last = None;
    for (name, entry) in watched
        .range_mut::<str, _>((after, std::ops::Bound::Unbounded))
        .take(slice)
    {
        let now = stamp(&entry.path);
        if now != entry.stamp {
            entry.stamp = now;
            entry.poke.notify_one();
        }
        last = Some(name.clone());
    }
    // After the last name, the next sweep starts from the first.
    let at_end = last.is_none() || last.as_ref() == watched.keys().next_back();
    if at_end {
        None
    } else {
        last
    }
}

/// Polls the watched secret files and wakes the tasks whose file changed: every
/// [`SECRET_TICK`], the next slice of them in name order, sized so that a sweep takes
/// [`SECRET_POLL`], or longer when there are more files than [`SECRET_STATS_PER_SECOND`]
/// allows.
pub(super) async fn watch_secret_files(
    watched: Arc<Mutex<BTreeMap<String, Watched>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(SECRET_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The last file checked; the next slice starts after it.
    let mut cursor: Option<String> = None;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticker.tick() => {}
        }
        let mut watched = watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cursor = check_slice(&mut watched, cursor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` watched files whose recorded stamp differs from the file's (none exist), so that
    /// every check of one wakes its task.
    fn changed_files(n: usize) -> (BTreeMap<String, Watched>, Vec<Arc<Notify>>) {
        let mut watched = BTreeMap::new();
        let mut pokes = Vec::new();
        for i in 0..n {
            let poke = Arc::new(Notify::new());
            pokes.push(poke.clone());
            let stamp = Some(FileStamp {
                modified: None,
                len: 1,
                inode: 1,
            });
            let path = PathBuf::from(format!("/nonexistent/credwatch-test/{i}"));
            watched.insert(format!("c{i:06}"), Watched { path, stamp, poke });
        }
        (watched, pokes)
    }

    /// Slices until every file was checked once; returns how many slices a sweep took.
    fn sweep(n: usize) -> usize {
        let (mut watched, pokes) = changed_files(n);
        let mut cursor = None;
        let mut slices = 0;
        loop {
            cursor = check_slice(&mut watched, cursor);
            slices += 1;
            if cursor.is_none() {
                break;
            }
            assert!(slices <= n, "the sweep does not end");
        }
        // Each file was checked exactly once: a second check would see no change.
        assert!(watched.values().all(|w| w.stamp.is_none()));
        for poke in &pokes {
            let notified = poke.notified();
            tokio::pin!(notified);
            assert!(notified.as_mut().enable(), "a changed file woke its task");
        }
        slices
    }

    #[test]
    fn secret_files_are_swept_every_five_seconds_and_never_faster_than_the_cap() {
        let ticks = |slices: usize| slices as u128 * SECRET_TICK.as_millis();
        // At least one file a tick: a few files are checked more often.
        assert_eq!(ticks(sweep(1)), 100);
        assert_eq!(ticks(sweep(20)), 2_000);
        assert_eq!(ticks(sweep(50)), 5_000);
        assert_eq!(ticks(sweep(1_000)), 5_000);
        assert_eq!(ticks(sweep(12_500)), 5_000);
        // Beyond 12,500 files: 2,500 a second.
        assert_eq!(ticks(sweep(25_000)), 10_000);
        assert_eq!(ticks(sweep(100_000)), 40_000);
    }
}
