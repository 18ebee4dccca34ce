//! The credential probe: one `GET myself` per call, turned into an [`Outcome`].
//!
//! A probe never returns `Err`: a refused connection, a 401 or a CAPTCHA are all outcomes
//! with a [`State`] and a [`Reason`] (see [`classify`]). `Err` is kept for faults of
//! credwatch itself, such as a TLS stack that cannot be built at start-up.
//!
//! The request: `Accept: application/json`, `User-Agent: credwatch/<version>`, credentials
//! sent pre-emptively, redirects never followed, the body read up to [`BODY_CAP`], and one
//! deadline, the connection's `timeout`, over the whole exchange. No retries: a request is sent
//! a second time only when a kept-alive connection closed before any byte of an answer, and
//! never with a password, which Jira counts towards its CAPTCHA lock ([`transport`]).

pub mod classify;
pub mod headers;
mod proxy;
mod tls;
pub mod transport;
pub mod verdict;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http::HeaderValue;
use url::Url;

pub use classify::{Answer, Expectation, Identity, LastMyself, Verdict};
pub use headers::{Headers, RateLimit, RetryAfter};
pub use transport::{Proxies, Resolve, Resolving};
pub use verdict::{Reason, State};

use crate::config::{AuthMethod, Connection};

/// The most of a body a probe reads; `myself` is a few KiB.
pub const BODY_CAP: usize = 1024 * 1024;

/// The `User-Agent` every request carries.
pub const USER_AGENT: &str = concat!("credwatch/", env!("CARGO_PKG_VERSION"));

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
}

/// A fault of credwatch itself while setting up probing.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The TLS configuration could not be built.
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A proxy variable in the environment cannot be used.
    #[error("{0}")]
    Proxy(String),
}

/// Sends probes. Cheap to clone; the transport (and its keep-alive pool) is shared.
#[derive(Clone)]
pub struct Prober {
    transport: Arc<transport::Transport>,
}

impl Prober {
    /// A prober that resolves names through the system and uses the proxies the environment
    /// names (`https_proxy`, `http_proxy`, `all_proxy`, `no_proxy`).
    pub fn new() -> Result<Prober, SetupError> {
        Self::build(None, Proxies::from_env().map_err(SetupError::Proxy)?)
    }

    /// A prober whose name resolution is `resolver` (tests use this to see made-up host
    /// names fail without asking a DNS server), with direct connections only.
    pub fn with_resolver(resolver: Arc<dyn Resolve>) -> Result<Prober, SetupError> {
        Self::build(Some(resolver), Proxies::none())
    }

    /// A prober that uses `proxies` instead of the environment's.
    pub fn with_proxies(proxies: Proxies) -> Result<Prober, SetupError> {
        Self::build(None, proxies)
    }

    fn build(resolver: Option<Arc<dyn Resolve>>, proxies: Proxies) -> Result<Prober, SetupError> {
        Ok(Prober {
            transport: Arc::new(transport::Transport::new(resolver, proxies, USER_AGENT)?),
        })
    }

    /// Probes one connection's credential once, with the expiry the configuration declares
    /// (a rejection after it is `expired`).
    pub async fn probe(&self, connection: &Connection) -> Outcome {
        let known = crate::expiry::declared(connection).map(|(expiry, _)| expiry);
        self.probe_expecting(connection, known).await
    }

    /// Probes one connection's credential once; `known_expiry` (from Jira or the
    /// configuration) turns a rejection after it into `expired`.
    pub async fn probe_expecting(
        &self,
        connection: &Connection,
        known_expiry: Option<DateTime<Utc>>,
    ) -> Outcome {
        self.probe_authorized(
            connection,
            &connection.authorization(),
            known_expiry,
            &mut LastMyself::default(),
        )
        .await
    }

    /// As [`Prober::probe_expecting`], with the `Authorization` value (or why there is none)
    /// that the caller keeps for as long as the secret stays the same, and what the
    /// connection's last `myself` body said (an unchanged body is not read again).
    pub async fn probe_authorized(
        &self,
        connection: &Connection,
        authorization: &Result<HeaderValue, String>,
        known_expiry: Option<DateTime<Utc>>,
        last: &mut LastMyself,
    ) -> Outcome {
        let started = Instant::now();
        let answer = match self
            .exchange(connection, authorization, connection.myself_url(), started)
            .await
        {
            Ok(answer) => answer,
            Err(outcome) => return outcome,
        };
        let now = Utc::now();
        let verdict = answer.classify(
            &Expectation {
                kind: connection.kind,
                expect_account: connection.expect_account.as_deref(),
                expires_at: known_expiry,
                now,
            },
            last,
        );
        answer.outcome(connection.auth, verdict, started, now)
    }

