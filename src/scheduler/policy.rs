//! When to probe next: the politeness rules, as pure functions of the outcome, so that they
//! are tested without a clock or a network.
//!
//! - A verdict of `valid`: the next probe after `interval`.
//! - `invalid`, `expired`, `forbidden`: after `auth_failure_interval` (rejected credentials are
//!   not hammered). For `auth = "basic"`, a definite failed login is counted, and after the
//!   second in a row probing stops: Jira's CAPTCHA lock counts failed logins, and credwatch
//!   must never be the one to trip it.
//! - `locked`: probing stops at once.
//! - No verdict: exponential backoff from `backoff_initial`, doubling, capped at `backoff_max`,
//!   each wait multiplied by a random jitter in [0.7, 1.3]; a verdict resets it. The wait is
//!   never shorter than `interval`.
//!
//! A rejection (`invalid`, `expired`, `forbidden`) that follows a `valid` verdict is not
//! believed at once: it is confirmed by one more probe within [`CONFIRM_WITHIN`] (or the
//! interval, if shorter), and the state stands meanwhile. For Basic, that probe is the second
//! and last failed login the rule above allows. A first verdict and `locked` need none.
//!
//! A stop lasts until `credwatch resume` lifts it. The failed-login count here is the
//! connection's view of its login account's budget (`store/logins.rs`), which every
//! connection of the account shares; a new secret starts a fresh policy, not a fresh budget.

use std::time::Duration;

use tokio::time::Instant;

pub(crate) use super::backoff::{jitter, Backoff};
use crate::config::{AuthMethod, Connection};
use crate::probe::{Outcome, State};
use crate::state::{Pause, Pending, Restored};

/// How soon a rejection after a `valid` verdict is confirmed, at the latest.
pub(crate) const CONFIRM_WITHIN: Duration = Duration::from_secs(60);

pub(crate) use crate::store::logins::MAX_FAILED_LOGINS;

/// What to do after a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Probe again after this long.
    After(Duration),
    /// Stop probing until the secret or the configuration changes.
    Stop(Pause),
}

/// What follows a probe: the decision, and whether its verdict stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// When to probe next, or to stop.
    pub decision: Decision,
    /// Whether the outcome's verdict becomes the standing one (`false` while a rejection
    /// waits for its confirmation).
    pub adopt: bool,
}

/// The per-connection politeness state.
#[derive(Debug)]
pub(crate) struct Policy {
    backoff: Backoff,
    failed_logins: u32,
    /// The current backoff wait, while probes reach no verdict.
    pub current_backoff: Option<Duration>,
    /// The standing verdict's state.
    standing: Option<State>,
    /// A rejection waiting for its confirmation.
    pending: Option<Pending>,
}

impl Policy {
    /// A fresh policy for a connection.
    pub(crate) fn new(connection: &Connection) -> Policy {
        Policy {
            backoff: Backoff::new(
                connection.settings.backoff_initial,
                connection.settings.backoff_max,
            ),
            failed_logins: 0,
            current_backoff: None,
            standing: None,
            pending: None,
        }
    }

    /// The policy of a connection whose task starts from what was remembered of it.
    pub(crate) fn restore(connection: &Connection, restored: &Restored) -> Policy {
        let mut policy = Policy::new(connection);
        policy.failed_logins = restored.memory.schedule.failed_logins;
        policy.standing = restored.memory.verdict.map(|v| v.state);
        policy.pending = restored.memory.pending;
        if let Some(reached) = restored.memory.schedule.backoff {
            policy.backoff.resume_from(reached);
            policy.current_backoff = Some(reached);
        }
        policy
    }

    /// The rejection waiting for its confirmation.
    pub(crate) fn pending(&self) -> Option<Pending> {
        self.pending
    }

    /// Consecutive failed Basic logins.
    pub(crate) fn failed_logins(&self) -> u32 {
        self.failed_logins
    }

    /// Takes the failed-login count from the shared budget (which `check` spends too).
    pub(crate) fn set_failed_logins(&mut self, failed: u32) {
        self.failed_logins = failed;
    }

    /// A person lifted the pause: the count starts over.
    pub(crate) fn resume(&mut self) {
        self.failed_logins = 0;
        self.pending = None;
    }

    /// The budget was spent before this connection could send its login (by `check`, or by
    /// logins that never got an answer): stop. A rejection waiting for confirmation is
    /// confirmed by those logins; returns whether it was.
    pub(crate) fn spent(&mut self, pause: Pause) -> (Decision, bool) {
        let confirmed = self.pending.take().is_some();
        if pause == Pause::FailedLogins {
            self.failed_logins = self.failed_logins.max(MAX_FAILED_LOGINS);
        }
        (Decision::Stop(pause), confirmed)
    }

