//! Where a request goes: the simulator's own paths (`/_sim/stats`), the gateway and the
//! Cloud token endpoint ([`crate::gateway`]), an organization admin API ([`crate::admin`]), or a
//! site, behind whatever stands in front of it ([`front`]), to the endpoint Jira would answer
//! it with: `serverInfo`, `status`, `myself`, the PAT list, `tenant_info` and the Data Center
//! token endpoint.

use std::time::Instant;

use axum::response::Response;
use chrono::{DateTime, Utc};

use crate::{
    admin, answer, bitbucket, confluence, gateway, model, oauth, Action, Front, Kind, Product,
    RecordedRequest, Rejection, Site, World, RECORD_LIMIT,
};

pub(crate) fn decide(
    world: &mut World,
    request: &axum::http::request::Parts,
    body: &[u8],
) -> Action {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let path = request.uri.path().to_owned();
    if path == "/_sim/stats" {
        // Counters for benchmarks, which must not parse a huge /metrics to count probes.
        let body = serde_json::json!({
            "myself": world.myself_total,
            "tokens": world.tokens_total,
        });
        return Action::Respond(answer::reply(
            200,
            "application/json",
            &[],
            body.to_string(),
        ));
    }
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let site_name = segments.next().unwrap_or_default().to_owned();
    let rest = segments.next().unwrap_or_default().to_owned();
    let now = Utc::now();
    let known = world.sites.contains_key(&site_name)
        || world.org_apis.contains_key(&site_name)
        || site_name == gateway::GATEWAY
        || site_name == gateway::AUTH;
    world.requests.push_back(RecordedRequest {
        site: known.then(|| site_name.clone()),
        method: request.method.to_string(),
        path: path.clone(),
        query: request.uri.query().map(str::to_owned),
        authorization: header("authorization"),
        accept: header("accept"),
        user_agent: header("user-agent"),
        at: now,
        instant: tokio::time::Instant::now(),
    });
    if world.requests.len() > RECORD_LIMIT {
        world.requests.pop_front();
    }
    *world.counts.entry(site_name.clone()).or_default() += 1;

    let host = header("host").unwrap_or_default();
    let authorization = header("authorization");
    let method = request.method.as_str();
    if site_name == gateway::GATEWAY {
        let base = format!("{}://{host}/{site_name}", world.scheme);
        return gateway::gateway(world, &rest, authorization.as_deref(), &base, now);
    }
    if site_name == gateway::AUTH {
        return match (method, rest.as_str()) {
            ("POST", "oauth/token") => gateway::cloud_token(world, body, now),
            _ => Action::Respond(answer::not_found()),
        };
    }
    if let Some(api) = world.org_apis.get_mut(&site_name) {
        let base = format!("{}://{host}/{site_name}", world.scheme);
        let authorization = header("authorization");
        return Action::Respond(admin::answer(
            api,
            &rest,
            request.uri.query(),
            authorization.as_deref(),
            &base,
        ));
    }
    let Some(site) = world.sites.get_mut(&site_name) else {
        return Action::Respond(answer::not_found());
    };
    let site_url = format!("{}://{host}/{site_name}", world.scheme);
    if site.product == Product::Bitbucket && !bitbucket::within_rest_or_scm(&rest) {
        world.outside_rest_or_scm.push(path.clone());
        let Some(site) = world.sites.get_mut(&site_name) else {
            return Action::Respond(answer::not_found());
        };
        return Action::Respond(bitbucket::answer(
            site,
            method,
            &rest,
            request.uri.query(),
            authorization.as_deref(),
            now,
        ));
    }
    let Some(site) = world.sites.get_mut(&site_name) else {
        return Action::Respond(answer::not_found());
    };
    if let Some(action) = front(site, now) {
        return action;
    }
    let delay = match site.front {
        Front::Slow(delay) => Some(delay),
        _ => None,
    };
    let kind = site.kind;
    match (method, rest.as_str(), kind) {
        ("GET", "_edge/tenant_info", Kind::Cloud) => {
            return Action::Respond(gateway::tenant_info(&site.cloud_id));
        }
        ("POST", "rest/oauth2/latest/token", Kind::Server) => {
            let response = gateway::server_token(world, &site_name, body, now);
            // A slow site is slow at its token endpoint too.
            return match delay {
                Some(delay) => Action::Later(delay, response),
                None => Action::Respond(response),
            };
        }
        _ => {}
    }
    // A Data Center service account's access token.
    let access = match oauth::bearer(&world.issued, authorization.as_deref(), now) {
        Some(token) if token.site == site_name => Some(token.account.clone()),
        _ => None,
    };
    if rest.ends_with("/myself")
        || rest.ends_with("rest/api/user/current")
        || rest.ends_with("/profile/recent/repos")
    {
        world.myself_total += 1;
    } else if rest.ends_with("/tokens") {
        world.tokens_total += 1;
    }
    let close = world.close_connections;
    let Some(site) = world.sites.get_mut(&site_name) else {
        return Action::Respond(answer::not_found());
    };
    let product = site.product;
    let mut response = match (request.method.as_str(), rest.as_str()) {
        (method, rest) if product == Product::Confluence => {
            confluence::answer(site, &site_url, method, rest, authorization.as_deref(), now)
        }
        (method, rest) if product == Product::Bitbucket => bitbucket::answer(
            site,
            method,
            rest,
            request.uri.query(),
            authorization.as_deref(),
            now,
        ),
        ("GET", "rest/api/2/myself") if access.is_some() => {
            let account = access.unwrap_or_default();
            match site
                .users
                .iter()
                .find(|u| u.username.eq_ignore_ascii_case(&account))
            {
                Some(user) => answer::myself(site, &site_url, &user.clone(), Vec::new()),
                None => answer::rejection(site, &site_url, Rejection::BadPat),
            }
        }
        ("GET", "status") => answer::node_status(site.node_state),
        ("GET", "rest/api/2/serverInfo") | ("GET", "rest/api/3/serverInfo") => {
            answer::server_info(site, &site_url)
        }
        ("GET", "rest/api/2/myself") => myself(site, &site_url, authorization.as_deref(), now),
        ("GET", "rest/api/3/myself") if site.kind == Kind::Cloud => {
            myself(site, &site_url, authorization.as_deref(), now)
        }
        ("GET", "rest/pat/latest/tokens") if site.pat_api && site.kind == Kind::Server => {
            pat_list(site, &site_url, authorization.as_deref(), now)
        }
        _ => answer::not_found(),
    };
    if close {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    match delay {
        Some(delay) => Action::Later(delay, response),
        None => Action::Respond(response),
    }
}

/// What stands in front of Jira answers first, if it answers at all.
pub(crate) fn front(site: &mut Site, now: DateTime<Utc>) -> Option<Action> {
    let kind = site.kind;
    match &mut site.front {
        Front::Healthy | Front::Slow(_) => None,
        Front::Hang => Some(Action::Hang),
        Front::Status(code, body) => Some(Action::Respond(answer::reply(
            *code,
            "text/html;charset=UTF-8",
            &[],
            body.clone(),
        ))),
        Front::Redirect(location) => Some(Action::Respond(answer::reply(
            302,
            "text/html;charset=UTF-8",
            &[("Location", location.clone())],
            String::new(),
        ))),
        Front::LoginPage => Some(Action::Respond(answer::reply(
            200,
            "text/html;charset=UTF-8",
            &[],
            answer::login_page(),
        ))),
        Front::Throttle {
            remaining,
            status,
            retry_after,
        } => {
            if *remaining == 0 {
                site.front = Front::Healthy;
                return None;
            }
            *remaining -= 1;
            let response = answer::throttled(kind, *status, retry_after.as_deref(), now);
            if *remaining == 0 {
                site.front = Front::Healthy;
            }
            Some(Action::Respond(response))
        }
    }
}

/// The outcome of authentication plus the user's rate-limit bucket.
pub(crate) enum Admission {
    /// The user's index, and the rate-limit headers every authenticated answer carries.
    Admitted(usize, answer::Headers),
    /// The answer that refuses the request.
    Refused(Response),
}

/// Authenticates a request and takes a token from its user's bucket; a rejection is answered
/// as `rejected` says (the product's own answers).
pub(crate) fn admit(
    site: &mut Site,
    site_url: &str,
    authorization: Option<&str>,
    now: DateTime<Utc>,
    rejected: fn(&Site, &str, Rejection) -> Response,
) -> Admission {
    let index = match model::authenticate(site, authorization, now) {
        Ok(index) => index,
        Err(rejection) => return Admission::Refused(rejected(site, site_url, rejection)),
    };
    let Some(bucket) = site.bucket else {
        return Admission::Admitted(index, Vec::new());
    };
    match model::take_token(&mut site.users[index], bucket, Instant::now()) {
        Ok(remaining) => Admission::Admitted(index, answer::bucket_headers(bucket, remaining, 0)),
        Err(wait) => Admission::Refused(answer::bucket_empty(bucket, wait)),
    }
}

fn myself(
    site: &mut Site,
    site_url: &str,
    authorization: Option<&str>,
    now: DateTime<Utc>,
) -> Response {
    match admit(site, site_url, authorization, now, answer::rejection) {
        Admission::Refused(response) => response,
        Admission::Admitted(index, mut headers) if site.users[index].forbidden => {
            // Data Center names the authenticated caller on every answer, a 403 included.
            if site.kind == Kind::Server {
                headers.push(("X-AUSERNAME", site.users[index].username.clone()));
            }
            answer::forbidden(headers)
        }
        Admission::Admitted(index, headers) => {
            answer::myself(site, site_url, &site.users[index], headers)
        }
    }
}

fn pat_list(
    site: &mut Site,
    site_url: &str,
    authorization: Option<&str>,
    now: DateTime<Utc>,
) -> Response {
    match admit(site, site_url, authorization, now, answer::rejection) {
        Admission::Refused(response) => response,
        Admission::Admitted(index, headers) => {
            answer::pat_list(&site.users[index], headers, answer::jira_date)
        }
    }
}
