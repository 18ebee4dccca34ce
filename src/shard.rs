//! Sharding a fleet over several replicas: `--shard K/N` makes a replica probe and export only
//! the connections that rendezvous (highest-random-weight) hashing of their names assigns to
//! shard K of N.
//!
//! Rendezvous hashing needs no coordination and no shared state: every replica computes the
//! same owner for every name, each name has exactly one owner, and going from N to N+1 shards
//! moves only the names the new shard wins, about 1/(N+1) of them; no name moves between two
//! old shards.

use std::fmt;
use std::str::FromStr;

/// One replica's share of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This replica's index, from 0.
    pub index: u32,
    /// How many replicas share the fleet.
    pub count: u32,
}

impl Shard {
    /// Whether this shard owns the connection named `name`.
    pub fn owns(&self, name: &str) -> bool {
        owner(name, self.count) == self.index
    }
}

/// The shard, of `count`, that owns `name`.
pub fn owner(name: &str, count: u32) -> u32 {
    rendezvous(name, count, b"")
}

/// The member, of `count`, that rendezvous hashing assigns `key` to; `salt` makes another
/// assignment independent of this one (replicas are salted, shards are not).
pub(crate) fn rendezvous(key: &str, count: u32, salt: &[u8]) -> u32 {
    (0..count.max(1))
        .max_by_key(|&member| weight(key, member, salt))
        .unwrap_or(0)
}

/// The pseudo-random weight of a (name, member) pair: FNV-1a over the salt and both, then
/// SplitMix64's finaliser for a well-mixed 64-bit value. Stable across runs, platforms and
/// versions (the unsalted weight is the one shards have always used).
fn weight(name: &str, member: u32, salt: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in salt
        .iter()
        .copied()
        .chain(name.bytes())
        .chain(member.to_le_bytes())
    {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A `--shard` value that is not `K/N` with 0 ≤ K < N; the message quotes the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShardError(String);

impl FromStr for Shard {
    type Err = ShardError;

    /// `K/N`, where K is a number or a name ending in `-<number>` (a StatefulSet pod name,
    /// `credwatch-2`), and 0 ≤ K < N.
    fn from_str(text: &str) -> Result<Shard, ShardError> {
        parse(text).map_err(ShardError)
    }
}

fn parse(text: &str) -> Result<Shard, String> {
    parse_member(text, "shard").map(|(index, count)| Shard { index, count })
}

/// `K/N` with 0 ≤ K < N, K a number or a name ending in `-<number>`; `what` names it in errors.
pub(crate) fn parse_member(text: &str, what: &str) -> Result<(u32, u32), String> {
    let (index, count) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not K/N (for example 0/3, or credwatch-0/3)"))?;
    // "credwatch-2" is a StatefulSet pod name: its ordinal follows the last dash.
    let ordinal = match index.trim().rsplit_once('-') {
        Some(("", _)) => return Err(format!("{text:?}: the {what} index cannot be negative")),
        Some((_, ordinal)) => ordinal,
        None => index,
    };
    let index: u32 = ordinal
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: the {what} index must be a number or end in -<number>"))?;
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: the {what} count must be a number"))?;
    if count == 0 || index >= count {
        return Err(format!("{text:?}: the index must be from 0 to count - 1"));
    }
    Ok((index, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        (0..10_000).map(|i| format!("jira-conn-{i}")).collect()
    }

    #[test]
    fn every_connection_has_exactly_one_owner_and_shares_are_even() {
        let names = names();
        for count in 1..=10u32 {
            let mut per_shard = vec![0usize; count as usize];
            for name in &names {
                let owners: Vec<u32> = (0..count)
                    .filter(|&index| Shard { index, count }.owns(name))
                    .collect();
                assert_eq!(owners.len(), 1, "{name} with {count} shards: {owners:?}");
                per_shard[owners[0] as usize] += 1;
            }
            let fair = names.len() as f64 / f64::from(count);
            for (index, n) in per_shard.iter().enumerate() {
                let off = (*n as f64 - fair).abs() / fair;
                assert!(
                    off < 0.1,
                    "shard {index}/{count} owns {n}, fair is {fair:.0}"
                );
            }
        }
    }

    #[test]
    fn adding_a_shard_moves_about_one_in_n_plus_one_and_only_to_the_new_shard() {
        let names = names();
        for count in 1..=9u32 {
            let mut moved = 0;
            for name in &names {
                let before = owner(name, count);
                let after = owner(name, count + 1);
                if before != after {
                    moved += 1;
                    assert_eq!(after, count, "{name} moved between old shards");
                }
            }
            let fraction = moved as f64 / names.len() as f64;
            let ideal = 1.0 / f64::from(count + 1);
            assert!(
                (fraction - ideal).abs() < 0.02,
                "{count} -> {}: moved {fraction:.3}, ideal {ideal:.3}",
                count + 1
            );
        }
    }

    #[test]
    fn shards_parse_from_numbers_and_pod_names() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!("credwatch-1/4".parse(), Ok(Shard { index: 1, count: 4 }));
        assert_eq!(" 0 / 1 ".parse(), Ok(Shard { index: 0, count: 1 }));
        for bad in ["3/3", "1/0", "x/2", "2", "credwatch/2", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
