//! Atlassian's organization admin API, as `docs/jira-answers.md` §8 records it: the user API
//! tokens of an organization's managed accounts at
//! `{prefix}/admin/api-access/v1/orgs/{orgId}/api-tokens`, one page at a time with a cursor in
//! `links.next` (or the next page's URL), the admin key as `Bearer`; 401 for a wrong key, 403
//! for a key without `read:tokens:admin`, and a 429 with `Retry-After` on a chosen page.

use axum::response::Response;
use chrono::{DateTime, Utc};

use crate::answer;

/// One organization's admin API.
#[derive(Debug, Clone)]
pub struct OrgApi {
    /// The organization's id.
    pub org_id: String,
    /// The admin API key it accepts.
    pub api_key: String,
    /// Whether the key holds the scope `read:tokens:admin` (else 403).
    pub scoped: bool,
    /// The managed accounts' tokens.
    pub tokens: Vec<OrgApiToken>,
    /// Tokens per page.
    pub page_size: usize,
    /// A page (from 1) that answers 429 once, with this `Retry-After` in seconds.
    pub throttle_once: Option<(usize, u64)>,
    /// Whether `links.next` holds the next page's URL rather than a cursor.
    pub next_as_url: bool,
    /// Pages answered (200) so far.
    pub pages_served: u32,
}

impl OrgApi {
    /// An organization with no tokens yet, pages of 2, accepting `api_key`.
    pub fn new(org_id: &str, api_key: &str) -> OrgApi {
        OrgApi {
            org_id: org_id.to_owned(),
            api_key: api_key.to_owned(),
            scoped: true,
            tokens: Vec::new(),
            page_size: 2,
            throttle_once: None,
            next_as_url: false,
            pages_served: 0,
        }
    }

    /// Adds a token.
    pub fn with_token(mut self, token: OrgApiToken) -> OrgApi {
        self.tokens.push(token);
        self
    }
}

/// One token in the list (never the token's secret: the API does not have it).
#[derive(Debug, Clone)]
pub struct OrgApiToken {
    /// Its id.
    pub id: String,
    /// The label its user gave it.
    pub label: String,
    /// Whether an admin blocked it.
    pub blocked: bool,
    /// The account's email.
    pub email: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Last use; `None` for never.
    pub last_active_at: Option<DateTime<Utc>>,
}

impl OrgApiToken {
    /// An allowed token of `email` labelled `label`, created 30 days ago, expiring in
    /// `expires_in_days`, last used an hour ago.
    pub fn new(email: &str, label: &str, expires_in_days: i64) -> OrgApiToken {
        let now = Utc::now();
        OrgApiToken {
            id: format!("{email}:{label}"),
            label: label.to_owned(),
            blocked: false,
            email: email.to_owned(),
            created_at: now - chrono::Duration::days(30),
            expires_at: now + chrono::Duration::days(expires_in_days),
            last_active_at: Some(now - chrono::Duration::hours(1)),
        }
    }
}

fn json(status: u16, extra: &[(&str, String)], body: serde_json::Value) -> Response {
    answer::reply(status, "application/json", extra, body.to_string())
}

/// The answer to `GET {prefix}/{rest}?{query}`; `base` is the prefix's URL, for `links`.
pub fn answer(
    api: &mut OrgApi,
    rest: &str,
    query: Option<&str>,
    authorization: Option<&str>,
    base: &str,
) -> Response {
    let list = format!("admin/api-access/v1/orgs/{}/api-tokens", api.org_id);
    if rest != list {
        return json(
            404,
            &[],
            serde_json::json!({"code": 404, "message": "Not Found"}),
        );
    }
    if authorization != Some(format!("Bearer {}", api.api_key).as_str()) {
        return json(
            401,
            &[],
            serde_json::json!({"code": 401, "message": "Unauthorized"}),
        );
    }
    if !api.scoped {
        return json(
            403,
            &[],
            serde_json::json!({"code": 403, "message": "The API key does not have the required scope read:tokens:admin"}),
        );
    }
    let offset: usize = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("cursor="))
        .and_then(|cursor| cursor.strip_prefix("offset-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let page_size = api.page_size.max(1);
    let page = offset / page_size + 1;
    if let Some((throttled, seconds)) = api.throttle_once {
        if throttled == page {
            api.throttle_once = None;
            return json(
                429,
                &[
                    ("Retry-After", seconds.to_string()),
                    ("X-RateLimit-Limit", "100".to_owned()),
                    ("X-RateLimit-Remaining", "0".to_owned()),
                    (
                        "X-RateLimit-Reset",
                        (Utc::now() + chrono::Duration::seconds(seconds as i64)).to_rfc3339(),
                    ),
                ],
                serde_json::json!({"code": 429, "message": "Too Many Requests"}),
            );
        }
    }
    api.pages_served += 1;
    let data: Vec<serde_json::Value> = api
        .tokens
        .iter()
        .skip(offset)
        .take(page_size)
        .map(|t| {
            serde_json::json!({
                "id": t.id,
                "label": t.label,
                "status": if t.blocked { "BLOCKED" } else { "ALLOWED" },
                "createdAt": t.created_at.to_rfc3339(),
                "expiresAt": t.expires_at.to_rfc3339(),
                "lastActiveAt": t.last_active_at.map(|at| at.to_rfc3339()),
                "user": {"id": format!("acct-{}", t.email), "orgId": api.org_id, "name": t.email, "email": t.email},
                "scopes": [],
            })
        })
        .collect();
    let next_offset = offset + page_size;
    let next = (next_offset < api.tokens.len()).then(|| {
        let cursor = format!("offset-{next_offset}");
        if api.next_as_url {
            format!("{base}/{list}?cursor={cursor}")
        } else {
            cursor
        }
    });
    json(
        200,
        &[],
        serde_json::json!({
            "data": data,
            "links": {"self": format!("{base}/{list}"), "next": next},
        }),
    )
}
