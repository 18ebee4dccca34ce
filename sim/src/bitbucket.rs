//! Bitbucket Data Center, as `docs/jira-answers.md` §15 records it:
//!
//! - no "myself": `GET rest/api/latest/profile/recent/repos` answers only an authenticated
//!   caller, and names it in the `X-AUSERNAME` header (URL-encoded);
//! - HTTP access tokens: personal ones (Bearer, or Basic `username:token`, which is a login
//!   like a password), and project and repository tokens (Bearer only, with a system-generated
//!   user that has no account);
//! - failures are 401 with an `errors` body whose `exceptionName` tells them apart: a wrong
//!   password or token (`IncorrectPasswordAuthenticationException`), the CAPTCHA lock
//!   (`CaptchaRequiredAuthenticationException`, after 5 failed logins by default), and a valid
//!   credential without permission (`com.atlassian.bitbucket.AuthorisationException`);
//! - the owner's token list, `rest/access-tokens/1.0/users/{slug}`, paged, ids as strings,
//!   `createdDate` + `expiryDays`, and the user by slug, `rest/api/1.0/users/{slug}`;
//! - a token on a path outside `/rest` and `/scm` (the `whoami` servlet) gets a 302 (Bearer) or
//!   a 401 that counts as a failed login (Basic): the simulator records every such request, and
//!   a simulator that received one fails the test that dropped it.

use axum::response::Response;
use chrono::{DateTime, Utc};

use crate::answer;
use crate::model::{Site, User};

const JSON: &str = "application/json;charset=UTF-8";

/// The exception Bitbucket names for a wrong password or token.
pub const INCORRECT_PASSWORD: &str =
    "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException";
/// The exception Bitbucket names for the CAPTCHA lock.
pub const CAPTCHA_REQUIRED: &str =
    "com.atlassian.bitbucket.auth.CaptchaRequiredAuthenticationException";
/// The exception Bitbucket names for an authenticated caller without permission.
pub const AUTHORISATION: &str = "com.atlassian.bitbucket.AuthorisationException";

/// Who a request authenticated as, or why not.
enum Caller {
    /// The user at this index of the site.
    User(usize),
    /// No credentials at all.
    Anonymous,
    /// The answer refusing it.
    Refused(Response),
}