    /// Decides what follows `outcome`; `jitter` is a value in [`JITTER`].
    pub(crate) fn after(
        &mut self,
        connection: &Connection,
        outcome: &Outcome,
        jitter: f64,
    ) -> Step {
        let interval = connection.settings.interval;
        let state = outcome.state;
        if state.is_verdict() {
            self.backoff.reset();
            self.current_backoff = None;
        }
        let rejected = matches!(state, State::Invalid | State::Expired | State::Forbidden);
        // A first rejection after `valid` waits for one more probe.
        let confirming = rejected && self.pending.is_none() && self.standing == Some(State::Valid);
        if confirming {
            self.pending = Some(Pending {
                state,
                reason: outcome.reason,
                since: outcome.finished_at,
            });
        } else if state.is_verdict() {
            self.pending = None;
        }
        let decision = match state {
            State::Valid => {
                self.failed_logins = 0;
                Decision::After(interval)
            }
            State::Locked => Decision::Stop(Pause::Locked),
            State::Invalid | State::Expired | State::Forbidden => {
                let mut stop = false;
                if connection.settings.auth == AuthMethod::Basic {
                    if outcome.reason.is_failed_login() {
                        self.failed_logins += 1;
                    } else {
                        // Jira accepted the login (e.g. wrong_account): the count starts over.
                        self.failed_logins = 0;
                    }
                    stop = self.failed_logins >= MAX_FAILED_LOGINS;
                }
                if stop {
                    Decision::Stop(Pause::FailedLogins)
                } else if confirming {
                    Decision::After(interval.min(CONFIRM_WITHIN))
                } else {
                    Decision::After(interval.max(connection.settings.auth_failure_interval))
                }
            }
            State::Unknown => {
                let wait = self.backoff.next(jitter);
                self.current_backoff = Some(wait);
                Decision::After(interval.max(wait))
            }
        };
        // No probe follows a stop: what it saw stands, confirmed or not.
        let mut adopt = state.is_verdict() && !confirming;
        if matches!(decision, Decision::Stop(_)) && self.pending.take().is_some() {
            adopt = true;
        }
        if adopt {
            self.standing = Some(state);
        }
        Step { decision, adopt }
    }
}

/// When the next probe is due after one that was due at `scheduled`: `wait` later, or now if
/// that has already passed. A connection that fell behind (a long wait for a permit, a slow
/// site) probes once and then keeps its rhythm; missed ticks are never replayed in a burst.
pub(crate) fn next_due(scheduled: Instant, wait: Duration, now: Instant) -> Instant {
    (scheduled + wait).max(now)
}

/// How far a probe may start after it is due so that probes due close together start together.
///
/// Probes are started on a grid of [`SLACK`] slots, like the timer slack of Linux or systemd's
/// `AccuracySec=`: at 1,000 probes a second, a wakeup per probe costs more than the probe's
/// own work, and starting each slot's probes in one wakeup halves the CPU per probe (see
/// BENCHMARKS.md). 100 ms is invisible next to the ±30 % jitter of every interval; the
/// schedule's rhythm is kept on the exact due times, so the slots never add up to drift.
pub(crate) const SLACK: Duration = Duration::from_millis(100);

/// The slot in which a probe due at `due` starts: the first slot boundary, counted from
/// `epoch`, at or after `due`. Never earlier than `due` (a `Retry-After` stays a floor) and
/// less than [`SLACK`] later.
pub(crate) fn slot(due: Instant, epoch: Instant) -> Instant {
    let Some(since) = due.checked_duration_since(epoch) else {
        return due;
    };
    let slack = SLACK.as_nanos();
    let slots = since.as_nanos().div_ceil(slack);
    u64::try_from(slots * slack)
        .ok()
        .and_then(|nanos| epoch.checked_add(Duration::from_nanos(nanos)))
        .unwrap_or(due)
}

