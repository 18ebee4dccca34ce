//! OAuth 2.0 client credentials (`docs/jira-answers.md` §10): a service account's `client_id`
//! and secret traded for an access token, which then probes `myself` as `Bearer`.
//!
//! - The token request: `POST token_url`, form-encoded as RFC 6749 §4.4.2 says
//!   (`grant_type=client_credentials`, `client_id`, `client_secret`; on Cloud also
//!   `audience=api.atlassian.com`).
//! - The access token is kept per connection, in memory only, until 60 s (or a tenth of its
//!   lifetime, whichever is less) before `expires_in` runs out; a new secret is a new client,
//!   whose token is asked for anew. Probes within a token's life send no token request.
//! - A 401 from Jira with a kept token leads to one new token request, then the verdict.
//! - Only token requests are logins. They are never retried in a loop: a probe makes at most
//!   two (the second only after such a 401), and a rejected client waits like any rejected
//!   credential (a confirmation, then `auth_failure_interval`).
//! - The token endpoint's answer: `invalid_client` → `invalid`/`client_rejected` (with
//!   `error_description`, never the secret), `invalid_scope` → `invalid`/`scope_mismatch`,
//!   `unauthorized_client` → `forbidden`/`forbidden`; 429 and 5xx as for probes. Outcomes of
//!   the token endpoint are marked so that its own gate, not the site's, takes their rate
//!   limits.
//! - On Cloud the cloudId comes from `cloud_id`, else from the gateway's
//!   `oauth/token/accessible-resources`, matched to the connection's `url`.

use super::Facts;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use http::HeaderValue;
use serde::Deserialize;
use url::Url;

use super::classify::{self, Answer, LastMyself};
use super::{gateway, Outcome, Prober, Reason, Request, State, TokenRequest, Verdict};
use crate::config::{Connection, Kind};

/// How long before its expiry a kept token is renewed, at most.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// The longest `error_description` shown.
const DESCRIPTION_CAP: usize = 200;

/// The longest life credwatch believes of an access token (`expires_in` is the endpoint's
/// word: a day bounds what a broken or hostile answer can make it keep).
const LIFETIME_CAP: Duration = Duration::from_secs(86_400);

/// A kept access token.
struct Kept {
    /// A digest of the client and of where it was issued and sent (see [`client_digest`]).
    client: u64,
    header: HeaderValue,
    renew_at: tokio::time::Instant,
    /// When it stops working, by `expires_in`.
    expires_at: tokio::time::Instant,
    /// Cloud: the cloudId the accessible resources gave for this connection's site.
    cloud_id: Option<String>,
    /// Jira rejected it right after it was issued: a 401 with it is the verdict, not a reason
    /// to ask for another.
    rejected_fresh: bool,
}

/// The access tokens, by connection name.
#[derive(Default)]
pub(crate) struct Tokens(Mutex<HashMap<String, Kept>>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(..)")
    }
}

impl Tokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A digest of the connection's client id and secret, and of the site, token endpoint and
/// gateway a token was issued for: a reload that changes any of them asks anew. Keyed once per
/// process.
fn client_digest(connection: &Connection) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new).hash_one((
        connection.settings.client_id.as_deref(),
        connection.secret.expose(),
        connection.url.as_str(),
        connection.token_endpoint.as_ref().map(Url::as_str),
        connection.gateway.as_ref().map(Url::as_str),
        connection.settings.cloud_id.as_deref(),
    ))
}

/// When a token that lives `lifetime` (at most [`LIFETIME_CAP`]) from `now` is renewed.
pub(crate) fn renew_at(now: tokio::time::Instant, lifetime: Duration) -> tokio::time::Instant {
    let lifetime = lifetime.min(LIFETIME_CAP);
    now + lifetime.saturating_sub(RENEW_BEFORE.min(lifetime / 10))
}

#[derive(Deserialize)]
struct Granted {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// One site an access token reaches.
#[derive(Deserialize)]
pub(crate) struct Resource {
    /// Its cloudId.
    pub(crate) id: String,
    /// Its URL.
    #[serde(default)]
    pub(crate) url: String,
}

impl Prober {
    /// Probes an OAuth client: a token (kept or new), then `myself` with it.
    pub(super) async fn probe_oauth(
        &self,
        connection: &Connection,
        facts: Facts,
        last: &mut LastMyself,
        started: Instant,
    ) -> Outcome {
        let (header, kept) = match self.access_token(connection, started, false).await {
            Ok(token) => token,
            Err(outcome) => return outcome,
        };
        let mut outcome = self
            .oauth_myself(connection, &header, facts, last, started)
            .await;
        let rejected = outcome.http_status == Some(401);
        if !kept {
            outcome.token_request = TokenRequest::Granted;
            if rejected {
                self.mark_rejected_fresh(connection);
            }
            return outcome;
        }
        if !rejected || self.rejected_fresh(connection) {
            return outcome;
        }
        // The kept token no longer works (revoked, or the site restarted): one new one.
        tracing::debug!(connection = %connection.name, "the kept access token was rejected; asking for a new one");
        match self.access_token(connection, started, true).await {
            Ok((header, _)) => {
                let mut outcome = self
                    .oauth_myself(connection, &header, facts, last, started)
                    .await;
                outcome.token_request = TokenRequest::Granted;
                if outcome.http_status == Some(401) {
                    self.mark_rejected_fresh(connection);
                }
                outcome
            }
            Err(outcome) => outcome,
        }
    }

