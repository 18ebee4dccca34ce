//! Atlassian's API gateway and what goes with it (`docs/jira-answers.md` §9 and §10), on the
//! simulator's reserved paths:
//!
//! - `GET {site}/_edge/tenant_info` → `{"cloudId": ...}`, without credentials (Cloud sites);
//! - `GET /gateway/ex/jira/{cloudId}/rest/api/3/myself`: the Cloud site with that cloudId, as
//!   `https://api.atlassian.com/ex/jira/{cloudId}` serves it. Scoped API tokens (Basic) work
//!   only here, unscoped ones only at the site; OAuth access tokens (`Bearer`) here too. The
//!   site's front (a throttle, an outage) stands in front of its gateway path as well, and only
//!   of its own: another tenant is unaffected;
//! - `GET /gateway/ex/confluence/{cloudId}/wiki/rest/api/user/current`: the Confluence Cloud
//!   site with that cloudId, for scoped API tokens;
//! - `GET /gateway/oauth/token/accessible-resources`: the sites an access token may reach;
//! - `POST /auth/oauth/token`: Atlassian's Cloud token endpoint ([`crate::oauth`]);
//! - `POST {site}/rest/oauth2/latest/token`: a Data Center site's token endpoint.

use axum::response::Response;
use chrono::{DateTime, Utc};

use crate::model::{self, Rejection};
use crate::route::front;
use crate::{answer, confluence, oauth, Action, Kind, Product, World};

/// The first path segment of the gateway.
pub const GATEWAY: &str = "gateway";

/// The first path segment of the Cloud token endpoint (`auth.atlassian.com`).
pub const AUTH: &str = "auth";

/// `GET {site}/_edge/tenant_info`.
pub(crate) fn tenant_info(cloud_id: &str) -> Response {
    answer::reply(
        200,
        "application/json",
        &[],
        serde_json::json!({"cloudId": cloud_id}).to_string(),
    )
}

/// A request under `/gateway/`.
pub(crate) fn gateway(
    world: &mut World,
    rest: &str,
    authorization: Option<&str>,
    base: &str,
    now: DateTime<Utc>,
) -> Action {
    if rest == "oauth/token/accessible-resources" {
        return Action::Respond(accessible_resources(world, authorization, base, now));
    }
    let (product, tail) = if let Some(tail) = rest.strip_prefix("ex/jira/") {
        (Product::Jira, tail)
    } else if let Some(tail) = rest.strip_prefix("ex/confluence/") {
        (Product::Confluence, tail)
    } else {
        return Action::Respond(answer::not_found());
    };
    let (cloud_id, path) = tail.split_once('/').unwrap_or((tail, ""));
    let Some(name) = world
        .sites
        .iter()
        .find(|(_, s)| s.kind == Kind::Cloud && s.product == product && s.cloud_id == cloud_id)
        .map(|(name, _)| name.clone())
    else {
        return Action::Respond(answer::not_found());
    };
    if product == Product::Confluence {
        return confluence_at_gateway(world, &name, path, authorization, base, now);
    }
    let site_url = format!("{base}/ex/jira/{cloud_id}");
    let issued = match authorization {
        Some(a) if a.starts_with("Bearer ") => {
            Some(oauth::bearer(&world.issued, authorization, now).cloned())
        }
        _ => None,
    };
    let Some(site) = world.sites.get_mut(&name) else {
        return Action::Respond(answer::not_found());
    };
    if let Some(action) = front(site, now) {
        return action;
    }
    if path != "rest/api/3/myself" {
        return Action::Respond(answer::not_found());
    }
    world.myself_total += 1;
    let index = match issued {
        // An access token: issued for this site, and still valid.
        Some(Some(token)) if token.site == name => {
            if !token
                .scopes
                .iter()
                .any(|s| s == "read:jira-user" || s == "read:user:jira")
            {
                return Action::Respond(answer::rejection(
                    site,
                    &site_url,
                    Rejection::ScopeMismatch,
                ));
            }
            match site.users.iter().position(|u| {
                u.email.eq_ignore_ascii_case(&token.account)
                    || u.username.eq_ignore_ascii_case(&token.account)
            }) {
                Some(index) => index,
                None => {
                    return Action::Respond(answer::rejection(
                        site,
                        &site_url,
                        Rejection::BadApiToken,
                    ))
                }
            }
        }
        Some(_) => {
            return Action::Respond(answer::rejection(site, &site_url, Rejection::BadApiToken))
        }
        None => match model::authenticate_via(site, authorization, now, true) {
            Ok(index) => index,
            Err(rejection) => {
                return Action::Respond(answer::rejection(site, &site_url, rejection))
            }
        },
    };
    let user = site.users[index].clone();
    if user.forbidden {
        return Action::Respond(answer::forbidden(Vec::new()));
    }
    Action::Respond(answer::myself(site, &site_url, &user, Vec::new()))
}

