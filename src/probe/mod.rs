//! The credential probe: one `GET myself` per call, turned into an [`Outcome`].
//!
//! A probe never returns `Err`: a refused connection, a 401 or a CAPTCHA are all outcomes
//! with a [`State`] and a [`Reason`] (see [`classify`]). `Err` is kept for faults of
//! credwatch itself, such as a TLS stack that cannot be built at start-up.
//!
//! The request: `Accept: application/json`, `User-Agent: credwatch/<version>`, credentials
//! sent pre-emptively, redirects never followed, no retries (a retried Basic login counts
//! towards Jira's CAPTCHA lock), the body read up to [`BODY_CAP`], and one deadline, the
//! connection's `timeout`, over the whole exchange.

pub mod classify;
pub mod headers;
mod tls;
pub mod verdict;

use std::collections::HashMap;
use std::error::Error as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::Client;

pub use classify::{Answer, Expectation, Identity, Verdict};
pub use headers::{RateLimit, RetryAfter};
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
    pub identity: Option<Identity>,
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
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The TLS configuration could not be built.
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// Sends probes. Cheap to clone; clients (and their keep-alive pools) are shared.
#[derive(Clone)]
pub struct Prober {
    inner: Arc<Inner>,
}

struct Inner {
    resolver: Option<Arc<dyn reqwest::dns::Resolve>>,
    /// One client per distinct `ca_file` (`None`: system roots only), built on first use.
    /// A std mutex: it is held only to look up or insert, never across an await.
    clients: Mutex<HashMap<Option<PathBuf>, Client>>,
}

impl Prober {
    /// A prober that resolves names through the system.
    pub fn new() -> Result<Prober, SetupError> {
        Self::build(None)
    }

    /// A prober whose name resolution is `resolver` (the simulator and tests use this to
    /// serve made-up host names without touching DNS).
    pub fn with_resolver(resolver: Arc<dyn reqwest::dns::Resolve>) -> Result<Prober, SetupError> {
        Self::build(Some(resolver))
    }

