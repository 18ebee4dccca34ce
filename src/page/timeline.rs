//! A connection's recent history as the status page draws it: one cell per UTC day, coloured
//! by the worst verdict the credential had that day, from the state changes the board keeps.
//!
//! `unknown` (no verdict) colours a day only when it had no verdict at all, such as the days
//! before credwatch watched the connection: a day that began before the first probe and then
//! turned `valid` is a valid day.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::probe::State;
use crate::state::Transition;

/// The verdicts from worst to least bad: a day takes the first it saw.
const WORST_FIRST: [State; 5] = [
    State::Locked,
    State::Expired,
    State::Invalid,
    State::Forbidden,
    State::Valid,
];

/// One day of the strip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Day {
    /// The UTC date, `2026-11-30`.
    pub(crate) date: String,
    /// The worst verdict of the day, or `unknown`.
    pub(crate) state: &'static str,
}

/// The last `count` days up to `now`'s, oldest first, for a connection whose state changes are
/// `changes` (oldest first) and whose state is now `current`.
pub(crate) fn days(
    changes: &[Transition],
    current: State,
    now: DateTime<Utc>,
    count: u32,
) -> Vec<Day> {
    let today = now.date_naive();
    (0..count)
        .rev()
        .map(|back| {
            let date = today - Duration::days(i64::from(back));
            Day {
                date: date.format("%Y-%m-%d").to_string(),
                state: worst_on(date, changes, current).as_str(),
            }
        })
        .collect()
}

/// The state at the start of `at`: after the last change before it; before any change, the
/// state the first change left (or the current state when nothing changed).
fn state_at(at: DateTime<Utc>, changes: &[Transition], current: State) -> State {
    match changes.iter().rev().find(|change| change.at < at) {
        Some(change) => change.to,
        None => changes.first().map_or(current, |first| first.from),
    }
}

fn worst_on(date: NaiveDate, changes: &[Transition], current: State) -> State {
    let Some(start) = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc()) else {
        return State::Unknown;
    };
    let end = start + Duration::days(1);
    let mut seen = vec![state_at(start, changes, current)];
    seen.extend(
        changes
            .iter()
            .filter(|change| change.at >= start && change.at < end)
            .map(|change| change.to),
    );
    WORST_FIRST
        .into_iter()
        .find(|state| seen.contains(state))
        .unwrap_or(State::Unknown)
}

/// What the strip says to a screen reader: "last 30 days: 27 valid, 2 invalid, 1 unknown".
pub(crate) fn label(days: &[Day]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for day in days {
        match counts.iter_mut().find(|(state, _)| *state == day.state) {
            Some((_, n)) => *n += 1,
            None => counts.push((day.state, 1)),
        }
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    format!("last {} days: {}", days.len(), parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Reason;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn change(time: &str, from: State, to: State) -> Transition {
        Transition {
            at: at(time),
            from,
            to,
            reason: Reason::Ok,
        }
    }

    #[test]
    fn a_credential_that_broke_and_recovered() {
        let changes = [
            change("2026-11-27T10:00:00Z", State::Unknown, State::Valid),
            change("2026-11-29T08:00:00Z", State::Valid, State::Invalid),
            change("2026-11-30T09:30:00Z", State::Invalid, State::Valid),
        ];
        let days = days(&changes, State::Valid, at("2026-12-01T12:00:00Z"), 7);
        let states: Vec<&str> = days.iter().map(|d| d.state).collect();
        assert_eq!(
            states,
            ["unknown", "unknown", "valid", "valid", "invalid", "invalid", "valid"]
        );
        assert_eq!(days[0].date, "2026-11-25");
        assert_eq!(days[6].date, "2026-12-01");
        assert_eq!(label(&days), "last 7 days: 2 unknown, 3 valid, 2 invalid");
    }

    #[test]
    fn without_changes_every_day_is_the_current_state() {
        let days = days(&[], State::Locked, at("2026-12-01T00:00:00Z"), 3);
        assert!(days.iter().all(|d| d.state == "locked"));
    }

    #[test]
    fn a_short_outage_colours_its_day() {
        let changes = [
            change("2026-11-01T00:00:00Z", State::Unknown, State::Valid),
            change("2026-11-30T13:00:00Z", State::Valid, State::Expired),
            change("2026-11-30T13:05:00Z", State::Expired, State::Valid),
        ];
        let days = days(&changes, State::Valid, at("2026-12-01T08:00:00Z"), 3);
        let states: Vec<&str> = days.iter().map(|d| d.state).collect();
        assert_eq!(states, ["valid", "expired", "valid"]);
    }
}
