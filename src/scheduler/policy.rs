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
//! A stop lasts until the connection's secret or configuration changes.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::time::Instant;

use crate::config::{AuthMethod, Connection};
use crate::probe::{Outcome, Reason, State};

/// Consecutive failed Basic logins after which credwatch stops probing a connection.
pub const MAX_FAILED_LOGINS: u32 = 2;

/// The jitter range every backoff wait is multiplied by.
pub const JITTER: (f64, f64) = (0.7, 1.3);

/// Why probing of a connection stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// Two failed Basic logins in a row.
    FailedLogins,
    /// The account is CAPTCHA-locked.
    Locked,
}

impl Pause {
    /// What the operator reads in place of the reason's usual hint.
    pub fn hint(self) -> &'static str {
        match self {
            Pause::FailedLogins => {
                "credwatch stopped probing after 2 failed logins in a row, so as never to trip Jira's CAPTCHA lock: fix the password (or its file) and credwatch probes again at once"
            }
            Pause::Locked => {
                "the account is locked behind a CAPTCHA and credwatch stopped probing it: log in through the browser or have an admin reset the failed-login count, then change the password or the configuration and credwatch probes again at once"
            }
        }
    }

    /// A short label for logs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Pause::FailedLogins => "failed_logins",
            Pause::Locked => "locked",
        }
    }
}

/// What to do after a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Probe again after this long.
    After(Duration),
    /// Stop probing until the secret or the configuration changes.
    Stop(Pause),
}