/// A stable offset in `[0, interval)` for a connection name, so that first probes spread over
/// the first interval and land at the same place on every start and reload.
pub fn start_offset(name: &str, interval: Duration) -> Duration {
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let millis = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(hash % millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{RateLimit, Reason};

    fn connection(auth: &str) -> Connection {
        let secret = if auth == "basic" { "password" } else { "token" };
        let text = format!(
            "[[connection]]\nname = \"c\"\nurl = \"https://jira.example.com\"\nauth = \"{auth}\"\nusername = \"svc\"\n{secret} = \"s\"\ninterval = \"5m\"\nbackoff_initial = \"10s\"\nbackoff_max = \"2m\"\nauth_failure_interval = \"1h\"\n"
        );
        crate::config::Config::from_sources(&[("t.toml".into(), text)])
            .expect("loads")
            .connections
            .remove(0)
    }

    fn outcome(state: State, reason: Reason) -> Outcome {
        Outcome {
            state,
            reason,
            http_status: None,
            latency: Duration::ZERO,
            identity: None,
            rate_limit: RateLimit::default(),
            retry_after: None,
            hint: None,
            detail: None,
            finished_at: chrono::Utc::now(),
            token_request: crate::probe::TokenRequest::None,
        }
    }

    #[test]
    fn probes_start_in_shared_slots_never_before_they_are_due() {
        let epoch = Instant::now();
        let at = |ms: u64| epoch + Duration::from_millis(ms);
        assert_eq!(slot(at(0), epoch), at(0));
        assert_eq!(slot(at(1), epoch), at(100));
        assert_eq!(slot(at(99), epoch), at(100));
        assert_eq!(slot(at(100), epoch), at(100));
        assert_eq!(slot(at(100) + Duration::from_nanos(1), epoch), at(200));
        assert_eq!(slot(at(123_456), epoch), at(123_500));
        // Due before the grid began: at once, as due.
        let before = Instant::now();
        let later_epoch = before + Duration::from_secs(1);
        assert_eq!(slot(before, later_epoch), before);
        for ms in (0..10_000).step_by(7) {
            let due = at(ms) + Duration::from_micros(ms % 1000);
            let start = slot(due, epoch);
            assert!(start >= due && start - due < SLACK, "{ms} ms");
            assert_eq!(slot(start, epoch), start, "a slot boundary is its own slot");
        }
    }

    #[test]
    fn no_verdict_backs_off_but_never_below_the_interval_and_a_verdict_resets() {
        // interval 5m, backoff 10s..2m: the interval wins while the backoff is shorter.
        let conn = connection("pat");
        let mut policy = Policy::new(&conn);
        let timeout = outcome(State::Unknown, Reason::Timeout);
        assert_eq!(
            policy.after(&conn, &timeout, 1.0).decision,
            Decision::After(Duration::from_secs(300))
        );
        assert_eq!(policy.current_backoff, Some(Duration::from_secs(10)));

        let mut slow = connection("pat");
        slow.settings.interval = Duration::from_secs(15);
        let mut policy = Policy::new(&slow);
        let waits: Vec<Decision> = (0..5)
            .map(|_| policy.after(&slow, &timeout, 1.0).decision)
            .collect();
        let secs = |s| Decision::After(Duration::from_secs(s));
        assert_eq!(waits, [secs(15), secs(20), secs(40), secs(80), secs(120)]);
        assert_eq!(
            policy
                .after(&slow, &outcome(State::Valid, Reason::Ok), 1.0)
                .decision,
            secs(15)
        );
        assert_eq!(policy.current_backoff, None);
        assert_eq!(
            policy.after(&slow, &timeout, 1.0).decision,
            secs(15),
            "reset to 10s, below the interval"
        );
    }

    #[test]
    fn rejected_credentials_wait_the_auth_failure_interval() {
        let conn = connection("pat");
        let mut policy = Policy::new(&conn);
        for state in [State::Invalid, State::Expired, State::Forbidden] {
            assert_eq!(
                policy
                    .after(&conn, &outcome(state, Reason::Unauthorized), 1.0)
                    .decision,
                Decision::After(Duration::from_secs(3600)),
                "{state}"
            );
        }
    }

    #[test]
    fn basic_stops_after_two_failed_logins_and_locked_at_once() {
        let conn = connection("basic");
        let failed = outcome(State::Invalid, Reason::Unauthorized);
        let mut policy = Policy::new(&conn);
        assert_eq!(
            policy.after(&conn, &failed, 1.0).decision,
            Decision::After(Duration::from_secs(3600))
        );
        assert_eq!(
            policy.after(&conn, &failed, 1.0).decision,
            Decision::Stop(Pause::FailedLogins)
        );

        // A timeout in between neither counts nor forgives.
        let mut policy = Policy::new(&conn);
        policy.after(&conn, &failed, 1.0);
        policy.after(&conn, &outcome(State::Unknown, Reason::Timeout), 1.0);
        assert_eq!(
            policy.after(&conn, &failed, 1.0).decision,
            Decision::Stop(Pause::FailedLogins)
        );

        // A successful login starts the count over.
        let mut policy = Policy::new(&conn);
        policy.after(&conn, &failed, 1.0);
        policy.after(&conn, &outcome(State::Valid, Reason::Ok), 1.0);
        assert!(matches!(
            policy.after(&conn, &failed, 1.0).decision,
            Decision::After(_)
        ));

        let mut policy = Policy::new(&conn);
        let locked = outcome(State::Locked, Reason::CaptchaRequired);
        assert_eq!(
            policy.after(&conn, &locked, 1.0).decision,
            Decision::Stop(Pause::Locked)
        );

        // PATs do not go through Seraph's counter: they are never stopped for failures.
        let pat = connection("pat");
        let mut policy = Policy::new(&pat);
        for _ in 0..5 {
            assert!(matches!(
                policy.after(&pat, &failed, 1.0).decision,
                Decision::After(_)
            ));
        }
    }

    #[test]
    fn a_rejection_after_valid_is_confirmed_by_one_more_probe_before_it_counts() {
        let valid = outcome(State::Valid, Reason::Ok);
        let rejected = outcome(State::Invalid, Reason::Unauthorized);
        let minute = Decision::After(Duration::from_secs(60));

        // A token: the blip waits a minute, a second valid answer clears it.
        let pat = connection("pat");
        let mut policy = Policy::new(&pat);
        assert!(policy.after(&pat, &valid, 1.0).adopt);
        let step = policy.after(&pat, &rejected, 1.0);
        assert_eq!((step.decision, step.adopt), (minute, false));
        assert_eq!(
            policy.pending().map(|p| p.reason),
            Some(Reason::Unauthorized)
        );
        // No verdict in between keeps it pending.
        assert!(
            !policy
                .after(&pat, &outcome(State::Unknown, Reason::Timeout), 1.0)
                .adopt
        );
        assert!(policy.pending().is_some());
        assert!(policy.after(&pat, &valid, 1.0).adopt);
        assert_eq!(policy.pending(), None);

        // A real rejection: confirmed by the next probe, then the long wait.
        policy.after(&pat, &rejected, 1.0);
        let step = policy.after(&pat, &rejected, 1.0);
        assert_eq!(step.decision, Decision::After(Duration::from_secs(3600)));
        assert!(step.adopt);
        assert_eq!(policy.pending(), None);
        // From then on a rejection is no longer "after valid".
        assert!(policy.after(&pat, &rejected, 1.0).adopt);

        // A first verdict needs no confirmation, nor does `locked`.
        let mut fresh = Policy::new(&pat);
        assert!(fresh.after(&pat, &rejected, 1.0).adopt);
        let basic = connection("basic");
        let mut policy = Policy::new(&basic);
        policy.after(&basic, &valid, 1.0);
        let step = policy.after(
            &basic,
            &outcome(State::Locked, Reason::CaptchaRequired),
            1.0,
        );
        assert_eq!(
            (step.decision, step.adopt),
            (Decision::Stop(Pause::Locked), true)
        );

        // Basic: the confirming probe is the second and last failed login.
        let mut policy = Policy::new(&basic);
        policy.after(&basic, &valid, 1.0);
        let first = policy.after(&basic, &rejected, 1.0);
        assert_eq!((first.decision, first.adopt), (minute, false));
        let second = policy.after(&basic, &rejected, 1.0);
        assert_eq!(
            (second.decision, second.adopt),
            (Decision::Stop(Pause::FailedLogins), true)
        );

        // Logins spent elsewhere confirm a pending rejection.
        let mut policy = Policy::new(&basic);
        policy.after(&basic, &valid, 1.0);
        policy.after(&basic, &rejected, 1.0);
        assert_eq!(
            policy.spent(Pause::FailedLogins),
            (Decision::Stop(Pause::FailedLogins), true)
        );
    }

    #[test]
    fn missed_ticks_are_not_replayed() {
        let start = Instant::now();
        let interval = Duration::from_secs(60);
        // On time: the rhythm is kept, measured from the due time, not from the probe's end.
        assert_eq!(
            next_due(start, interval, start + Duration::from_secs(2)),
            start + interval
        );
        // Ten intervals late: one probe now, then back to the rhythm from there.
        let late = start + interval * 10;
        let next = next_due(start, interval, late);
        assert_eq!(next, late);
        assert_eq!(
            next_due(next, interval, next + Duration::from_secs(1)),
            late + interval
        );
    }

    #[test]
    fn start_offsets_are_stable_and_spread() {
        let interval = Duration::from_secs(300);
        assert_eq!(
            start_offset("jira-prod", interval),
            start_offset("jira-prod", interval)
        );
        let offsets: std::collections::BTreeSet<Duration> = (0..100)
            .map(|i| start_offset(&format!("conn-{i}"), interval))
            .collect();
        assert!(offsets.len() >= 99, "distinct offsets");
        assert!(offsets.iter().all(|o| *o < interval));
        let early = offsets.iter().filter(|o| o.as_secs() < 150).count();
        assert!(
            (30..=70).contains(&early),
            "about half in the first half: {early}"
        );
    }
}
