//! When a connection restored from the state store (or carried over by a reload) is first
//! probed: the schedule it had, moved on past the time the earlier process was last alive,
//! capped by the current settings, and caught up, spread, when it was missed while credwatch
//! was down.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::policy::{start_offset, CONFIRM_WITHIN};
use crate::config::Connection;
use crate::probe::State;
use crate::state::Restored;

/// When a connection restored from the state store is first probed; `None` while it stays
/// paused. `alive_at` is when the process that wrote the state was last known alive.
///
/// A row is written when something other than the times changed, so the due time it holds
/// may be some periods old: it moves on by whole periods to the first one after `alive_at`,
/// which the earlier process did not reach. That one, if still ahead, is kept (a restart
/// probes nothing early), but never later than the wait the current settings give (an
/// interval shortened while credwatch was stopped applies). If it has passed, the probe was
/// missed while credwatch was down and is caught up at a per-name offset within
/// min(interval, 60 s), so that many missed probes never fire in a burst.
pub(super) fn restored_due(
    connection: &Connection,
    restored: &Restored,
    alive_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if restored.memory.schedule.paused.is_some() {
        return None;
    }
    let delta = |d: Duration| chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX);
    let catch_up = now
        + delta(start_offset(
            &connection.name,
            connection.settings.interval.min(CONFIRM_WITHIN),
        ));
    let Some(mut due) = restored.memory.schedule.next_probe_at else {
        return Some(catch_up);
    };
    let period = delta(restored.memory.schedule.period);
    if period > chrono::TimeDelta::zero() && due < alive_at {
        let behind = (alive_at - due).num_milliseconds();
        let step = period.num_milliseconds().max(1);
        let periods = (behind + step - 1) / step;
        due += chrono::TimeDelta::milliseconds(periods.saturating_mul(step));
    }
    if due <= now {
        return Some(catch_up);
    }
    let interval = connection.settings.interval;
    let wait = match (
        restored.memory.pending,
        restored.memory.verdict.map(|v| v.state),
    ) {
        (Some(_), _) => interval.min(CONFIRM_WITHIN),
        (None, Some(State::Valid)) => interval,
        (None, Some(State::Invalid | State::Expired | State::Forbidden)) => {
            interval.max(connection.settings.auth_failure_interval)
        }
        _ => interval.max(restored.memory.schedule.backoff.unwrap_or(Duration::ZERO)),
    };
    Some(due.min(now + delta(wait)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Reason;
    use crate::state::Pause;

    fn connection() -> Connection {
        let text = "[[connection]]\nname = \"c\"\nurl = \"https://jira.example.com\"\ntoken = \"s\"\ninterval = \"5m\"\nauth_failure_interval = \"1h\"\n";
        crate::config::Config::from_sources(&[("t.toml".into(), text.to_owned())])
            .expect("loads")
            .connections
            .remove(0)
    }

    #[test]
    fn a_restored_connection_keeps_its_schedule_and_catches_up_what_it_missed_spread() {
        use crate::state::{Memory, Schedule, Standing};
        let conn = connection(); // interval 5m
        let now = chrono::Utc::now();
        let minutes = |m: i64| chrono::TimeDelta::minutes(m);
        let valid = Memory {
            verdict: Some(Standing {
                state: State::Valid,
                reason: Reason::Ok,
                http_status: Some(200),
                since: now - minutes(60),
            }),
            schedule: Schedule {
                period: Duration::from_secs(300),
                ..Schedule::default()
            },
            ..Memory::default()
        };
        let with = |change: &dyn Fn(&mut Schedule)| {
            let mut memory = valid.clone();
            change(&mut memory.schedule);
            Restored {
                memory,
                history: Vec::new(),
            }
        };
        // The row was written 3 periods ago; the process lived until a second ago: the next
        // due time is on the same rhythm, still ahead, and kept.
        let due = now - minutes(14);
        let restored = with(&|s| s.next_probe_at = Some(due));
        let alive = now - chrono::TimeDelta::seconds(1);
        assert_eq!(
            restored_due(&conn, &restored, alive, now),
            Some(due + minutes(15))
        );
        // Down for an hour: the probe was missed, caught up within min(interval, 60 s) at a
        // per-name offset (so many connections never fire together).
        let down = now - minutes(60);
        let restored = with(&|s| s.next_probe_at = Some(down - minutes(1)));
        let first = restored_due(&conn, &restored, down, now).expect("probed");
        assert!(first >= now && first < now + chrono::TimeDelta::seconds(60));
        assert_eq!(
            first - now,
            chrono::TimeDelta::from_std(start_offset("c", CONFIRM_WITHIN)).expect("fits")
        );
        // An interval shortened while stopped applies at once.
        let restored = with(&|s| {
            s.next_probe_at = Some(now + minutes(50));
            s.period = Duration::from_secs(3600);
        });
        assert_eq!(
            restored_due(&conn, &restored, now, now),
            Some(now + minutes(5))
        );
        // A paused connection stays paused.
        let paused = with(&|s| s.paused = Some(Pause::FailedLogins));
        assert_eq!(restored_due(&conn, &paused, now, now), None);
    }
}
