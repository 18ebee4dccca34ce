//! A Jira site's shared budget: the connections that share scheme, host and port share a
//! bound on probes in flight and a gate that a `rate_limited` outcome closes for everyone
//! until `Retry-After` (a floor) or the site's own backoff has passed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::policy::{self, Backoff};
use crate::config::Connection;
use crate::probe::{Outcome, Reason};

/// The longest `Retry-After` a site's gate honours.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// A group of connections that share a Jira site's budget.
pub(crate) struct Site {
    pub(super) permits: Semaphore,
    gate: Mutex<Gate>,
    /// Whether the gate holds a block or a backoff. Every probe of the site asks; while the
    /// site is open (nearly always) one atomic load answers, without the site's lock.
    gated: AtomicBool,
}

struct Gate {
    blocked_until: Option<Instant>,
    backoff: Option<Backoff>,
}

impl Site {
    pub(super) fn new(permits: usize) -> Site {
        Site {
            permits: Semaphore::new(permits),
            gate: Mutex::new(Gate {
                blocked_until: None,
                backoff: None,
            }),
            gated: AtomicBool::new(false),
        }
    }

    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Until when the site is closed, if it is.
    pub(crate) fn blocked_until(&self, now: Instant) -> Option<Instant> {
        if !self.gated.load(Ordering::Acquire) {
            return None;
        }
        self.gate().blocked_until.filter(|until| *until > now)
    }

    /// Reopens the gate and resets its backoff: an answer that is not a rate limit came (a
    /// token endpoint that issued a token).
    pub(super) fn reopen(&self) {
        if self.gated.load(Ordering::Acquire) {
            let mut gate = self.gate();
            gate.backoff = None;
            gate.blocked_until = None;
            self.gated.store(false, Ordering::Release);
        }
    }

    /// Applies an outcome to the site: a rate limit closes it (`Retry-After` as a floor under
    /// the site's own exponential backoff); any other answer from Jira reopens it and resets
    /// the backoff. Returns when the site reopens, if closed.
    pub(super) fn observe(
        &self,
        connection: &Connection,
        outcome: &Outcome,
        now: Instant,
    ) -> Option<Instant> {
        let limited = outcome.reason == Reason::RateLimited;
        let reopens = !limited && outcome.http_status.is_some();
        // Nothing to change: not a rate limit, and either no answer or nothing to reopen.
        let changes = limited || (reopens && self.gated.load(Ordering::Acquire));
        if !changes {
            return None;
        }
        let mut gate = self.gate();
        if outcome.reason == Reason::RateLimited {
            let backoff = gate
                .backoff
                .get_or_insert_with(|| {
                    Backoff::new(
                        connection.settings.backoff_initial,
                        connection.settings.backoff_max,
                    )
                })
                .next(policy::jitter());
            // `Retry-After` is the site's word: a day at most (a larger one is broken, or hostile,
            // and would stop the site's probes for good, or overflow the clock).
            let floor = outcome
                .retry_after
                .map(|r| r.delay_from(Utc::now()).min(MAX_RETRY_AFTER))
                .unwrap_or(Duration::ZERO);
            let until = now + backoff.max(floor);
            gate.blocked_until = Some(gate.blocked_until.map_or(until, |u| u.max(until)));
            self.gated.store(true, Ordering::Release);
            gate.blocked_until
        } else {
            if reopens {
                gate.backoff = None;
                gate.blocked_until = None;
                self.gated.store(false, Ordering::Release);
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::RetryAfter;

    #[test]
    fn a_retry_after_beyond_a_day_closes_the_site_for_a_day() {
        let text =
            "[[connection]]\nname = \"c\"\nurl = \"https://jira.example.com\"\ntoken = \"t\"\n";
        let connection = crate::config::Config::from_sources(&[("t.toml".into(), text.into())])
            .expect("loads")
            .connections
            .remove(0);
        for retry_after in [
            RetryAfter::Seconds(u64::MAX),
            RetryAfter::Seconds(10 * 86_400),
        ] {
            let mut outcome = Outcome::without_answer(
                connection.settings.credential_type(),
                Reason::RateLimited,
                "429".to_owned(),
                std::time::Instant::now(),
            );
            outcome.http_status = Some(429);
            outcome.retry_after = Some(retry_after);
            let site = Site::new(1);
            let now = Instant::now();
            let until = site.observe(&connection, &outcome, now).expect("closed");
            let wait = until - now;
            assert!(
                wait >= MAX_RETRY_AFTER
                    && wait <= MAX_RETRY_AFTER + connection.settings.backoff_max
            );
        }
    }
}
