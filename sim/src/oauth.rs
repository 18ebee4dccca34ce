//! OAuth 2.0 client credentials, as Atlassian's service accounts use them
//! (`docs/jira-answers.md` §10): the Cloud token endpoint (`POST /auth/oauth/token`, standing in
//! for `https://auth.atlassian.com/oauth/token`), the Data Center one
//! (`POST {site}/rest/oauth2/latest/token`), the access tokens they issue, and the gateway's
//! `GET /gateway/oauth/token/accessible-resources`.
//!
//! Requests are form-encoded (`grant_type=client_credentials&client_id=...&client_secret=...`,
//! RFC 6749 §4.4.2); JSON bodies, which Atlassian's Cloud endpoint also takes, are read too.
//! Errors follow RFC 6749 §5.2: `invalid_client` (401) for a wrong, revoked or expired client
//! id or secret, `unauthorized_client` (400) for a client not allowed this grant,
//! `invalid_scope` (400) for a client granted no scope at all, `invalid_request` (400) for a
//! request without the grant or the client's fields.

use std::collections::HashMap;

use axum::response::Response;
use chrono::{DateTime, Utc};

use crate::answer;

/// An OAuth 2.0 client (a service account's credential) registered on a site.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// The account its tokens act as (a user of the site, by user name or email).
    pub account: String,
    /// The scopes its tokens carry (`read:jira-user` lets `myself` answer).
    pub scopes: Vec<String>,
    /// Revoked (or expired) clients are refused with `invalid_client`.
    pub revoked: bool,
    /// Whether the client may use the client-credentials grant (`unauthorized_client` if not).
    pub grant_allowed: bool,
    /// How long its access tokens live, in seconds (Atlassian: 3600).
    pub lifetime_seconds: i64,
}

impl OAuthClient {
    /// A working client acting as `account`, with the scope `myself` needs.
    pub fn new(client_id: &str, client_secret: &str, account: &str) -> OAuthClient {
        OAuthClient {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            account: account.to_owned(),
            scopes: vec!["read:jira-user".to_owned()],
            revoked: false,
            grant_allowed: true,
            lifetime_seconds: 3600,
        }
    }
}

/// An access token the simulator issued.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The site (by name) whose client got it.
    pub site: String,
    /// The account it acts as.
    pub account: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// The fields of a token request, form-encoded or JSON.
pub(crate) fn fields(body: &[u8]) -> HashMap<String, String> {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
        return map
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
            .collect();
    }
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// An RFC 6749 §5.2 error answer.
pub(crate) fn error(status: u16, code: &str, description: &str) -> Response {
    answer::reply(
        status,
        "application/json",
        &[("Cache-Control", "no-store".to_owned())],
        serde_json::json!({"error": code, "error_description": description}).to_string(),
    )
}

fn refuse(status: u16, code: &str, description: &str) -> Box<Response> {
    Box::new(error(status, code, description))
}

/// What a token request gets from the clients it may name: the client that authenticated, or
/// the error answer.
pub(crate) fn authenticate_client<'a>(
    clients: impl Iterator<Item = (&'a str, &'a OAuthClient)>,
    fields: &HashMap<String, String>,
) -> Result<(String, OAuthClient), Box<Response>> {
    if fields.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Err(refuse(
            400,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        ));
    }
    let (Some(id), Some(secret)) = (fields.get("client_id"), fields.get("client_secret")) else {
        return Err(refuse(
            400,
            "invalid_request",
            "client_id and client_secret are required",
        ));
    };
    let found = clients
        .into_iter()
        .find(|(_, c)| &c.client_id == id)
        .map(|(site, c)| (site.to_owned(), c.clone()));
    match found {
        Some((site, client)) if &client.client_secret == secret && !client.revoked => {
            if !client.grant_allowed {
                Err(refuse(
                    400,
                    "unauthorized_client",
                    "The client is not authorized to use the client_credentials grant",
                ))
            } else if client.scopes.is_empty() {
                Err(refuse(
                    400,
                    "invalid_scope",
                    "The client has been granted no scope",
                ))
            } else {
                Ok((site, client))
            }
        }
        _ => Err(refuse(401, "invalid_client", "Unauthorized")),
    }
}

/// A successful token answer for `client`, recording the token in `issued`.
pub(crate) fn grant(
    site: String,
    client: &OAuthClient,
    issued: &mut HashMap<String, Issued>,
    now: DateTime<Utc>,
) -> Response {
    let token = format!("simaccess-{}-{}", client.client_id, issued.len() + 1);
    issued.insert(
        token.clone(),
        Issued {
            site,
            account: client.account.clone(),
            scopes: client.scopes.clone(),
            expires_at: now + chrono::Duration::seconds(client.lifetime_seconds),
        },
    );
    answer::reply(
        200,
        "application/json",
        &[("Cache-Control", "no-store".to_owned())],
        serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": client.lifetime_seconds,
            "scope": client.scopes.join(" "),
        })
        .to_string(),
    )
}

/// The access token a `Bearer` header carries, if the simulator issued it and it still works.
pub(crate) fn bearer<'a>(
    issued: &'a HashMap<String, Issued>,
    authorization: Option<&str>,
    now: DateTime<Utc>,
) -> Option<&'a Issued> {
    let token = authorization?.strip_prefix("Bearer ")?;
    issued.get(token).filter(|t| t.expires_at > now)
}
