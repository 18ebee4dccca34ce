//! The credential probe: one `GET myself` per call, turned into an [`Outcome`].
//!
//! A probe never returns `Err`: a refused connection, a 401 or a CAPTCHA are all outcomes
//! with a [`State`] and a [`Reason`] (see [`classify`]). `Err` is kept for faults of
//! credwatch itself, such as a TLS stack that cannot be built at start-up.
//!
//! The request: `Accept: application/json`, `User-Agent: credwatch/<version>`, credentials
//! sent pre-emptively, redirects never followed, the body read up to [`BODY_CAP`], and one
//! deadline, the connection's `timeout`, over the whole exchange. No retries: reqwest's retry
//! layer is off, and hyper resends a request only when its kept-alive connection closed
//! before the request was written, so a password is never sent twice ([`client`]).

mod answer;
mod bitbucket;
mod bitbucket_tokens;
pub mod classify;
pub(crate) mod client;
mod cycle;
pub(crate) mod gateway;
pub(crate) mod headers;
pub(crate) mod hints;
mod identity;
pub(crate) mod oauth;
mod outcome;
mod pat_list;
pub(crate) mod proxy_env;
mod tls;
pub(crate) mod verdict;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use http::HeaderValue;
use url::Url;

pub use classify::{Answer, Expectation, Facts, Identity, LastMyself};
pub use client::{Resolve, Resolving};
pub use cycle::Cycle;
pub use gateway::GatewayTry;
pub use headers::{RateLimit, RetryAfter};
pub use outcome::{Outcome, TokenListOutcome, TokenRequest};
pub use pat_list::{parse_pat_list, PatEntry};
pub use verdict::{Reason, State, Verdict};

use crate::config::{AuthMethod, Connection, CredentialError, Kind, Product};

/// The most of a body a probe reads; `myself` is a few KiB.
pub const BODY_CAP: usize = 1024 * 1024;

/// The `User-Agent` every request carries.
pub const USER_AGENT: &str = concat!("credwatch/", env!("CARGO_PKG_VERSION"));

