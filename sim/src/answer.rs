//! The exact answers real Jira sends, as `docs/jira-answers.md` records them: status, headers
//! and body for every case the simulator serves.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};

use super::model::{Bucket, Pat, Rejection, Site, User};
use crate::Kind;

/// Extra response headers, by name.
pub type Headers = Vec<(&'static str, String)>;

const JSON: &str = "application/json;charset=UTF-8";
const HTML: &str = "text/html;charset=UTF-8";

/// Builds a response; header names and values here are all static-safe ASCII.
pub fn reply(
    status: u16,
    content_type: &str,
    headers: &[(&str, String)],
    body: String,
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        map.insert("content-type", value);
    }
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.append(name, value);
        }
    }
    response
}

/// The HTML login page Jira (or a proxy) shows.
pub fn login_page() -> String {
    "<!DOCTYPE html><html><head><title>Log in - Jira</title></head><body><form id=\"login-form\" action=\"/login.jsp\" method=\"post\"><input name=\"os_username\"><input name=\"os_password\" type=\"password\"></form></body></html>".to_owned()
}

/// A plain 404, as Jira or a proxy answers for a path it does not serve.
pub fn not_found() -> Response {
    reply(
        404,
        HTML,
        &[],
        "<html><body><h1>404 Not Found</h1></body></html>".to_owned(),
    )
}

/// The answer to a rejected credential, as the site's kind answers it.
pub fn rejection(site: &Site, site_url: &str, rejection: Rejection) -> Response {
    let failed = ("X-Seraph-LoginReason", "AUTHENTICATED_FAILED".to_owned());
    match rejection {
        Rejection::NoCredentials | Rejection::BadPat if site.anonymous_fallback => {
            anonymous(site.kind)
        }
        Rejection::BadApiToken if site.anonymous_fallback => anonymous(site.kind),
        Rejection::NoCredentials | Rejection::BadPat if site.error_messages_body => reply(
            401,
            JSON,
            &[],
            r#"{"errorMessages":["You are not authenticated. Authentication required to perform this operation."],"errors":{}}"#
                .to_owned(),
        ),
        Rejection::NoCredentials | Rejection::BadPat => reply(
            401,
            JSON,
            &[],
            r#"{"message":"Client must be authenticated to access this resource.","status-code":401}"#
                .to_owned(),
        ),
        Rejection::BadPassword => reply(401, HTML, &[failed], login_page()),
        Rejection::Captcha => reply(
            403,
            HTML,
            &[
                ("X-Seraph-LoginReason", "AUTHENTICATION_DENIED".to_owned()),
                (
                    "X-Authentication-Denied-Reason",
                    format!("CAPTCHA_CHALLENGE; login-url={site_url}/login.jsp"),
                ),
            ],
            "<html><body>Basic Authentication Failure - Reason : AUTHENTICATION_DENIED</body></html>"
                .to_owned(),
        ),
        Rejection::BasicDisabled => reply(
            403,
            JSON,
            &[],
            r#"{"message":"Basic Authentication has been disabled on this instance."}"#.to_owned(),
        ),
        Rejection::BadApiToken => reply(
            401,
            HTML,
            &[failed],
            "Client must be authenticated to access this resource.".to_owned(),
        ),
        Rejection::PasswordOnCloud => reply(
            401,
            "text/plain",
            &[],
            "Basic authentication with passwords is deprecated.  For more information, see: https://developer.atlassian.com/cloud/confluence/deprecation-notice-basic-auth/".to_owned(),
        ),
        Rejection::BearerOnCloud => reply(
            403,
            JSON,
            &[],
            r#"{"error": "Failed to parse Connect Session Auth Token"}"#.to_owned(),
        ),
        Rejection::ScopeMismatch => reply(
            401,
            JSON,
            &[],
            r#"{"code":401,"message":"Unauthorized; scope does not match"}"#.to_owned(),
        ),
    }
}

/// The fall-through to anonymous access: DC names the anonymous user, Cloud keeps the
/// Seraph failure header on a 200.
fn anonymous(kind: Kind) -> Response {
    let header = match kind {
        Kind::Server => ("X-AUSERNAME", "anonymous".to_owned()),
        Kind::Cloud => ("X-Seraph-LoginReason", "AUTHENTICATED_FAILED".to_owned()),
    };
    reply(200, JSON, &[header], "{}".to_owned())
}

/// 403 for an authenticated account without permission.
pub fn forbidden(extra: Headers) -> Response {
    reply(
        403,
        JSON,
        &extra,
        r#"{"errorMessages":["You do not have permission to access this resource."],"errors":{}}"#
            .to_owned(),
    )
}

/// Data Center's per-user rate-limit headers.
pub fn bucket_headers(bucket: Bucket, remaining: u32, retry_after: u64) -> Headers {
    vec![
        ("X-RateLimit-Limit", bucket.limit.to_string()),
        ("X-RateLimit-Remaining", remaining.to_string()),
        (
            "X-RateLimit-Interval-Seconds",
            bucket.interval_seconds.to_string(),
        ),
        ("X-RateLimit-FillRate", bucket.fill_rate.to_string()),
        ("Retry-After", retry_after.to_string()),
    ]
}