    fn rejected_fresh(&self, connection: &Connection) -> bool {
        self.tokens
            .lock()
            .get(&connection.name)
            .is_some_and(|k| k.rejected_fresh)
    }

    fn mark_rejected_fresh(&self, connection: &Connection) {
        if let Some(kept) = self.tokens.lock().get_mut(&connection.name) {
            kept.rejected_fresh = true;
        }
    }

    /// The access token to send, and whether it was kept from an earlier probe. A kept token
    /// due for renewal is still used when the token endpoint cannot give a new one before it
    /// expires.
    async fn access_token(
        &self,
        connection: &Connection,
        started: Instant,
        renew: bool,
    ) -> Result<(HeaderValue, bool), Outcome> {
        let client = client_digest(connection);
        let now = tokio::time::Instant::now();
        let still_valid = {
            let mut tokens = self.tokens.lock();
            let usable = tokens
                .get(&connection.name)
                .filter(|kept| kept.client == client && now < kept.expires_at)
                .map(|kept| (kept.header.clone(), now < kept.renew_at));
            match usable {
                Some((header, fresh)) if !renew && fresh => return Ok((header, true)),
                Some((header, _)) if !renew => Some(header),
                _ => {
                    tokens.remove(&connection.name);
                    None
                }
            }
        };
        let Some(endpoint) = connection.token_endpoint.as_ref() else {
            return Err(super::unsendable(
                connection,
                "no token endpoint for this connection".to_owned(),
                started,
            ));
        };
        let client_id = connection.settings.client_id.as_deref().unwrap_or_default();
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", connection.secret.expose()),
        ];
        if connection.settings.kind == Kind::Cloud {
            form.push(("audience", "api.atlassian.com"));
        }
        let answer = self
            .send(connection, endpoint, Request::Form(&form), started)
            .await
            .map_err(from_token_endpoint);
        let granted = match answer {
            Ok(answer) => read_grant(&answer, connection).map_err(|verdict| {
                from_token_endpoint(Outcome::of_answer(
                    &answer,
                    connection.settings.credential_type(),
                    verdict,
                    started,
                    Utc::now(),
                ))
            }),
            Err(outcome) => Err(outcome),
        };
        match granted {
            Ok((header, lifetime)) => {
                let issued = tokio::time::Instant::now();
                self.tokens.lock().insert(
                    connection.name.clone(),
                    Kept {
                        client,
                        header: header.clone(),
                        renew_at: renew_at(issued, lifetime),
                        expires_at: issued + lifetime.min(LIFETIME_CAP),
                        cloud_id: None,
                        rejected_fresh: false,
                    },
                );
                Ok((header, false))
            }
            // No verdict on the client (a rate limit, an outage): the old token still works.
            Err(outcome) if outcome.state == State::Unknown => match still_valid {
                Some(header) => {
                    tracing::debug!(connection = %connection.name, reason = %outcome.reason, "no new access token yet; the kept one is still valid");
                    Ok((header, true))
                }
                None => Err(outcome),
            },
            Err(outcome) => {
                self.tokens.lock().remove(&connection.name);
                Err(outcome)
            }
        }
    }

    /// `myself` with the access token: the site's on Data Center, the gateway's on Cloud.
    async fn oauth_myself(
        &self,
        connection: &Connection,
        header: &HeaderValue,
        facts: Facts,
        last: &mut LastMyself,
        started: Instant,
    ) -> Outcome {
        let url = match connection.settings.kind {
            Kind::Server => connection.myself_url().clone(),
            Kind::Cloud => match self.oauth_cloud_id(connection, header, started).await {
                Ok(cloud_id) => match gateway::myself_url(connection, &cloud_id) {
                    Some(url) => url,
                    None => {
                        return super::unsendable(
                            connection,
                            "no gateway URL for this connection".to_owned(),
                            started,
                        )
                    }
                },
                Err(outcome) => return outcome,
            },
        };
        let answer = match self
            .send(connection, &url, Request::Get(Some(header)), started)
            .await
        {
            Ok(answer) => answer,
            Err(outcome) => return outcome,
        };
        let now = Utc::now();
        let expect = super::expecting(connection, facts, now);
        let verdict = classify::classify_after(&answer, &expect, last);
        Outcome::of_answer(
            &answer,
            connection.settings.credential_type(),
            verdict,
            started,
            now,
        )
    }

