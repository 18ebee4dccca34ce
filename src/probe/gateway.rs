//! Atlassian's API gateway (`docs/jira-answers.md` §9, §13): where scoped API tokens (every
//! service account's) and OAuth clients reach a Cloud site, `{gateway_url}/ex/jira/{cloudId}`
//! (Confluence: `{gateway_url}/ex/confluence/{cloudId}/wiki`).
//!
//! - The cloudId is `cloud_id` when configured, else read once per site from
//!   `{url}/_edge/tenant_info`, which needs no credentials (none is sent), and kept for the
//!   process's life: a site's cloudId never changes.
//! - A scoped token sent to the site URL gets a plain 401, exactly as a revoked token does. So a
//!   Cloud API token without `scoped` that the site rejects is tried once at the gateway before
//!   it is called `unauthorized`: once per secret ([`GatewayTry`], kept with the connection's
//!   probe memory and reset with a new secret), never for a Basic password, and only where the
//!   gateway is implied (an `*.atlassian.net` site) or configured (`gateway_url`): the token is
//!   never sent to a host the configuration does not name or imply. If the gateway
//!   accepts it, the verdict is `invalid` with `scoped_token_site_url`: the token works, but
//!   not where this connection (and, most likely, the integration) sends it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use url::Url;

use super::classify::{self, Answer, Identity};
use super::{Outcome, Prober, Reason, Request, State, Verdict};
use crate::config::{Connection, Product};

/// What the gateway said of a token the site rejected: asked once per secret (a token it
/// accepted, again after `gateway_recheck_interval`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayTry {
    /// It accepted the token as this account (a scoped token on the site URL), when last
    /// asked: asked again `gateway_recheck_interval` later, since it may be revoked since.
    Accepted(Arc<Identity>, DateTime<Utc>),
    /// It rejected it too.
    Rejected,
}

/// The cloudIds read from sites' `tenant_info`, by site URL.
#[derive(Debug, Default)]
pub(crate) struct CloudIds(Mutex<HashMap<String, String>>);

impl CloudIds {
    fn get(&self, site: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(site)
            .cloned()
    }

    fn keep(&self, site: &str, cloud_id: &str) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(site.to_owned(), cloud_id.to_owned());
    }
}

/// Whether `text` can be a cloudId (a UUID: letters, digits and '-'), so that it may go
/// into a URL path.
pub(super) fn is_cloud_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The identity probe through the gateway: `{gateway}/ex/jira/{cloudId}/rest/api/3/myself`,
/// or Confluence's `{gateway}/ex/confluence/{cloudId}/wiki/rest/api/user/current`.
pub(super) fn myself_url(connection: &Connection, cloud_id: &str) -> Option<Url> {
    let gateway = connection.gateway.as_ref()?.as_str().trim_end_matches('/');
    let url = match connection.settings.product {
        Product::Jira => format!("{gateway}/ex/jira/{cloud_id}/rest/api/3/myself"),
        Product::Confluence => {
            format!("{gateway}/ex/confluence/{cloud_id}/wiki/rest/api/user/current")
        }
        // Data Center only: no gateway.
        Product::Bitbucket => return None,
    };
    Url::parse(&url).ok()
}