/// An exponential backoff on `backon`'s builder, with the jitter applied on top.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    steps: ExponentialBackoff,
    max: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubles, and stops growing at `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let builder = ExponentialBuilder::default()
            .with_min_delay(initial)
            .with_max_delay(max)
            .with_factor(2.0)
            .without_max_times();
        Backoff {
            steps: builder.build(),
            builder,
            max,
        }
    }

    /// The next wait, multiplied by `jitter` (a value in [`JITTER`]) and capped at the maximum.
    pub fn next(&mut self, jitter: f64) -> Duration {
        let base = self.steps.next().unwrap_or(self.max);
        base.mul_f64(jitter).min(self.max)
    }

    /// Back to the initial wait.
    pub fn reset(&mut self) {
        self.steps = self.builder.build();
    }
}

/// A random jitter factor in [`JITTER`].
pub fn jitter() -> f64 {
    JITTER.0 + fastrand::f64() * (JITTER.1 - JITTER.0)
}

/// The per-connection politeness state.
#[derive(Debug)]
pub struct Policy {
    backoff: Backoff,
    failed_logins: u32,
    /// The current backoff wait, while probes reach no verdict.
    pub current_backoff: Option<Duration>,
}

impl Policy {
    /// A fresh policy for a connection.
    pub fn new(connection: &Connection) -> Policy {
        Policy {
            backoff: Backoff::new(connection.backoff_initial, connection.backoff_max),
            failed_logins: 0,
            current_backoff: None,
        }
    }

    /// Decides what follows `outcome`; `jitter` is a value in [`JITTER`].
    pub fn after(&mut self, connection: &Connection, outcome: &Outcome, jitter: f64) -> Decision {
        let interval = connection.interval;
        if outcome.state.is_verdict() {
            self.backoff.reset();
            self.current_backoff = None;
        }
        match outcome.state {
            State::Valid => {
                self.failed_logins = 0;
                Decision::After(interval)
            }
            State::Locked => Decision::Stop(Pause::Locked),
            State::Invalid | State::Expired | State::Forbidden => {
                if connection.auth == AuthMethod::Basic {
                    if is_failed_login(outcome.reason) {
                        self.failed_logins += 1;
                    } else {
                        // Jira accepted the login (e.g. wrong_account): the count starts over.
                        self.failed_logins = 0;
                    }
                    if self.failed_logins >= MAX_FAILED_LOGINS {
                        return Decision::Stop(Pause::FailedLogins);
                    }
                }
                Decision::After(interval.max(connection.auth_failure_interval))
            }
            State::Unknown => {
                let wait = self.backoff.next(jitter);
                self.current_backoff = Some(wait);
                Decision::After(interval.max(wait))
            }
        }
    }
}

/// Whether Jira counted this outcome as a failed login (Seraph's counter).
fn is_failed_login(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::Unauthorized | Reason::AnonymousFallback | Reason::PasswordAuthDeprecated
    )
}

/// When the next probe is due after one that was due at `scheduled`: `wait` later, or now if
/// that has already passed. A connection that fell behind (a long wait for a permit, a slow
/// site) probes once and then keeps its rhythm; missed ticks are never replayed in a burst.
pub fn next_due(scheduled: Instant, wait: Duration, now: Instant) -> Instant {
    (scheduled + wait).max(now)
}

/// How far a probe may start after it is due so that probes due close together start together.
///
/// Probes are started on a grid of [`SLACK`] slots, like the timer slack of Linux or systemd's
/// `AccuracySec=`: at 1,000 probes a second, a wakeup per probe costs more than the probe's
/// own work, and starting each slot's probes in one wakeup halves the CPU per probe (see
/// BENCHMARKS.md). 100 ms is invisible next to the ±30 % jitter of every interval; the
/// schedule's rhythm is kept on the exact due times, so the slots never add up to drift.
pub const SLACK: Duration = Duration::from_millis(100);

/// The slot in which a probe due at `due` starts: the first slot boundary, counted from
/// `epoch`, at or after `due`. Never earlier than `due` (a `Retry-After` stays a floor) and
/// less than [`SLACK`] later.
pub fn slot(due: Instant, epoch: Instant) -> Instant {
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
    use crate::probe::RateLimit;

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
    fn backoff_doubles_with_jitter_and_caps() {
        let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(backoff.next(1.0), Duration::from_secs(10));
        assert_eq!(backoff.next(1.0), Duration::from_secs(20));
        assert_eq!(backoff.next(0.7), Duration::from_secs(28));
        assert_eq!(
            backoff.next(1.3),
            Duration::from_secs(60),
            "80s capped at 60s"
        );
        assert_eq!(backoff.next(1.0), Duration::from_secs(60));
        backoff.reset();
        assert_eq!(backoff.next(1.3), Duration::from_secs(13));
        for _ in 0..1000 {
            let j = jitter();
            assert!((JITTER.0..=JITTER.1).contains(&j), "{j}");
        }
    }

    #[test]
    fn no_verdict_backs_off_but_never_below_the_interval_and_a_verdict_resets() {
        // interval 5m, backoff 10s..2m: the interval wins while the backoff is shorter.
        let conn = connection("pat");
        let mut policy = Policy::new(&conn);
        let timeout = outcome(State::Unknown, Reason::Timeout);
        assert_eq!(
            policy.after(&conn, &timeout, 1.0),
            Decision::After(Duration::from_secs(300))
        );
        assert_eq!(policy.current_backoff, Some(Duration::from_secs(10)));

        let mut slow = connection("pat");
        slow.interval = Duration::from_secs(15);
        let mut policy = Policy::new(&slow);
        let waits: Vec<Decision> = (0..5).map(|_| policy.after(&slow, &timeout, 1.0)).collect();
        let secs = |s| Decision::After(Duration::from_secs(s));
        assert_eq!(waits, [secs(15), secs(20), secs(40), secs(80), secs(120)]);
        assert_eq!(
            policy.after(&slow, &outcome(State::Valid, Reason::Ok), 1.0),
            secs(15)
        );
        assert_eq!(policy.current_backoff, None);
        assert_eq!(
            policy.after(&slow, &timeout, 1.0),
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
                policy.after(&conn, &outcome(state, Reason::Unauthorized), 1.0),
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
            policy.after(&conn, &failed, 1.0),
            Decision::After(Duration::from_secs(3600))
        );
        assert_eq!(
            policy.after(&conn, &failed, 1.0),
            Decision::Stop(Pause::FailedLogins)
        );

        // A timeout in between neither counts nor forgives.
        let mut policy = Policy::new(&conn);
        policy.after(&conn, &failed, 1.0);
        policy.after(&conn, &outcome(State::Unknown, Reason::Timeout), 1.0);
        assert_eq!(
            policy.after(&conn, &failed, 1.0),
            Decision::Stop(Pause::FailedLogins)
        );

        // A successful login starts the count over.
        let mut policy = Policy::new(&conn);
        policy.after(&conn, &failed, 1.0);
        policy.after(&conn, &outcome(State::Valid, Reason::Ok), 1.0);
        assert!(matches!(
            policy.after(&conn, &failed, 1.0),
            Decision::After(_)
        ));

        let mut policy = Policy::new(&conn);
        let locked = outcome(State::Locked, Reason::CaptchaRequired);
        assert_eq!(
            policy.after(&conn, &locked, 1.0),
            Decision::Stop(Pause::Locked)
        );

        // PATs do not go through Seraph's counter: they are never stopped for failures.
        let pat = connection("pat");
        let mut policy = Policy::new(&pat);
        for _ in 0..5 {
            assert!(matches!(
                policy.after(&pat, &failed, 1.0),
                Decision::After(_)
            ));
        }
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