    /// Cloud: `cloud_id`, or the one kept with the token, or the accessible resources' match.
    async fn oauth_cloud_id(
        &self,
        connection: &Connection,
        header: &HeaderValue,
        started: Instant,
    ) -> Result<String, Outcome> {
        if let Some(id) = &connection.settings.cloud_id {
            return Ok(id.clone());
        }
        let kept = self
            .tokens
            .lock()
            .get(&connection.name)
            .and_then(|k| k.cloud_id.clone());
        if let Some(id) = kept {
            return Ok(id);
        }
        let gateway = connection
            .gateway
            .as_ref()
            .map(|g| g.as_str().trim_end_matches('/'));
        let url = Url::parse(&format!(
            "{}/oauth/token/accessible-resources",
            gateway.unwrap_or_default()
        ))
        .map_err(|e| super::unsendable(connection, e.to_string(), started))?;
        let answer = self
            .send(connection, &url, Request::Get(Some(header)), started)
            .await?;
        let now = Utc::now();
        if answer.status.as_u16() != 200 {
            let expect = super::any_answer(connection, now);
            let verdict = classify::classify(&answer, &expect);
            return Err(Outcome::of_answer(
                &answer,
                connection.settings.credential_type(),
                verdict,
                started,
                now,
            ));
        }
        let Some(resources) = read_resources(&answer.body) else {
            let verdict = Verdict {
                state: State::Unknown,
                reason: Reason::UnexpectedResponse,
                identity: None,
                detail: Some(
                    "the gateway's accessible resources are not a list of sites".to_owned(),
                ),
            };
            return Err(Outcome::of_answer(
                &answer,
                connection.settings.credential_type(),
                verdict,
                started,
                now,
            ));
        };
        let site = normalized(connection.url.as_str());
        let found = resources
            .iter()
            .find(|r| normalized(&r.url) == site && gateway::is_cloud_id(&r.id));
        match found {
            Some(resource) => {
                if let Some(kept) = self.tokens.lock().get_mut(&connection.name) {
                    kept.cloud_id = Some(resource.id.clone());
                }
                Ok(resource.id.clone())
            }
            None => {
                let verdict = Verdict {
                    state: State::Forbidden,
                    reason: Reason::Forbidden,
                    identity: None,
                    detail: Some(format!(
                        "the client's token reaches {} site(s), none of them {}: give the service account access to it, or set cloud_id",
                        resources.len(),
                        connection.url
                    )),
                };
                Err(Outcome::of_answer(
                    &answer,
                    connection.settings.credential_type(),
                    verdict,
                    started,
                    now,
                ))
            }
        }
    }
}

/// The gateway's accessible resources: the sites an access token reaches.
pub(crate) fn read_resources(body: &[u8]) -> Option<Vec<Resource>> {
    serde_json::from_slice(body).ok()
}

fn normalized(url: &str) -> String {
    url.trim().trim_end_matches('/').to_ascii_lowercase()
}

fn from_token_endpoint(mut outcome: Outcome) -> Outcome {
    outcome.token_request = TokenRequest::Failed;
    outcome
}