    /// Fetches the caller's personal access tokens (`GET /rest/pat/latest/tokens`).
    pub async fn list_tokens(&self, connection: &Connection) -> TokenListOutcome {
        let started = Instant::now();
        let url = match Url::parse(&format!(
            "{}/rest/pat/latest/tokens",
            connection.url.as_str().trim_end_matches('/')
        )) {
            Ok(url) => url,
            Err(e) => {
                let outcome = failed(
                    connection.auth,
                    Reason::UnexpectedResponse,
                    e.to_string(),
                    started,
                );
                return TokenListOutcome::Failed(Box::new(outcome));
            }
        };
        let answer = match self
            .exchange(connection, &connection.authorization(), &url, started)
            .await
        {
            Ok(answer) => answer,
            Err(outcome) => return TokenListOutcome::Failed(Box::new(outcome)),
        };
        let now = Utc::now();
        match answer.status.as_u16() {
            200 => {
                if let Some(entries) = crate::expiry::parse_pat_list(&answer.body) {
                    return TokenListOutcome::Listed(entries);
                }
                let verdict = Verdict {
                    state: State::Unknown,
                    reason: Reason::UnexpectedResponse,
                    identity: None,
                    detail: Some("the token list is not Jira's JSON array".to_owned()),
                };
                TokenListOutcome::Failed(Box::new(answer.outcome(
                    connection.auth,
                    verdict,
                    started,
                    now,
                )))
            }
            code @ 403..=405 if !answer.headers.contains("x-authentication-denied-reason") => {
                TokenListOutcome::Unavailable(code)
            }
            _ => {
                // Not `myself`: only the status and headers tell (rate limit, 401, 5xx...).
                let verdict = answer.classify(
                    &Expectation {
                        kind: connection.kind,
                        expect_account: None,
                        expires_at: None,
                        now,
                    },
                    &mut LastMyself::default(),
                );
                TokenListOutcome::Failed(Box::new(answer.outcome(
                    connection.auth,
                    verdict,
                    started,
                    now,
                )))
            }
        }
    }

    /// One authenticated GET under the connection's deadline; a failure without an HTTP
    /// answer comes back as the outcome to report.
    async fn exchange(
        &self,
        connection: &Connection,
        authorization: &Result<HeaderValue, String>,
        url: &Url,
        started: Instant,
    ) -> Result<transport::Response, Outcome> {
        let auth = connection.auth;
        let authorization = authorization.as_ref().map_err(|message| {
            failed(auth, Reason::UnexpectedResponse, message.clone(), started)
        })?;
        let request = transport::Request {
            url,
            origin: connection.site(),
            authorization,
            ca: connection.ca_file.as_ref(),
            // A password counts towards Jira's CAPTCHA lock: never send it twice.
            retry_unanswered: auth != AuthMethod::Basic,
            body_cap: BODY_CAP,
        };
        let timed_out = || {
            let detail = format!(
                "no complete answer within {}",
                humantime::format_duration(connection.timeout)
            );
            failed(auth, Reason::Timeout, detail, started)
        };
        // One deadline for the whole exchange: resolving, connecting, TLS and the body.
        let failure =
            match tokio::time::timeout(connection.timeout, self.transport.get(&request)).await {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(failure)) => failure,
                Err(_elapsed) => return Err(timed_out()),
            };
        let reason = match failure.kind {
            transport::FailureKind::Timeout => return Err(timed_out()),
            transport::FailureKind::Dns => Reason::DnsError,
            transport::FailureKind::Tls => Reason::TlsError,
            transport::FailureKind::Protocol => Reason::UnexpectedResponse,
            transport::FailureKind::Connect => Reason::ConnectError,
        };
        Err(failed(auth, reason, failure.detail, started))
    }
}

/// What `GET /rest/pat/latest/tokens` gave.
#[derive(Debug, Clone)]
pub enum TokenListOutcome {
    /// The caller's tokens.
    Listed(Vec<crate::expiry::PatEntry>),
    /// 404, 403 or 405: no PAT API here.
    Unavailable(u16),
    /// Any other answer, or none; rate limits count against the site like a probe's.
    Failed(Box<Outcome>),
}

/// An HTTP answer, read up to the body cap, as the probe reads it.
impl transport::Response {
    fn classify(&self, expect: &Expectation<'_>, last: &mut LastMyself) -> Verdict {
        classify::classify_after(
            &Answer {
                status: self.status,
                headers: &self.headers,
                body: &self.body,
                truncated: self.truncated,
            },
            expect,
            last,
        )
    }

    fn outcome(
        &self,
        auth: AuthMethod,
        verdict: Verdict,
        started: Instant,
        now: DateTime<Utc>,
    ) -> Outcome {
        Outcome {
            state: verdict.state,
            reason: verdict.reason,
            http_status: Some(self.status.as_u16()),
            latency: started.elapsed(),
            identity: verdict.identity,
            rate_limit: RateLimit::from_headers(&self.headers),
            retry_after: self
                .headers
                .get_str("retry-after")
                .and_then(RetryAfter::parse),
            hint: verdict.reason.hint(auth),
            detail: verdict.detail,
            finished_at: now,
        }
    }
}

/// An outcome without an HTTP answer.
fn failed(auth: AuthMethod, reason: Reason, detail: String, started: Instant) -> Outcome {
    Outcome {
        state: State::Unknown,
        reason,
        http_status: None,
        latency: started.elapsed(),
        identity: None,
        rate_limit: RateLimit::default(),
        retry_after: None,
        hint: reason.hint(auth),
        detail: Some(detail),
        finished_at: Utc::now(),
    }
}