/// The site's root, where `_edge/tenant_info` is: the URL itself for Jira, without its `/wiki`
/// for Confluence (whose REST base is under it).
fn site_root(connection: &Connection) -> &str {
    let url = connection.url.as_str().trim_end_matches('/');
    match connection.settings.product {
        Product::Confluence => url.strip_suffix("/wiki").unwrap_or(url),
        Product::Jira | Product::Bitbucket => url,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TenantInfo {
    cloud_id: String,
}

/// The cloudId a `tenant_info` body names, if it is one.
pub(crate) fn read_tenant_info(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<TenantInfo>(body)
        .ok()
        .map(|info| info.cloud_id)
        .filter(|id| is_cloud_id(id))
}

impl Prober {
    /// The connection's cloudId: configured, kept, or read from the site's `tenant_info`.
    pub(super) async fn cloud_id(
        &self,
        connection: &Connection,
        started: Instant,
    ) -> Result<String, Outcome> {
        if let Some(id) = &connection.settings.cloud_id {
            return Ok(id.clone());
        }
        let site = site_root(connection);
        if let Some(id) = self.cloud_ids.get(site) {
            return Ok(id.clone());
        }
        let url = Url::parse(&format!("{site}/_edge/tenant_info"))
            .map_err(|e| super::unsendable(connection, e.to_string(), started))?;
        let answer = self
            .send(connection, &url, Request::Get(None), started)
            .await?;
        let read = (answer.status.as_u16() == 200)
            .then(|| read_tenant_info(&answer.body))
            .flatten();
        match read {
            Some(cloud_id) => {
                self.cloud_ids.keep(site, &cloud_id);
                Ok(cloud_id)
            }
            None => Err(tenant_info_failed(connection, &answer, &url, started)),
        }
    }

    /// The gateway's `myself` URL for this connection.
    pub(super) async fn gateway_myself(
        &self,
        connection: &Connection,
        started: Instant,
    ) -> Result<Url, Outcome> {
        let cloud_id = self.cloud_id(connection, started).await?;
        myself_url(connection, &cloud_id).ok_or_else(|| {
            super::unsendable(
                connection,
                "no gateway URL for this connection".to_owned(),
                started,
            )
        })
    }

    /// The verdict on an unscoped Cloud API token that the site rejected (`verdict`), after
    /// asking the gateway once per secret whether it is a scoped token.
    pub(super) async fn second_try_at_gateway(
        &self,
        connection: &Connection,
        authorization: &http::HeaderValue,
        verdict: Verdict,
        tried: &mut Option<GatewayTry>,
        started: Instant,
    ) -> Verdict {
        // Past its known expiry a token is expired wherever it is sent.
        if verdict.state == State::Expired {
            return verdict;
        }
        let recheck = chrono::Duration::from_std(connection.settings.gateway_recheck_interval)
            .unwrap_or(chrono::Duration::MAX);
        match tried {
            // What it said stands for a while; then a token it accepted is asked about again.
            Some(GatewayTry::Accepted(identity, asked_at))
                if Utc::now().signed_duration_since(*asked_at) < recheck =>
            {
                return scoped_on_site(identity.clone())
            }
            Some(GatewayTry::Rejected) => return verdict,
            _ => {}
        }
        // No cloudId, or no answer from the gateway: no verdict on the question, asked again
        // with the next rejection.
        let Ok(url) = self.gateway_myself(connection, started).await else {
            return verdict;
        };
        let Ok(answer) = self
            .send(connection, &url, Request::Get(Some(authorization)), started)
            .await
        else {
            return verdict;
        };
        let expect = super::expecting(connection, super::Facts::default(), Utc::now());
        let at_gateway = classify::classify(&answer, &expect);
        match (at_gateway.state, at_gateway.reason) {
            (State::Valid, _) => {
                let identity = at_gateway.identity.unwrap_or_default();
                *tried = Some(GatewayTry::Accepted(identity.clone(), Utc::now()));
                tracing::info!(
                    connection = %connection.name,
                    "the site rejected the API token and the gateway accepted it: a scoped token on the site URL"
                );
                scoped_on_site(identity)
            }
            // Rejected there too (a token it accepted before was revoked since): the site's
            // verdict stands, and the question is answered.
            (_, Reason::Unauthorized | Reason::AnonymousFallback) => {
                *tried = Some(GatewayTry::Rejected);
                verdict
            }
            // No verdict there (a rate limit, an outage): asked again with the next rejection.
            (State::Unknown, _) => verdict,
            // The gateway knows the token but refuses it for another reason (the wrong account,
            // a missing scope, an inactive account): that is the verdict on a scoped token.
            _ => Verdict {
                detail: Some(format!(
                    "the site rejected the token; at the API gateway (a scoped token): {}",
                    at_gateway
                        .detail
                        .as_deref()
                        .unwrap_or(at_gateway.reason.as_str())
                )),
                ..at_gateway
            },
        }
    }
}

fn scoped_on_site(identity: Arc<Identity>) -> Verdict {
    Verdict {
        state: State::Invalid,
        reason: Reason::ScopedTokenSiteUrl,
        identity: Some(identity),
        detail: Some(
            "the site rejected the token and the API gateway accepted it: it is a scoped token"
                .to_owned(),
        ),
    }
}

/// The outcome of a `tenant_info` that did not give a cloudId: a rate limit or an outage as
/// such, anything else as an unexpected answer.
fn tenant_info_failed(
    connection: &Connection,
    answer: &Answer,
    url: &Url,
    started: Instant,
) -> Outcome {
    let now = Utc::now();
    let expect = super::any_answer(connection, now);
    let classified = classify::classify(answer, &expect);
    let verdict = match classified.reason {
        Reason::RateLimited | Reason::ServerError | Reason::Redirected => classified,
        _ => Verdict {
            state: State::Unknown,
            reason: Reason::UnexpectedResponse,
            identity: None,
            detail: Some(format!(
                "cannot read the site's cloudId from {url} (HTTP {}): set cloud_id",
                answer.status.as_u16()
            )),
        },
    };
    Outcome::of_answer(
        answer,
        connection.settings.credential_type(),
        verdict,
        started,
        now,
    )
}
