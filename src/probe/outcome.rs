//! What one probe found: the [`Outcome`] that the scheduler records, built from the
//! [`Verdict`] on an answer (with the answer's rate-limit headers and `Retry-After`), or from
//! a failure that got no answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::classify::Answer;
use super::headers::{RateLimit, RetryAfter};
use super::identity::Identity;
use super::verdict::{Reason, State, Verdict};
use crate::config::CredentialType;

/// What one probe found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What the probe says about the credential.
    pub state: State,
    /// Why.
    pub reason: Reason,
    /// The HTTP status, when an answer arrived.
    pub http_status: Option<u16>,
    /// From sending the request to the end of the body (or the failure).
    pub latency: Duration,
    /// The account Jira reported.
    pub identity: Option<Arc<Identity>>,
    /// Jira's rate-limit headers.
    pub rate_limit: RateLimit,
    /// `Retry-After`, when sent and parseable.
    pub retry_after: Option<RetryAfter>,
    /// What to do about the reason; `None` for `ok`.
    pub hint: Option<&'static str>,
    /// A short, secret-free description of what was seen.
    pub detail: Option<String>,
    /// When the probe finished.
    pub finished_at: DateTime<Utc>,
    /// What the probe's OAuth token request did, if it made one: the token endpoint has a
    /// gate of its own, which its answers close (a rate limit) and open (a token).
    pub token_request: TokenRequest,
}

/// An OAuth probe's token request, as the scheduler's gates see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TokenRequest {
    /// None was made (not OAuth, or a kept token was used).
    #[default]
    None,
    /// The token endpoint issued a token.
    Granted,
    /// The outcome is the token endpoint's: a refusal, a rate limit, an outage or no answer.
    Failed,
}

impl Outcome {
    /// The outcome of an answer classified as `verdict`, `started` when the request was sent.
    pub fn of_answer(
        answer: &Answer,
        of: CredentialType,
        verdict: Verdict,
        started: Instant,
        now: DateTime<Utc>,
    ) -> Outcome {
        Outcome {
            state: verdict.state,
            reason: verdict.reason,
            http_status: Some(answer.status.as_u16()),
            latency: started.elapsed(),
            identity: verdict.identity,
            rate_limit: RateLimit::from_headers(&answer.headers),
            retry_after: answer
                .headers
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .and_then(RetryAfter::parse),
            hint: verdict.reason.hint(of),
            detail: verdict.detail,
            finished_at: now,
            token_request: TokenRequest::None,
        }
    }

    /// An outcome without an HTTP answer.
    pub fn without_answer(
        of: CredentialType,
        reason: Reason,
        detail: String,
        started: Instant,
    ) -> Outcome {
        Outcome {
            state: State::Unknown,
            reason,
            http_status: None,
            latency: started.elapsed(),
            identity: None,
            rate_limit: RateLimit::default(),
            retry_after: None,
            hint: reason.hint(of),
            detail: Some(detail),
            finished_at: Utc::now(),
            token_request: TokenRequest::None,
        }
    }
}

/// What `GET /rest/pat/latest/tokens` gave.
#[derive(Debug, Clone)]
pub enum TokenListOutcome {
    /// The caller's tokens.
    Listed(Vec<super::PatEntry>),
    /// 404, 403 or 405: no PAT API here.
    Unavailable(u16),
    /// Any other answer, or none; rate limits count against the site like a probe's.
    Failed(Box<Outcome>),
}
