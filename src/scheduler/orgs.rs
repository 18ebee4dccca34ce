//! The daemon's readers of the organization admin API: one task per `[[atlassian_org]]`
//! that reads the token list at start and every `interval`, keeps it on the board (a failed
//! read keeps the last good list, and says so), and matches each of its connections to its
//! token. A reload restarts the readers whose organization or connections changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;

use crate::config::{Config, Connection, Org};
use crate::org::{self, list};

use super::Shared;

/// After a failed read, the next one comes this soon (or after `interval`, if shorter).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(300);

/// The running readers, by organization name, with what each was started for.
#[derive(Default)]
pub(super) struct OrgReaders {
    running: BTreeMap<String, (Org, Vec<Connection>, JoinHandle<()>)>,
}

impl OrgReaders {
    /// Makes the readers those of `config`.
    pub(super) fn apply(&mut self, shared: &Arc<Shared>, config: &Config) {
        let board = &shared.status;
        let shard = board.read(|inner| inner.group.shard);
        board.set_orgs(&config.orgs, |name| shard.count <= 1 || shard.owns(name));
        let mut wanted: BTreeMap<String, (Org, Vec<Connection>)> = BTreeMap::new();
        for org in &config.orgs {
            let members: Vec<Connection> = config
                .connections
                .iter()
                .filter(|c| c.settings.org.as_deref() == Some(org.name.as_str()))
                .cloned()
                .collect();
            wanted.insert(org.name.clone(), (org.clone(), members));
        }
        let gone: Vec<String> = self
            .running
            .iter()
            .filter(|(name, (org, members, _))| {
                wanted.get(*name).is_none_or(|(want, want_members)| {
                    want != org || !same_members(want_members, members)
                })
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some((_, _, task)) = self.running.remove(&name) {
                task.abort();
            }
        }
        for (name, (org, members)) in wanted {
            if self.running.contains_key(&name) {
                continue;
            }
            let task = tokio::spawn(read_loop(shared.clone(), org.clone(), members.clone()));
            self.running.insert(name, (org, members, task));
        }
    }

    /// Stops every reader.
    pub(super) fn stop_all(&mut self) {
        for (_, (_, _, task)) in std::mem::take(&mut self.running) {
            task.abort();
        }
    }
}

fn same_members(a: &[Connection], b: &[Connection]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.same_settings(b))
}

async fn read_loop(shared: Arc<Shared>, org: Org, members: Vec<Connection>) {
    let board = &shared.status;
    loop {
        let result = list::read(&shared.prober, &org).await;
        let now = Utc::now();
        let wait = match &result {
            Ok(tokens) => {
                tracing::info!(org = %org.name, tokens = tokens.len(), "read the organization's API token list");
                org.interval
            }
            Err(error) => {
                tracing::warn!(org = %org.name, %error, "the organization's API token list was not read; the last good list stands");
                // Never sooner than the API asked (a Retry-After too long to wait within one
                // read).
                let asked = match error {
                    list::ReadError::RateLimited { retry_after, .. } => *retry_after,
                    _ => None,
                };
                org.interval
                    .min(RETRY_AFTER_FAILURE)
                    .max(asked.unwrap_or_default())
            }
        };
        if let Some(tokens) = board.org_read(&org, result, now) {
            let accounts = org::ByAccount::new(&tokens);
            for connection in &members {
                let matched = accounts.match_token(connection, &org.name);
                if board.set_org_match(&connection.name, matched, now) {
                    // The list tells what the last probe did not know: probe again, so
                    // that the classifier decides with it.
                    shared.recheck(&connection.name);
                }
            }
        }
        tokio::time::sleep(wait).await;
    }
}
