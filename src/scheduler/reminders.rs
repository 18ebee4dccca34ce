//! The expiry reminders of a connection's probe loop: a standing warning (rotation due, a
//! never-expiring token, an unknown expiry) is logged at WARN once a day, not on every probe,
//! and an absent PAT API once.

use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use crate::config::Connection;
use crate::expiry::Listing;
use crate::state::Board;

/// How often a standing expiry warning (rotation due, a never-expiring token, an unknown
/// expiry) is logged again.
pub(crate) const REMINDER_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// How often a connection's expiry reminders are looked at (they log at most once a day).
pub(super) const REMINDER_CHECK: Duration = Duration::from_secs(60);

/// When each standing expiry warning was last logged.
#[derive(Debug, Default)]
pub(super) struct Reminders {
    pub(super) checked: Option<Instant>,
    rotation: Option<Instant>,
    never_expires: Option<Instant>,
    note: Option<Instant>,
    unavailable_said: bool,
}

impl Reminders {
    /// Logs what is due about the connection's expiry: rotation due, a never-expiring token
    /// and an unknown expiry at WARN once a day; an absent PAT API once.
    pub(super) fn remind(&mut self, status: &Board, connection: &Connection, now: Instant) {
        let Some(assessment) = status.assessment(&connection.name, Utc::now()) else {
            return;
        };
        let due =
            |last: Option<Instant>| last.is_none_or(|at| now.duration_since(at) >= REMINDER_PERIOD);
        if assessment.rotation_due == Some(true) && due(self.rotation) {
            self.rotation = Some(now);
            tracing::warn!(
                connection = %connection.name,
                expires_at = %assessment.expires_at.map_or("unknown".to_owned(), |t| t.to_rfc3339()),
                source = assessment.source.map_or("-", |s| s.as_str()),
                created_at = %assessment.created_at.map_or("unknown".to_owned(), |t| t.to_rfc3339()),
                "token rotation is due: create a new token, update the integration, then revoke the old one"
            );
        }
        if assessment.never_expires == Some(true) && due(self.never_expires) {
            self.never_expires = Some(now);
            tracing::warn!(
                connection = %connection.name,
                "policy: the token never expires; create tokens with an expiry (90 days is the usual recommendation)"
            );
        }
        if let Some(note) = &assessment.note {
            let unavailable = status.read(|inner| {
                inner
                    .connections
                    .get(&connection.name)
                    .is_some_and(|e| matches!(e.listing(), Some(Listing::Unavailable(_))))
            });
            if unavailable {
                if !self.unavailable_said {
                    self.unavailable_said = true;
                    tracing::info!(connection = %connection.name, "{note}");
                }
            } else if due(self.note) {
                self.note = Some(now);
                tracing::warn!(connection = %connection.name, "the token's expiry is unknown: {note}");
            }
        }
    }
}