/// `ex/confluence/{cloudId}/wiki/rest/api/user/current`: scoped API tokens (Basic) only.
fn confluence_at_gateway(
    world: &mut World,
    name: &str,
    path: &str,
    authorization: Option<&str>,
    base: &str,
    now: DateTime<Utc>,
) -> Action {
    let Some(site) = world.sites.get_mut(name) else {
        return Action::Respond(answer::not_found());
    };
    if let Some(action) = front(site, now) {
        return action;
    }
    if path != "wiki/rest/api/user/current" {
        return Action::Respond(answer::not_found());
    }
    let site_url = format!("{base}/ex/confluence/{}/wiki", site.cloud_id);
    let response = confluence::current_user(site, &site_url, authorization, now, true);
    world.myself_total += 1;
    Action::Respond(response)
}

fn accessible_resources(
    world: &World,
    authorization: Option<&str>,
    base: &str,
    now: DateTime<Utc>,
) -> Response {
    let Some(token) = oauth::bearer(&world.issued, authorization, now) else {
        return answer::reply(
            401,
            "application/json",
            &[],
            r#"{"code":401,"message":"Unauthorized"}"#.to_owned(),
        );
    };
    let sites: Vec<serde_json::Value> = world
        .sites
        .iter()
        .filter(|(name, _)| **name == token.site)
        .map(|(name, site)| {
            serde_json::json!({
                "id": site.cloud_id,
                "url": format!("{}/{name}", base.trim_end_matches(&format!("/{GATEWAY}"))),
                "name": name,
                "scopes": token.scopes,
                "avatarUrl": "",
            })
        })
        .collect();
    answer::reply(
        200,
        "application/json",
        &[],
        serde_json::Value::Array(sites).to_string(),
    )
}

/// `POST /auth/oauth/token`: any Cloud site's clients.
pub(crate) fn cloud_token(world: &mut World, body: &[u8], now: DateTime<Utc>) -> Action {
    if let Some(action) = world.auth_front.take_turn(now) {
        return action;
    }
    let fields = oauth::fields(body);
    // Atlassian's token endpoint serves several APIs: the client says which.
    if fields.get("audience").map(String::as_str) != Some("api.atlassian.com") {
        return Action::Respond(oauth::error(
            400,
            "invalid_request",
            "audience must be api.atlassian.com",
        ));
    }
    let clients = world
        .sites
        .iter()
        .filter(|(_, s)| s.kind == Kind::Cloud)
        .flat_map(|(name, s)| s.oauth_clients.iter().map(move |c| (name.as_str(), c)));
    let granted = oauth::authenticate_client(clients, &fields);
    Action::Respond(match granted {
        Ok((site, client)) => oauth::grant(site, &client, &mut world.issued, now),
        Err(response) => *response,
    })
}

/// `POST {site}/rest/oauth2/latest/token`: that Data Center site's clients.
pub(crate) fn server_token(
    world: &mut World,
    name: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Response {
    let fields = oauth::fields(body);
    let Some(site) = world.sites.get(name) else {
        return answer::not_found();
    };
    let clients = site.oauth_clients.iter().map(|c| (name, c));
    match oauth::authenticate_client(clients, &fields) {
        Ok((site, client)) => oauth::grant(site, &client, &mut world.issued, now),
        Err(response) => *response,
    }
}