    fn build(resolver: Option<Arc<dyn reqwest::dns::Resolve>>) -> Result<Prober, SetupError> {
        let prober = Prober {
            inner: Arc::new(Inner {
                resolver,
                clients: Mutex::new(HashMap::new()),
            }),
        };
        // Build the common client now, so a broken TLS stack fails at start-up.
        let client = prober.new_client(None)?;
        prober.lock_clients().insert(None, client);
        Ok(prober)
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, HashMap<Option<PathBuf>, Client>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.inner
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn new_client(&self, ca: Option<&crate::config::CaBundle>) -> Result<Client, SetupError> {
        let tls = tls::client_config(ca.map(|ca| ca.certs.as_slice()))?;
        let mut builder = Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .pool_idle_timeout(Duration::from_secs(90))
            .tls_backend_preconfigured(tls);
        if let Some(resolver) = &self.inner.resolver {
            builder = builder.dns_resolver(resolver.clone());
        }
        Ok(builder.build()?)
    }

    fn client_for(&self, connection: &Connection) -> Result<Client, SetupError> {
        let key = connection.ca_file.as_ref().map(|ca| ca.path.clone());
        if let Some(client) = self.lock_clients().get(&key) {
            return Ok(client.clone());
        }
        let client = self.new_client(connection.ca_file.as_ref())?;
        Ok(self.lock_clients().entry(key).or_insert(client).clone())
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
        let started = Instant::now();
        let answer = match self
            .exchange(connection, connection.myself_url().clone(), started)
            .await
        {
            Ok(answer) => answer,
            Err(outcome) => return outcome,
        };
        let now = Utc::now();
        let verdict = answer.classify(&Expectation {
            kind: connection.kind,
            expect_account: connection.expect_account.as_deref(),
            expires_at: known_expiry,
            now,
        });
        answer.outcome(connection.auth, verdict, started, now)
    }

    /// Fetches the caller's personal access tokens (`GET /rest/pat/latest/tokens`).
    pub async fn list_tokens(&self, connection: &Connection) -> TokenListOutcome {
        let started = Instant::now();
        let url = match reqwest::Url::parse(&format!(
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
        let answer = match self.exchange(connection, url, started).await {
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
            code @ 403..=405
                if answer
                    .headers
                    .get("x-authentication-denied-reason")
                    .is_none() =>
            {
                TokenListOutcome::Unavailable(code)
            }
            _ => {
                // Not `myself`: only the status and headers tell (rate limit, 401, 5xx...).
                let verdict = answer.classify(&Expectation {
                    kind: connection.kind,
                    expect_account: None,
                    expires_at: None,
                    now,
                });
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
        url: reqwest::Url,
        started: Instant,
    ) -> Result<RawAnswer, Outcome> {
        let auth = connection.auth;
        let client = self
            .client_for(connection)
            .map_err(|e| failed(auth, Reason::TlsError, e.to_string(), started))?;
        let authorization = connection
            .authorization()
            .map_err(|message| failed(auth, Reason::UnexpectedResponse, message, started))?;
        let request = client
            .get(url)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(AUTHORIZATION, authorization);
        // One deadline for the whole exchange, connection and body included (a second timer
        // inside reqwest would cost a timer entry per probe and say nothing more).
        let exchange = tokio::time::timeout(connection.timeout, async {
            let mut response = request.send().await?;
            let status = response.status();
            let headers = std::mem::take(response.headers_mut());
            let (body, truncated) = read_capped(response).await?;
            Ok::<_, reqwest::Error>(RawAnswer {
                status,
                headers,
                body,
                truncated,
            })
        })
        .await;
        match exchange {
            Err(_elapsed) => {
                let detail = format!(
                    "no complete answer within {}",
                    humantime::format_duration(connection.timeout)
                );
                Err(failed(auth, Reason::Timeout, detail, started))
            }
            Ok(Err(error)) => {
                let (reason, mut detail) = transport_failure(&error);
                if reason == Reason::Timeout {
                    // reqwest's own timer may fire first; say it the same way either way.
                    detail = format!(
                        "no complete answer within {}",
                        humantime::format_duration(connection.timeout)
                    );
                }
                Err(failed(auth, reason, detail, started))
            }
            Ok(Ok(answer)) => Ok(answer),
        }
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

/// An HTTP answer, read up to the body cap.
struct RawAnswer {
    status: reqwest::StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
    truncated: bool,
}

impl RawAnswer {
    fn classify(&self, expect: &Expectation<'_>) -> Verdict {
        classify::classify(
            &Answer {
                status: self.status,
                headers: &self.headers,
                body: &self.body,
                truncated: self.truncated,
            },
            expect,
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
            retry_after: headers::header_str(&self.headers, "retry-after")
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

/// Reads the body up to [`BODY_CAP`]. A body that breaks off after the headers is returned
/// as truncated (the status may still say enough); a deadline is an error.
async fn read_capped(mut response: reqwest::Response) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = BODY_CAP - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    return Ok((body, true));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok((body, false)),
            Err(error) if error.is_timeout() => return Err(error),
            Err(_) => return Ok((body, true)),
        }
    }
}

/// Maps a transport failure to its reason by walking the error's causes.
fn transport_failure(error: &reqwest::Error) -> (Reason, String) {
    let detail = error_chain(error);
    if error.is_timeout() {
        return (Reason::Timeout, detail);
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.downcast_ref::<rustls::Error>().is_some() {
            return (Reason::TlsError, detail);
        }
        let mut next = current.source();
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return (Reason::Timeout, detail);
            }
            // io::Error::source skips its payload (a rustls error, or another io::Error
            // wrapping one), so the walk goes on at the payload itself.
            if let Some(payload) = io.get_ref() {
                next = Some(payload as &(dyn std::error::Error + 'static));
            }
        }
        if let Some(hyper_error) = current.downcast_ref::<hyper::Error>() {
            if hyper_error.is_parse() {
                return (Reason::UnexpectedResponse, detail);
            }
        }
        // hyper-util's connector reports every resolver failure as "dns error".
        if current.to_string() == "dns error" {
            return (Reason::DnsError, detail);
        }
        cause = next;
    }
    (Reason::ConnectError, detail)
}

/// "a: b: c" from an error and its causes, without repeating a cause a layer already shows.
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        let part = current.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = current.source();
    }
    text
}