/// What [`Prober::send`] sends.
enum Request<'a> {
    /// A GET, with credentials or anonymous.
    Get(Option<&'a HeaderValue>),
    /// A form POST (an OAuth token request).
    Form(&'a [(&'a str, &'a str)]),
}

/// A fault of credwatch itself while setting up probing.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The TLS configuration could not be built.
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// Sends probes. Cheap to clone; the HTTP clients (and their keep-alive pools) are shared.
#[derive(Clone)]
pub struct Prober {
    clients: Arc<client::Clients>,
    /// Which proxy the environment names for a URL, to say so when a request fails.
    proxies: Option<Arc<hyper_util::client::proxy::matcher::Matcher>>,
    /// The cloudIds read from the sites' `tenant_info`.
    cloud_ids: Arc<gateway::CloudIds>,
    /// The OAuth clients' access tokens, in memory only.
    tokens: Arc<oauth::Tokens>,
}

impl Prober {
    /// A prober that resolves names through the system and uses the proxies the environment
    /// names, as reqwest reads them (`ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`,
    /// upper case first, then lower case). What reqwest would ignore, or cannot use, is
    /// logged at WARN.
    pub fn new() -> Result<Prober, SetupError> {
        for warning in proxy_env::warnings(|name| std::env::var(name).ok()) {
            tracing::warn!("{warning}");
        }
        Ok(Prober {
            clients: Arc::new(client::Clients::new(None, true, USER_AGENT)?),
            proxies: Some(Arc::new(
                hyper_util::client::proxy::matcher::Matcher::from_env(),
            )),
            cloud_ids: Arc::default(),
            tokens: Arc::default(),
        })
    }

    /// A prober whose name resolution is `resolver` (tests use this to see made-up host
    /// names fail without asking a DNS server), with direct connections only.
    pub fn with_resolver(resolver: Arc<dyn Resolve>) -> Result<Prober, SetupError> {
        Ok(Prober {
            clients: Arc::new(client::Clients::new(Some(resolver), false, USER_AGENT)?),
            proxies: None,
            cloud_ids: Arc::default(),
            tokens: Arc::default(),
        })
    }

    /// Probes one connection's credential once, with what the configuration alone tells (a
    /// rejection after its declared expiry is `expired`).
    pub async fn probe(&self, connection: &Connection) -> Outcome {
        let facts = Facts {
            known_expiry: connection.declared_expiry(),
            blocked_by_admin: false,
        };
        self.probe_authorized(
            connection,
            &connection.authorization(),
            facts,
            &mut LastMyself::default(),
        )
        .await
    }

    /// The identity probe (`myself`, through the gateway or an OAuth token as the connection
    /// needs), with the `Authorization` value (or why there is none) that the caller keeps for
    /// as long as the secret stays the same, what is known of the credential before
    /// (`facts`), and what the connection's last `myself` body said (an unchanged body is not
    /// read again) and the gateway answered. [`Prober::cycle`] is the whole of one probe.
    pub(crate) async fn probe_authorized(
        &self,
        connection: &Connection,
        authorization: &Result<HeaderValue, CredentialError>,
        facts: Facts,
        last: &mut LastMyself,
    ) -> Outcome {
        let started = Instant::now();
        if connection.settings.auth == AuthMethod::OAuthClientCredentials {
            return self.probe_oauth(connection, facts, last, started).await;
        }
        let gateway_url;
        let url = if connection.settings.scoped {
            gateway_url = match self.gateway_myself(connection, started).await {
                Ok(url) => url,
                Err(outcome) => return outcome,
            };
            &gateway_url
        } else {
            connection.myself_url()
        };
        let answer = match self.exchange(connection, authorization, url, started).await {
            Ok(answer) => answer,
            Err(outcome) => return outcome,
        };
        let now = Utc::now();
        let expect = expecting(connection, facts, now);
        let mut verdict = classify::classify_after(&answer, &expect, last);
        let unscoped_cloud_token = connection.settings.kind == Kind::Cloud
            && connection.settings.auth == AuthMethod::ApiToken
            && !connection.settings.scoped
            && connection.may_try_gateway();
        // A public Confluence Cloud site may answer an unknown token as the anonymous user.
        let rejected = matches!(
            verdict.reason,
            Reason::Unauthorized | Reason::AnonymousFallback
        );
        if unscoped_cloud_token && rejected {
            if let Ok(authorization) = authorization {
                verdict = self
                    .second_try_at_gateway(
                        connection,
                        authorization,
                        verdict,
                        &mut last.gateway,
                        started,
                    )
                    .await;
            }
        }
        Outcome::of_answer(
            &answer,
            connection.settings.credential_type(),
            verdict,
            started,
            now,
        )
    }

    /// Fetches the caller's personal access tokens: Jira's and Confluence's `GET
    /// /rest/pat/latest/tokens`, or the list of Bitbucket's token owner (`owner`, whom the
    /// probe named).
    pub(crate) async fn list_tokens(
        &self,
        connection: &Connection,
        owner: Option<&Identity>,
    ) -> TokenListOutcome {
        if connection.settings.product == Product::Bitbucket {
            return self.list_bitbucket_tokens(connection, owner).await;
        }
        let started = Instant::now();
        let url = match Url::parse(&format!(
            "{}/rest/pat/latest/tokens",
            connection.url.as_str().trim_end_matches('/')
        )) {
            Ok(url) => url,
            Err(e) => {
                let outcome = unsendable(connection, e.to_string(), started);
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
                if let Some(entries) = parse_pat_list(&answer.body) {
                    return TokenListOutcome::Listed(entries);
                }
                let verdict = Verdict {
                    state: State::Unknown,
                    reason: Reason::UnexpectedResponse,
                    identity: None,
                    detail: Some("the token list is not Jira's JSON array".to_owned()),
                };
                TokenListOutcome::Failed(Box::new(Outcome::of_answer(
                    &answer,
                    connection.settings.credential_type(),
                    verdict,
                    started,
                    now,
                )))
            }
            code @ 403..=405
                if !answer
                    .headers
                    .contains_key("x-authentication-denied-reason") =>
            {
                TokenListOutcome::Unavailable(code)
            }
            _ => {
                // Not `myself`: only the status and headers tell (rate limit, 401, 5xx...).
                let expect = any_answer(connection, now);
                let verdict = classify::classify(&answer, &expect);
                TokenListOutcome::Failed(Box::new(Outcome::of_answer(
                    &answer,
                    connection.settings.credential_type(),
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
        authorization: &Result<HeaderValue, CredentialError>,
        url: &Url,
        started: Instant,
    ) -> Result<Answer, Outcome> {
        let authorization = authorization
            .as_ref()
            .map_err(|message| unsendable(connection, message.to_string(), started))?;
        self.send(connection, url, Request::Get(Some(authorization)), started)
            .await
    }

    /// One request within the probe's deadline (`timeout` from `started`): resolving,
    /// connecting, TLS and the body.
    async fn send(
        &self,
        connection: &Connection,
        url: &Url,
        request: Request<'_>,
        started: Instant,
    ) -> Result<Answer, Outcome> {
        let auth = connection.settings.credential_type();
        let http = self
            .clients
            .get(connection.ca.as_ref())
            .map_err(|f| Outcome::without_answer(auth, f.reason, f.detail, started))?;
        let sent = async {
            match request {
                Request::Get(authorization) => {
                    client::get(&http, url, authorization, BODY_CAP).await
                }
                Request::Form(form) => client::post_form(&http, url, form, BODY_CAP).await,
            }
        };
        // One deadline for the whole probe, however many requests it takes (a token, the
        // cloudId, myself): what is left of `timeout` since the probe started.
        let left = connection
            .settings
            .timeout
            .saturating_sub(started.elapsed());
        match tokio::time::timeout(left, sent).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(failure)) => {
                let detail = match self.proxy_for(url) {
                    Some(proxy) => format!("{} (through the proxy {proxy})", failure.detail),
                    None => failure.detail,
                };
                Err(Outcome::without_answer(
                    auth,
                    failure.reason,
                    detail,
                    started,
                ))
            }
            Err(_elapsed) => {
                let detail = format!(
                    "no complete answer within {}",
                    humantime::format_duration(connection.settings.timeout)
                );
                Err(Outcome::without_answer(
                    auth,
                    Reason::Timeout,
                    detail,
                    started,
                ))
            }
        }
    }

    /// One GET of another API than Jira's (the organization admin API) with `authorization`,
    /// under `timeout`, the body read up to `body_cap`; the same clients, proxies and
    /// trust roots as the probes. A failure without an answer is its reason and detail.
    pub(crate) async fn get(
        &self,
        url: &Url,
        authorization: &HeaderValue,
        timeout: std::time::Duration,
        body_cap: usize,
    ) -> Result<Answer, (Reason, String)> {
        let http = self.clients.get(None).map_err(|f| (f.reason, f.detail))?;
        match tokio::time::timeout(
            timeout,
            client::get(&http, url, Some(authorization), body_cap),
        )
        .await
        {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(failure)) => Err((failure.reason, failure.detail)),
            Err(_elapsed) => Err((
                Reason::Timeout,
                format!(
                    "no complete answer within {}",
                    humantime::format_duration(timeout)
                ),
            )),
        }
    }

    /// The proxy the environment names for `url`, as host and port (never its credentials).
    fn proxy_for(&self, url: &Url) -> Option<String> {
        let uri: http::Uri = url.as_str().parse().ok()?;
        let intercept = self.proxies.as_ref()?.intercept(&uri)?;
        let proxy = intercept.uri();
        Some(match proxy.port_u16() {
            Some(port) => format!("{}:{port}", proxy.host()?),
            None => proxy.host()?.to_owned(),
        })
    }
}

/// What the identity probe's answer is classified against: the connection's expectations
/// and what was known of the credential before the probe.
fn expecting(connection: &Connection, facts: Facts, now: DateTime<Utc>) -> Expectation<'_> {
    Expectation {
        product: connection.settings.product,
        kind: connection.settings.kind,
        expect_account: connection.settings.expect_account.as_deref(),
        expires_at: facts.known_expiry,
        blocked_by_admin: facts.blocked_by_admin,
        now,
    }
}

/// What another endpoint's answer is classified against: its status and headers only (a rate
/// limit, an outage, a redirect, a rejection).
fn any_answer(connection: &Connection, now: DateTime<Utc>) -> Expectation<'static> {
    Expectation {
        product: connection.settings.product,
        kind: connection.settings.kind,
        expect_account: None,
        expires_at: None,
        blocked_by_admin: false,
        now,
    }
}

/// A probe that cannot even be sent (a URL that does not parse, a missing endpoint).
fn unsendable(connection: &Connection, detail: String, started: Instant) -> Outcome {
    Outcome::without_answer(
        connection.settings.credential_type(),
        Reason::UnexpectedResponse,
        detail,
        started,
    )
}