/// The token endpoint's answer: the access token as a header and its lifetime, or the verdict.
pub(crate) fn read_grant(
    answer: &Answer,
    connection: &Connection,
) -> Result<(HeaderValue, Duration), Verdict> {
    let verdict = |state, reason, detail: String| Verdict {
        state,
        reason,
        identity: None,
        detail: Some(detail),
    };
    let status = answer.status.as_u16();
    if status == 200 {
        let granted: Granted = serde_json::from_slice(&answer.body).map_err(|_| {
            verdict(
                State::Unknown,
                Reason::UnexpectedResponse,
                "the token endpoint's answer is not an OAuth token".to_owned(),
            )
        })?;
        if granted
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(verdict(
                State::Unknown,
                Reason::UnexpectedResponse,
                "the token endpoint issued a token that is not a Bearer token".to_owned(),
            ));
        }
        let mut header = HeaderValue::from_str(&format!("Bearer {}", granted.access_token))
            .ok()
            .filter(|_| !granted.access_token.is_empty())
            .ok_or_else(|| {
                verdict(
                    State::Unknown,
                    Reason::UnexpectedResponse,
                    "the token endpoint issued a token that cannot be sent".to_owned(),
                )
            })?;
        header.set_sensitive(true);
        // Atlassian's tokens live an hour; without `expires_in`, assume that.
        let lifetime = Duration::from_secs(granted.expires_in.unwrap_or(3600)).min(LIFETIME_CAP);
        return Ok((header, lifetime));
    }
    if let (400 | 401, Ok(error)) = (status, serde_json::from_slice::<OAuthError>(&answer.body)) {
        let description = describe(error.error_description.as_deref(), connection);
        let said = |what: &str| match &description {
            Some(d) => format!("the token endpoint answered {what}: {d}"),
            None => format!("the token endpoint answered {what}"),
        };
        return Err(match error.error.as_str() {
            "invalid_client" => verdict(
                State::Invalid,
                Reason::ClientRejected,
                said("invalid_client"),
            ),
            "invalid_scope" => {
                verdict(State::Invalid, Reason::ScopeMismatch, said("invalid_scope"))
            }
            "unauthorized_client" => verdict(
                State::Forbidden,
                Reason::Forbidden,
                said("unauthorized_client (the client may not use the client-credentials grant)"),
            ),
            // An error code is a short word (RFC 6749 §5.2); anything else, an echo of the
            // request included, is not repeated.
            other if is_error_code(other, connection) => verdict(
                State::Unknown,
                Reason::UnexpectedResponse,
                said(&format!("the OAuth error {other:?}")),
            ),
            _ => verdict(
                State::Unknown,
                Reason::UnexpectedResponse,
                said("an OAuth error that is not a plain error code"),
            ),
        });
    }
    if status == 401 {
        return Err(verdict(
            State::Invalid,
            Reason::ClientRejected,
            "the token endpoint answered 401 without an OAuth error".to_owned(),
        ));
    }
    // A rate limit, an outage, a redirect: as for a probe, without a verdict on the client.
    let expect = super::any_answer(connection, Utc::now());
    let classified = classify::classify(answer, &expect);
    Err(match classified.state {
        State::Unknown => classified,
        _ => verdict(
            State::Unknown,
            Reason::UnexpectedResponse,
            format!("the token endpoint answered HTTP {status} without an OAuth error"),
        ),
    })
}

/// Whether `code` reads as an RFC 6749 error code (at most 64 of `a-z` and `_`) and is not the
/// client secret, so that it may be shown.
fn is_error_code(code: &str, connection: &Connection) -> bool {
    let secret = connection.secret.expose();
    code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        && (secret.is_empty() || !code.contains(secret))
}

fn truncate(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(DESCRIPTION_CAP)
        .collect()
}

/// `error_description`, shortened and without control characters; never the secret, should
/// an endpoint echo it.
fn describe(description: Option<&str>, connection: &Connection) -> Option<String> {
    let description = description?;
    let secret = connection.secret.expose();
    if !secret.is_empty() && description.contains(secret) {
        return None;
    }
    let text = truncate(description.trim());
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_renewed_a_minute_or_a_tenth_of_its_life_before_it_expires() {
        let now = tokio::time::Instant::now();
        let after = |lifetime: u64| renew_at(now, Duration::from_secs(lifetime)) - now;
        assert_eq!(
            after(3600),
            Duration::from_secs(3540),
            "an hour: a minute before"
        );
        assert_eq!(
            after(300),
            Duration::from_secs(270),
            "five minutes: a tenth before"
        );
        assert_eq!(
            after(600),
            Duration::from_secs(540),
            "ten minutes: both agree"
        );
        assert_eq!(after(0), Duration::ZERO);
        // An endpoint's word is capped at a day: no overflow, whatever it says.
        assert_eq!(after(u64::MAX), Duration::from_secs(86_340));
    }

    #[test]
    fn a_grant_of_any_lifetime_reads_without_overflow() {
        let text = "[[connection]]\nname = \"c\"\nurl = \"https://acme.atlassian.net\"\nauth = \"oauth_client_credentials\"\nclient_id = \"c\"\nclient_secret = \"s\"\n";
        let connection = crate::config::Config::from_sources(&[("t.toml".into(), text.into())])
            .expect("loads")
            .connections
            .remove(0);
        let answer = Answer {
            status: http::StatusCode::OK,
            headers: http::HeaderMap::new(),
            body:
                br#"{"access_token":"a","token_type":"Bearer","expires_in":18446744073709551615}"#
                    .to_vec(),
            truncated: false,
        };
        let (_, lifetime) = read_grant(&answer, &connection).expect("a grant");
        assert_eq!(lifetime, LIFETIME_CAP);
    }
}
