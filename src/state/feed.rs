//! The change feed behind the API's `?changed_since=TOKEN`: a counter that moves on each time
//! a connection changes in a way the page shows (its state, its reason, a pending
//! confirmation, its expiry or its pause) or leaves the board, so that a client that holds a
//! token fetches only what changed since. A probe that changes nothing but its times moves
//! nothing.
//!
//! A token names the process that issued it (a random epoch drawn at start) and the counter.
//! A token of another process (a restart, the other replica behind one Service), or one older
//! than the removals the feed still remembers, is [`Gone`]: the client reloads in full. The
//! board ([`super::Board`]) owns the feed and calls it under its lock.

use std::collections::VecDeque;
use std::fmt;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::probe::{Identity, Reason, State};

use super::{Entry, Pause, Pending};

/// How many removed names the feed remembers; a token older than the oldest one forgotten is
/// [`Gone`].
const REMOVED_KEPT: usize = 4096;

/// A position in the feed, as the API hands it out: `"{epoch:016x}-{seq}-{ms}"`, `ms` the
/// time it was issued (a rotation that fell due since is a change, though nothing moved the
/// counter: time did).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    epoch: u64,
    seq: u64,
    at_ms: i64,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}-{}", self.epoch, self.seq, self.at_ms)
    }
}

/// Where a client's token stands: the counter and the time it was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Since {
    /// The feed's counter then.
    pub seq: u64,
    /// When it was issued.
    pub at: DateTime<Utc>,
}

/// A token that is not one at all (a client's mistake: 400, unlike [`Gone`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("changed_since: {0:?} is not a token this API hands out (take `changes` from an answer)")]
pub(crate) struct Malformed(String);

impl std::str::FromStr for Token {
    type Err = Malformed;

    fn from_str(text: &str) -> Result<Token, Malformed> {
        let malformed = || Malformed(text.to_owned());
        let mut parts = text.splitn(3, '-');
        let (Some(epoch), Some(seq), Some(at_ms)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        if epoch.len() != 16 {
            return Err(malformed());
        }
        Ok(Token {
            epoch: u64::from_str_radix(epoch, 16).map_err(|_| malformed())?,
            seq: seq.parse().map_err(|_| malformed())?,
            at_ms: at_ms.parse().map_err(|_| malformed())?,
        })
    }
}

/// A token this process did not issue, or one so old that the feed forgot what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this token was not issued by this credwatch process (it restarted, or another replica answered), or it is too old: load the connections in full")]
pub(crate) struct Gone;

/// What of a connection the page shows and a refresh must fetch when it changes; its expiry
/// is compared apart, when its token list or configuration changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Visible {
    state: State,
    reason: Option<Reason>,
    pending: Option<Pending>,
    paused: Option<Pause>,
    /// The account the product reported, which the row shows and `?q` searches.
    identity: Option<Arc<Identity>>,
}

impl Visible {
    /// What `entry` shows now.
    pub(crate) fn of(entry: &Entry) -> Visible {
        Visible {
            state: entry.state(),
            reason: entry.memory.last.as_ref().map(|o| o.reason),
            pending: entry.memory.pending,
            paused: entry.memory.schedule.paused,
            identity: entry.memory.last.as_ref().and_then(|o| o.identity.clone()),
        }
    }
}

/// The counter and the names removed recently.
#[derive(Debug)]
pub(crate) struct Feed {
    epoch: u64,
    seq: u64,
    /// `(seq, name)` of each removal, oldest first, at most [`REMOVED_KEPT`].
    removed: VecDeque<(u64, String)>,
    /// Tokens older than this lost removals the feed forgot.
    horizon: u64,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            // Never 0, so that no token of a board that was never started looks valid.
            epoch: fastrand::u64(1..),
            seq: 0,
            removed: VecDeque::new(),
            horizon: 0,
        }
    }
}

impl Feed {
    /// The token for the feed as it stands at `now`.
    pub(crate) fn token(&self, now: DateTime<Utc>) -> Token {
        Token {
            epoch: self.epoch,
            seq: self.seq,
            at_ms: now.timestamp_millis(),
        }
    }

    /// The number the next change takes, without taking it.
    pub(crate) fn next(&self) -> u64 {
        self.seq + 1
    }

    /// Takes the next number: something changed.
    pub(crate) fn advance(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Records that `name` left the board.
    pub(crate) fn removed(&mut self, name: &str) {
        let seq = self.advance();
        self.removed.push_back((seq, name.to_owned()));
        while self.removed.len() > REMOVED_KEPT {
            if let Some((seq, _)) = self.removed.pop_front() {
                self.horizon = seq;
            }
        }
    }

    /// Where `since` stands in this feed: its counter, if this process issued it and the
    /// feed still knows everything that changed after it.
    pub(crate) fn check(&self, since: Token) -> Result<Since, Gone> {
        if since.epoch != self.epoch || since.seq > self.seq || since.seq < self.horizon {
            return Err(Gone);
        }
        let at = DateTime::from_timestamp_millis(since.at_ms).ok_or(Gone)?;
        Ok(Since { seq: since.seq, at })
    }

    /// The names removed after counter `seq`, oldest first (a name may have come back since).
    pub(crate) fn removed_since(&self, seq: u64) -> Vec<String> {
        self.removed
            .iter()
            .filter(|(at, _)| *at > seq)
            .map(|(_, name)| name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_read_back_and_nonsense_is_malformed() {
        let feed = Feed::default();
        let token = feed.token(Utc::now());
        assert_eq!(token.to_string().parse::<Token>(), Ok(token));
        for bad in [
            "",
            "12",
            "abc-1",
            "0000000000000001-1",
            "0000000000000001-x-1",
            "0000000000000001-1-x",
            "zzzzzzzzzzzzzzzz-1-1",
        ] {
            assert!(bad.parse::<Token>().is_err(), "{bad}");
        }
    }

    #[test]
    fn another_process_or_a_forgotten_past_is_gone() {
        let mut feed = Feed::default();
        let now = Utc::now();
        let start = feed.token(now);
        feed.removed("a");
        let at = DateTime::from_timestamp_millis(now.timestamp_millis()).expect("time");
        assert_eq!(feed.check(start), Ok(Since { seq: 0, at }));
        assert_eq!(feed.removed_since(0), ["a"]);
        let other = Feed::default();
        assert_eq!(other.check(start), Err(Gone), "another process's token");
        let ahead = Token { seq: 99, ..start };
        assert_eq!(
            feed.check(ahead),
            Err(Gone),
            "a counter this feed never reached"
        );
        for i in 0..REMOVED_KEPT {
            feed.removed(&format!("n{i}"));
        }
        assert_eq!(
            feed.check(start),
            Err(Gone),
            "the removal of a is forgotten"
        );
        assert!(feed.check(feed.token(now)).is_ok());
    }
}