/// A user's slug as Bitbucket makes it: the name in lower case, the characters a URL path
/// reserves replaced with `_`. The users API finds a user by its slug exactly (the
/// simulator's reading: whether Bitbucket ignores case there is not known).
pub fn slug_of(username: &str) -> String {
    username
        .to_lowercase()
        .chars()
        .map(|c| {
            if ":/?#@!$&'()*+,;=%\\[]".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// An `errors` body with one error.
fn errors(status: u16, message: &str, exception: &str, headers: &[(&str, String)]) -> Response {
    let body = serde_json::json!({
        "errors": [{"context": null, "message": message, "exceptionName": exception}]
    });
    answer::reply(status, JSON, headers, body.to_string())
}

/// What Bitbucket escapes in a header's user name: everything but the unreserved characters.
const ENCODED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The headers an authenticated answer carries: the caller's name, URL-encoded.
fn user_headers(user: &User) -> Vec<(&'static str, String)> {
    vec![
        (
            "X-AUSERNAME",
            percent_encoding::utf8_percent_encode(&user.username, ENCODED).to_string(),
        ),
        (
            "X-AUSERID",
            user.key.trim_start_matches("JIRAUSER").to_owned(),
        ),
        ("X-AREQUESTID", "@1Q2W3E4x1234x0x0".to_owned()),
    ]
}

/// Decides who is calling, counting failed Basic logins (a personal token sent as the
/// password is a login too) and locking the account after `captcha_after` of them.
fn authenticate(site: &mut Site, authorization: Option<&str>, now: DateTime<Utc>) -> Caller {
    let Some(authorization) = authorization else {
        return Caller::Anonymous;
    };
    let failed = || {
        errors(
            401,
            "Authentication failed. Please check your credentials and try again.",
            INCORRECT_PASSWORD,
            &[],
        )
    };
    if let Some(token) = authorization.strip_prefix("Bearer ") {
        let found = site.users.iter_mut().enumerate().find_map(|(i, user)| {
            let pat = user.pats.iter_mut().find(|p| p.secret == token)?;
            Some((i, pat))
        });
        return match found {
            Some((i, pat)) if pat.works(now) => {
                pat.last_accessed_at = Some(now);
                Caller::User(i)
            }
            _ => Caller::Refused(failed()),
        };
    }
    let Some((login, secret)) = crate::model::decode_basic(authorization) else {
        return Caller::Refused(failed());
    };
    if !site.basic_auth_enabled {
        return Caller::Refused(errors(
            403,
            "Basic authentication is disabled for this instance.",
            "com.atlassian.bitbucket.auth.BasicAuthenticationDisabledException",
            &[],
        ));
    }
    let captcha_after = site.captcha_after;
    let Some(index) = site
        .users
        .iter()
        .position(|u| !u.bot && u.username.eq_ignore_ascii_case(&login))
    else {
        return Caller::Refused(failed());
    };
    let user = &mut site.users[index];
    if user.failed_logins >= captcha_after {
        return Caller::Refused(errors(
            401,
            "CAPTCHA required. Your Bitbucket account has been locked. To unlock it, log in via the website.",
            CAPTCHA_REQUIRED,
            &[],
        ));
    }
    let personal = user
        .pats
        .iter_mut()
        .find(|p| p.secret == secret && p.works(now));
    let accepted = match personal {
        Some(pat) => {
            pat.last_accessed_at = Some(now);
            true
        }
        None => user.password.as_deref() == Some(secret.as_str()),
    };
    if accepted && user.active {
        user.failed_logins = 0;
        Caller::User(index)
    } else {
        user.failed_logins += 1;
        Caller::Refused(failed())
    }
}

/// Whether a path under the site is one a token may be sent to: `/rest` and `/scm`.
pub fn within_rest_or_scm(rest: &str) -> bool {
    rest.starts_with("rest/") || rest.starts_with("scm/")
}

/// A request to a Bitbucket site (after whatever stands in front of it).
pub(crate) fn answer(
    site: &mut Site,
    method: &str,
    rest: &str,
    query: Option<&str>,
    authorization: Option<&str>,
    now: DateTime<Utc>,
) -> Response {
    let caller = authenticate(site, authorization, now);
    if !within_rest_or_scm(rest) {
        // What the whoami servlet and every other page does with a token since 8.9.22.
        return match (authorization, caller) {
            (Some(a), _) if a.starts_with("Bearer ") => answer::reply(
                302,
                "text/html;charset=UTF-8",
                &[("Location", "/login".to_owned())],
                String::new(),
            ),
            (_, Caller::Refused(response)) => response,
            _ => answer::reply(401, "text/html;charset=UTF-8", &[], String::new()),
        };
    }
    let index = match caller {
        Caller::User(index) => index,
        // An instance that serves anonymous callers answers them, naming nobody.
        Caller::Refused(_) | Caller::Anonymous if site.anonymous_fallback => {
            let body = serde_json::json!({"size": 0, "limit": 1, "isLastPage": true, "values": [], "start": 0});
            return answer::reply(200, JSON, &[], body.to_string());
        }
        Caller::Refused(response) => return response,
        Caller::Anonymous => {
            return errors(
                401,
                "The request is unauthenticated.",
                "com.atlassian.bitbucket.auth.AuthenticationRequiredException",
                &[],
            )
        }
    };
    let user = site.users[index].clone();
    let headers = user_headers(&user);
    let decoded: Vec<String> = rest
        .split('/')
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let paths: Vec<&str> = decoded.iter().map(String::as_str).collect();
    match (method, paths.as_slice()) {
        ("GET", ["rest", "api", "latest" | "1.0", "profile", "recent", "repos"]) => {
            if user.forbidden {
                return not_permitted(&headers);
            }
            let body = serde_json::json!({"size": 0, "limit": 1, "isLastPage": true, "values": [], "start": 0});
            answer::reply(200, JSON, &headers, body.to_string())
        }
        ("GET", ["rest", "api", "latest" | "1.0", "users", slug]) => {
            match site
                .users
                .iter()
                .find(|u| !u.bot && slug_of(&u.username) == *slug)
            {
                Some(found) => answer::reply(200, JSON, &headers, user_json(found).to_string()),
                None => errors(
                    404,
                    &format!("User {slug} does not exist."),
                    "com.atlassian.bitbucket.user.NoSuchUserException",
                    &headers,
                ),
            }
        }
        ("GET", ["rest", "access-tokens", "1.0", "users", slug]) => {
            token_page(site, &user, slug, query, &headers)
        }
        _ => answer::not_found(),
    }
}

/// 401 for a caller without permission, with the caller named.
fn not_permitted(headers: &[(&str, String)]) -> Response {
    errors(
        401,
        "You are not permitted to access this resource",
        AUTHORISATION,
        headers,
    )
}

fn user_json(user: &User) -> serde_json::Value {
    serde_json::json!({
        "name": user.username,
        "emailAddress": user.email,
        "active": user.active,
        "displayName": user.display_name,
        "id": 101,
        "slug": slug_of(&user.username),
        "type": "NORMAL",
    })
}

/// One page of a user's personal HTTP access tokens: the user's own list only, and only when
/// the site lets a token read it.
fn token_page(
    site: &Site,
    caller: &User,
    slug: &str,
    query: Option<&str>,
    headers: &[(&str, String)],
) -> Response {
    let Some(owner) = site
        .users
        .iter()
        .find(|u| !u.bot && slug_of(&u.username) == *slug)
    else {
        return errors(
            404,
            &format!("User {slug} does not exist."),
            "com.atlassian.bitbucket.user.NoSuchUserException",
            headers,
        );
    };
    if !site.tokens_readable || !owner.username.eq_ignore_ascii_case(&caller.username) {
        return not_permitted(headers);
    }
    let param = |name: &str| {
        query
            .unwrap_or_default()
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let start = param("start").unwrap_or(0);
    let limit = param("limit").unwrap_or(25).clamp(1, site.page_limit);
    let live: Vec<&crate::model::Pat> = owner.pats.iter().filter(|p| !p.revoked).collect();
    let values: Vec<serde_json::Value> = live
        .iter()
        .skip(start)
        .take(limit)
        .map(|pat| {
            let mut value = serde_json::json!({
                "id": format!("{:012}", pat.id),
                "createdDate": pat.created_at.timestamp_millis(),
                "name": pat.name,
                "permissions": ["REPO_READ", "PROJECT_READ"],
                "user": user_json(owner),
            });
            if let Some(expiry) = pat.expiring_at {
                value["expiryDays"] = (expiry - pat.created_at).num_days().into();
            }
            if let Some(used) = pat.last_accessed_at {
                value["lastAuthenticated"] = used.timestamp_millis().into();
            }
            value
        })
        .collect();
    let last = start + values.len() >= live.len();
    let mut page = serde_json::json!({
        "size": values.len(),
        "limit": limit,
        "isLastPage": last,
        "start": start,
        "values": values,
    });
    if !last {
        page["nextPageStart"] = (start + limit).into();
    }
    answer::reply(200, JSON, headers, page.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_replace_reserved_characters() {
        assert_eq!(slug_of("John.Doe@Example.com"), "john.doe_example.com");
        assert_eq!(slug_of("a:b/c?d#e[f]"), "a_b_c_d_e_f_");
    }
}
