//! Confluence, Data Center and Cloud, as `docs/jira-answers.md` §13 records it: the identity
//! endpoint `rest/api/user/current` (under `/wiki` on Cloud, and through the gateway at
//! `ex/confluence/{cloudId}/wiki`), the PAT list, and the answers that differ from Jira's:
//!
//! - a wrong, revoked or expired PAT (or no credential) is **200 with the anonymous user**,
//!   not a 401;
//! - a wrong password is 401 with "Basic Authentication Failure - Reason : AUTHENTICATED_FAILED";
//! - the CAPTCHA lock is **401** (Jira: 403) with `X-Seraph-LoginReason: AUTHENTICATION_DENIED`
//!   and `WWW-Authenticate: OAuth realm=...`;
//! - PAT dates end in `+0000`, without a colon;
//! - an account without Confluence access gets 403 "Current user not permitted to use
//!   Confluence".
//!
//! Who is calling is decided by the same rules as Jira's ([`crate::model`]): Seraph's counter
//! and PATs on Data Center, API tokens on Cloud.

use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::answer::{self, Headers};
use crate::model::{Rejection, Site, User};
use crate::route::{admit, Admission};
use crate::Kind;

const JSON: &str = "application/json;charset=UTF-8";
const HTML: &str = "text/html;charset=UTF-8";

/// The identity path under a Confluence site: `rest/api/user/current`, after `wiki/` on Cloud.
pub(crate) fn is_current_user(site: &Site, rest: &str) -> bool {
    match site.kind {
        Kind::Server => rest == "rest/api/user/current",
        Kind::Cloud => rest == "wiki/rest/api/user/current",
    }
}

/// A request to a Confluence site (after whatever stands in front of it).
pub(crate) fn answer(
    site: &mut Site,
    site_url: &str,
    method: &str,
    rest: &str,
    authorization: Option<&str>,
    now: DateTime<Utc>,
) -> Response {
    match (method, rest) {
        ("GET", "status") => answer::node_status(site.node_state),
        ("GET", path) if is_current_user(site, path) => {
            current_user(site, site_url, authorization, now, false)
        }
        ("GET", "rest/pat/latest/tokens") if site.pat_api && site.kind == Kind::Server => {
            match admit(site, site_url, authorization, now, rejection_answer) {
                Admission::Refused(response) => response,
                Admission::Admitted(index, headers) => {
                    answer::pat_list(&site.users[index], headers, confluence_date)
                }
            }
        }
        _ => answer::not_found(),
    }
}

/// `user/current` for whoever the credential is: an account, the anonymous user, or a
/// refusal. `gateway`: the request came through `ex/confluence/{cloudId}`.
pub(crate) fn current_user(
    site: &mut Site,
    site_url: &str,
    authorization: Option<&str>,
    now: DateTime<Utc>,
    gateway: bool,
) -> Response {
    let admission = if gateway {
        match crate::model::authenticate_via(site, authorization, now, true) {
            Ok(index) => Admission::Admitted(index, Vec::new()),
            Err(rejection) => Admission::Refused(rejection_answer(site, site_url, rejection)),
        }
    } else {
        admit(site, site_url, authorization, now, rejection_answer)
    };
    match admission {
        Admission::Refused(response) => response,
        Admission::Admitted(index, headers) if site.users[index].forbidden => {
            not_permitted(headers)
        }
        Admission::Admitted(index, headers) => user(site, site_url, &site.users[index], headers),
    }
}

/// Confluence's answer to each way a credential fails.
pub(crate) fn rejection_answer(site: &Site, site_url: &str, rejection: Rejection) -> Response {
    match rejection {
        // No 401 for a PAT Confluence does not know: the request runs as the anonymous user.
        Rejection::NoCredentials | Rejection::BadPat => anonymous(),
        Rejection::BadPassword => answer::reply(
            401,
            HTML,
            &[("X-Seraph-LoginReason", "AUTHENTICATED_FAILED".to_owned())],
            "<html><body>Basic Authentication Failure - Reason : AUTHENTICATED_FAILED</body></html>"
                .to_owned(),
        ),
        Rejection::Captcha => answer::reply(
            401,
            HTML,
            &[
                ("X-Seraph-LoginReason", "AUTHENTICATION_DENIED".to_owned()),
                ("WWW-Authenticate", format!("OAuth realm=\"{site_url}\"")),
            ],
            "<html><body>Basic Authentication Failure - Reason : AUTHENTICATION_DENIED</body></html>"
                .to_owned(),
        ),
        other => answer::rejection(site, site_url, other),
    }
}

/// 200 with the anonymous user, without `X-AUSERNAME`.
fn anonymous() -> Response {
    let body = serde_json::json!({
        "type": "anonymous",
        "profilePicture": {
            "path": "/wiki/s/en_GB/images/icons/profilepics/anonymous.svg",
            "width": 48,
            "height": 48,
            "isDefault": true,
        },
        "displayName": "Anonymous",
        "_links": {"self": "/rest/api/user/anonymous"},
    });
    answer::reply(200, JSON, &[], body.to_string())
}

/// 403 for an account without Confluence access.
fn not_permitted(headers: Headers) -> Response {
    answer::reply(
        403,
        JSON,
        &headers,
        r#"{"message":"Current user not permitted to use Confluence","statusCode":403}"#.to_owned(),
    )
}

/// The user object of an account, in the site's dialect.
fn user(site: &Site, site_url: &str, user: &User, extra: Headers) -> Response {
    let mut headers = extra;
    let body = match site.kind {
        Kind::Server => {
            headers.extend([
                ("X-AUSERNAME", user.username.clone()),
                ("X-Seraph-LoginReason", "OK".to_owned()),
                ("X-ASESSIONID", "1x2y3z".to_owned()),
            ]);
            serde_json::json!({
                "type": "known",
                "username": user.username,
                "userKey": user.key,
                "profilePicture": {
                    "path": "/download/attachments/0/user-avatar",
                    "width": 48,
                    "height": 48,
                    "isDefault": true,
                },
                "displayName": user.display_name,
                "_links": {
                    "base": site_url,
                    "self": format!("{site_url}/rest/api/user?key={}", user.key),
                },
                "_expandable": {"status": ""},
            })
        }
        Kind::Cloud => serde_json::json!({
            "type": "known",
            "accountId": user.account_id,
            "accountType": "atlassian",
            "email": user.email,
            "publicName": user.display_name,
            "displayName": user.display_name,
            "isExternalCollaborator": false,
            "_links": {"base": site_url, "self": format!("{site_url}/rest/api/user?accountId={}", user.account_id)},
        }),
    };
    answer::reply(200, JSON, &headers, body.to_string())
}

/// Confluence's date form in the PAT API: `2026-04-15T10:30:00.000+0000`, no colon.
pub fn confluence_date(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
        .trim_end_matches('Z')
        .to_owned()
        + "+0000"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_have_no_colon_in_the_offset() {
        let time = DateTime::parse_from_rfc3339("2026-04-15T10:30:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(confluence_date(time), "2026-04-15T10:30:00.000+0000");
    }
}
