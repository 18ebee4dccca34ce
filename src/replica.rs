//! HA groups: `--replica I/N` makes a process replica I of N that watch the same
//! configuration. Token credentials are probed by every replica (a probe of a token counts
//! towards nothing), but each Basic login account is owned by exactly one replica, so that an
//! HA pair spends one budget of failed logins per account, not one per replica: Jira counts
//! failed logins per user and locks at 3 (docs/jira-answers.md §13).
//!
//! The owner is chosen by rendezvous hashing of the login account, salted differently from
//! the shard hash ([`crate::shard`]), so shards and replicas spread independently: with
//! `--shard K/M` too, a connection is watched by the replicas of the shard that owns it, and a
//! Basic account by one of them. Every replica computes the same owner without talking to the
//! others; a change of N moves some accounts to a replica whose store does not know their
//! count (up to 2 more failed logins for a moved account, documented like shards).

use std::fmt;
use std::str::FromStr;

use crate::config::Connection;
use crate::shard::{parse_member, rendezvous};

/// What makes the replica assignment independent of the shard assignment.
const SALT: &[u8] = b"credwatch-replica\0";

/// This process's place in an HA group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replica {
    /// This replica's index, from 0.
    pub index: u32,
    /// How many replicas watch the same connections.
    pub count: u32,
}

impl Replica {
    /// The replica that owns a login account.
    pub fn owner_of(&self, account: &str) -> u32 {
        owner(account, self.count)
    }

    /// The replica that owns a connection, when only one does (a Basic connection, by its
    /// login account); `None`: every replica watches it.
    pub fn sole_owner(&self, connection: &Connection) -> Option<u32> {
        connection
            .login_account()
            .map(|account| self.owner_of(account))
    }

    /// Whether this replica watches `connection`.
    pub fn watches(&self, connection: &Connection) -> bool {
        self.sole_owner(connection)
            .is_none_or(|owner| owner == self.index)
    }
}

/// The replica, of `count`, that owns the login account `account`.
pub fn owner(account: &str, count: u32) -> u32 {
    rendezvous(account, count, SALT)
}

impl fmt::Display for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A `--replica` value that is not `I/N` with 0 ≤ I < N; the message quotes the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReplicaError(String);

impl FromStr for Replica {
    type Err = ReplicaError;

    /// `I/N`, where I is a number or a name ending in `-<number>` (a StatefulSet pod name,
    /// `credwatch-1`), and 0 ≤ I < N.
    fn from_str(text: &str) -> Result<Replica, ReplicaError> {
        parse_member(text, "replica")
            .map(|(index, count)| Replica { index, count })
            .map_err(ReplicaError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Vec<String> {
        (0..10_000)
            .map(|i| format!("https://jira{}.example.com svc-{i}", i % 7))
            .collect()
    }

    #[test]
    fn every_account_has_one_owner_and_shares_are_even() {
        let accounts = accounts();
        for count in 1..=4u32 {
            let mut per = vec![0usize; count as usize];
            for account in &accounts {
                per[owner(account, count) as usize] += 1;
            }
            let fair = accounts.len() as f64 / f64::from(count);
            for n in per {
                assert!(
                    (n as f64 - fair).abs() / fair < 0.1,
                    "{count}: {n} vs {fair}"
                );
            }
        }
    }

    #[test]
    fn replicas_spread_independently_of_shards() {
        // Were the hashes the same, the accounts of shard 0 of 2 would all be owned by
        // replica 0 of 2; independent, about half of them are.
        let accounts = accounts();
        let on_shard_0: Vec<&String> = accounts
            .iter()
            .filter(|a| crate::shard::owner(a, 2) == 0)
            .collect();
        let replica_0 = on_shard_0.iter().filter(|a| owner(a, 2) == 0).count();
        let fraction = replica_0 as f64 / on_shard_0.len() as f64;
        assert!((fraction - 0.5).abs() < 0.05, "{fraction}");
    }

    #[test]
    fn replicas_parse_from_numbers_and_pod_names() {
        assert_eq!("1/2".parse(), Ok(Replica { index: 1, count: 2 }));
        assert_eq!(
            "credwatch-a-0/2".parse(),
            Ok(Replica { index: 0, count: 2 })
        );
        for bad in ["2/2", "1/0", "x/2", "2"] {
            let error = bad.parse::<Replica>().expect_err(bad);
            assert!(error.to_string().contains(bad), "{error}");
        }
    }
}