/// 429 from an empty Data Center bucket.
pub fn bucket_empty(bucket: Bucket, wait_seconds: u64) -> Response {
    reply(
        429,
        JSON,
        &bucket_headers(bucket, 0, wait_seconds),
        r#"{"message":"Rate limit exceeded."}"#.to_owned(),
    )
}

/// A throttled answer (Cloud burst limit, or a 503 with `Retry-After`).
pub fn throttled(
    kind: Kind,
    status: u16,
    retry_after: Option<&str>,
    now: DateTime<Utc>,
) -> Response {
    let mut headers = Vec::new();
    if let Some(value) = retry_after {
        headers.push(("Retry-After", value.to_owned()));
    }
    if kind == Kind::Cloud && status == 429 {
        let reset = now + chrono::Duration::minutes(1);
        headers.extend([
            ("X-RateLimit-Limit", "350".to_owned()),
            ("X-RateLimit-Remaining", "0".to_owned()),
            ("X-RateLimit-NearLimit", "true".to_owned()),
            (
                "X-RateLimit-Reset",
                reset.format("%Y-%m-%dT%H:%MZ").to_string(),
            ),
            ("RateLimit-Reason", "jira-burst-based".to_owned()),
        ]);
    }
    reply(
        status,
        JSON,
        &headers,
        r#"{"message":"Too many requests"}"#.to_owned(),
    )
}

/// `myself` for an authenticated user, in the site's dialect.
pub fn myself(site: &Site, site_url: &str, user: &User, extra: Headers) -> Response {
    let mut headers = extra;
    let body = match site.kind {
        Kind::Server => {
            headers.extend([
                ("X-Seraph-LoginReason", "OK".to_owned()),
                ("X-AUSERNAME", user.username.clone()),
                ("X-ANODEID", site.node_id.clone()),
            ]);
            serde_json::json!({
                "self": format!("{site_url}/rest/api/2/user?username={}", user.username),
                "key": user.key,
                "name": user.username,
                "emailAddress": user.email,
                "displayName": user.display_name,
                "active": user.active,
                "deleted": false,
                "timeZone": "Europe/Berlin",
                "locale": "en_US",
                "groups": {"size": 2, "items": []},
                "applicationRoles": {"size": 1, "items": []},
                "expand": "groups,applicationRoles",
            })
        }
        Kind::Cloud => serde_json::json!({
            "self": format!("{site_url}/rest/api/3/user?accountId={}", user.account_id),
            "accountId": user.account_id,
            "accountType": "atlassian",
            "emailAddress": user.email,
            "displayName": user.display_name,
            "active": user.active,
            "timeZone": "Australia/Sydney",
            "locale": "en_US",
        }),
    };
    reply(200, JSON, &headers, body.to_string())
}

/// Jira's date form in the PAT API: `2026-12-03T22:35:14.728+00:00`.
pub fn jira_date(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// `GET /rest/pat/latest/tokens`: the caller's own live tokens, each date written by `date`
/// (Jira's [`jira_date`], or Confluence's form without a colon in the offset).
pub fn pat_list(user: &User, extra: Headers, date: fn(DateTime<Utc>) -> String) -> Response {
    let entry = |pat: &Pat| {
        let mut entry = serde_json::json!({
            "id": pat.id,
            "name": pat.name,
            "createdAt": date(pat.created_at),
        });
        if let Some(used) = pat.last_accessed_at {
            entry["lastAccessedAt"] = date(used).into();
        }
        if let Some(expiry) = pat.expiring_at {
            entry["expiringAt"] = date(expiry).into();
        }
        entry
    };
    let tokens: Vec<serde_json::Value> = user
        .pats
        .iter()
        .filter(|pat| !pat.revoked)
        .map(entry)
        .collect();
    reply(
        200,
        JSON,
        &extra,
        serde_json::Value::Array(tokens).to_string(),
    )
}

/// `GET /status` of a DC node: 200 while RUNNING, STARTING or STOPPING, 503 in
/// MAINTENANCE, 500 in ERROR.
pub fn node_status(state: &str) -> Response {
    let code = match state {
        "MAINTENANCE" => 503,
        "ERROR" => 500,
        _ => 200,
    };
    reply(
        code,
        JSON,
        &[],
        serde_json::json!({ "state": state }).to_string(),
    )
}

/// `GET /rest/api/2/serverInfo`, which answers anonymous callers.
pub fn server_info(site: &Site, site_url: &str) -> Response {
    let body = match site.kind {
        Kind::Server => serde_json::json!({
            "baseUrl": site_url,
            "version": "10.3.19",
            "versionNumbers": [10, 3, 19],
            // "Server" even on a Data Center licence (docs/jira-answers.md §6).
            "deploymentType": "Server",
            "buildNumber": 10030019,
            "serverTitle": "Jira",
        }),
        Kind::Cloud => serde_json::json!({
            "baseUrl": site_url,
            "version": "1001.0.0-SNAPSHOT",
            "versionNumbers": [1001, 0, 0],
            "deploymentType": "Cloud",
            "buildNumber": 100284,
            "serverTitle": "Jira",
        }),
    };
    reply(200, JSON, &[], body.to_string())
}
