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

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http::HeaderValue;
use serde::Deserialize;
use url::Url;

use super::classify::{self, Answer, LastMyself};
use super::{gateway, Outcome, Prober, Reason, Request, State, Verdict};
use crate::config::{Connection, Kind};

/// How long before its expiry a kept token is renewed, at most.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// The longest `error_description` shown.
const DESCRIPTION_CAP: usize = 200;

/// A kept access token.
struct Kept {
    /// A digest of the client id and secret it was issued for.
    client: u64,
    header: HeaderValue,
    renew_at: tokio::time::Instant,
    /// Cloud: the cloudId the accessible resources gave for this connection's site.
    cloud_id: Option<String>,
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

/// A digest of the connection's client id and secret, keyed once per process.
fn client_digest(connection: &Connection) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new).hash_one((
        connection.settings.client_id.as_deref(),
        connection.secret.expose(),
    ))
}

/// When a token that lives `lifetime` from `now` is renewed.
pub(crate) fn renew_at(now: tokio::time::Instant, lifetime: Duration) -> tokio::time::Instant {
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

#[derive(Deserialize)]
struct Resource {
    id: String,
    #[serde(default)]
    url: String,
}

impl Prober {
    /// Probes an OAuth client: a token (kept or new), then `myself` with it.
    pub(super) async fn probe_oauth(
        &self,
        connection: &Connection,
        known_expiry: Option<DateTime<Utc>>,
        last: &mut LastMyself,
        started: Instant,
    ) -> Outcome {
        let kept = match self.access_token(connection, started, false).await {
            Ok(kept) => kept,
            Err(outcome) => return outcome,
        };
        let outcome = self
            .oauth_myself(connection, &kept.0, known_expiry, last, started)
            .await;
        if !(kept.1 && outcome.http_status == Some(401)) {
            return outcome;
        }
        // The kept token no longer works (revoked, or the site restarted): one new one.
        tracing::debug!(connection = %connection.name, "the kept access token was rejected; asking for a new one");
        match self.access_token(connection, started, true).await {
            Ok((header, _)) => {
                self.oauth_myself(connection, &header, known_expiry, last, started)
                    .await
            }
            Err(outcome) => outcome,
        }
    }

    /// The access token to send, and whether it was kept from an earlier probe.
    async fn access_token(
        &self,
        connection: &Connection,
        started: Instant,
        renew: bool,
    ) -> Result<(HeaderValue, bool), Outcome> {
        let client = client_digest(connection);
        let now = tokio::time::Instant::now();
        if !renew {
            let tokens = self.tokens.lock();
            if let Some(kept) = tokens.get(&connection.name) {
                if kept.client == client && now < kept.renew_at {
                    return Ok((kept.header.clone(), true));
                }
            }
        }
        self.tokens.lock().remove(&connection.name);
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
            .map_err(from_token_endpoint)?;
        let now_utc = Utc::now();
        match read_grant(&answer, connection) {
            Ok((header, lifetime)) => {
                self.tokens.lock().insert(
                    connection.name.clone(),
                    Kept {
                        client,
                        header: header.clone(),
                        renew_at: renew_at(tokio::time::Instant::now(), lifetime),
                        cloud_id: None,
                    },
                );
                Ok((header, false))
            }
            Err(verdict) => Err(from_token_endpoint(Outcome::of_answer(
                &answer,
                connection.settings.auth,
                verdict,
                started,
                now_utc,
            ))),
        }
    }

    /// `myself` with the access token: the site's on Data Center, the gateway's on Cloud.
    async fn oauth_myself(
        &self,
        connection: &Connection,
        header: &HeaderValue,
        known_expiry: Option<DateTime<Utc>>,
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
        let expect = super::expecting(connection, known_expiry, now);
        let verdict = classify::classify_after(&answer, &expect, last);
        Outcome::of_answer(&answer, connection.settings.auth, verdict, started, now)
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
                connection.settings.auth,
                verdict,
                started,
                now,
            ));
        }
        let resources: Vec<Resource> = serde_json::from_slice(&answer.body).unwrap_or_default();
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
                    connection.settings.auth,
                    verdict,
                    started,
                    now,
                ))
            }
        }
    }
}

fn normalized(url: &str) -> String {
    url.trim().trim_end_matches('/').to_ascii_lowercase()
}

fn from_token_endpoint(mut outcome: Outcome) -> Outcome {
    outcome.from_token_endpoint = true;
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
        let lifetime = Duration::from_secs(granted.expires_in.unwrap_or(3600));
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
            other => verdict(
                State::Unknown,
                Reason::UnexpectedResponse,
                said(&format!("the OAuth error {:?}", truncate(other))),
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
    }
}
