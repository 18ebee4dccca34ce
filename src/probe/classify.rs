//! Turns what Jira or Confluence answered (an [`Answer`]) into a [`Verdict`]: a [`State`] and a
//! [`Reason`], as the table of `docs/jira-answers.md` §7 says (and §14, where Confluence
//! differs), row by row, in its order of precedence; Bitbucket's answers read otherwise
//! ([`super::bitbucket`]).
//!
//! The verdict is a pure function of the status, the headers, the body and what the
//! connection expects (a connection's [`LastMyself`] only spares reading the same body
//! twice), so it is tested row by row without a network, and again end to end against the
//! simulator in `tests/classification.rs`.

pub use super::answer::{Answer, Expectation, Facts};
pub use super::identity::{Identity, LastMyself};
use super::verdict::{Reason, State, Verdict};
use crate::config::Product;
use http::HeaderMap;

/// The first value of header `name`, if it is text (visible ASCII, as
/// `HeaderValue::to_str` reads it).
fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Classifies one answer; see the module documentation.
pub fn classify(answer: &Answer, expect: &Expectation<'_>) -> Verdict {
    classify_after(answer, expect, &mut LastMyself::default())
}

/// As [`classify`], with what the connection's last `myself` body said, which a body with the
/// same bytes reuses (and a new body replaces).
pub fn classify_after(answer: &Answer, expect: &Expectation<'_>, last: &mut LastMyself) -> Verdict {
    if expect.product == Product::Bitbucket {
        // No user object: the caller is a header, the failures an `errors` body.
        return super::bitbucket::classify(answer, expect);
    }
    let status = answer.status;
    let code = status.as_u16();
    // The header may repeat, and each value may be a comma-separated list.
    let seraph: Vec<&str> = answer
        .headers
        .get_all("x-seraph-loginreason")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let has_seraph = |value: &str| seraph.iter().any(|v| v.eq_ignore_ascii_case(value));
    let denied_reason = text(&answer.headers, "x-authentication-denied-reason").unwrap_or("");
    // Only 401 and 403 answers are told apart by their text: spare the others the copy.
    let body = if code == 401 || code == 403 {
        String::from_utf8_lossy(&answer.body).to_lowercase()
    } else {
        String::new()
    };
    let seen = |extra: &str| super::answer::seen(code, extra);
    let rejected_state = expect.rejected_state();

    let captcha = code == 403 && denied_reason.trim_start().starts_with("CAPTCHA_CHALLENGE");
    if captcha || has_seraph("AUTHENTICATION_DENIED") {
        let what = if captcha {
            "X-Authentication-Denied-Reason: CAPTCHA_CHALLENGE"
        } else {
            "X-Seraph-LoginReason: AUTHENTICATION_DENIED"
        };
        return Verdict::new(State::Locked, Reason::CaptchaRequired, seen(what));
    }
    if code == 429 || (code == 503 && answer.headers.contains_key("retry-after")) {
        return Verdict::new(State::Unknown, Reason::RateLimited, seen(""));
    }
    if code == 403 && body.contains("basic authentication has been disabled") {
        return Verdict::new(State::Forbidden, Reason::BasicAuthDisabled, seen(""));
    }
    if code == 401 && body.contains("basic authentication with passwords is deprecated") {
        return Verdict::new(State::Invalid, Reason::PasswordAuthDeprecated, seen(""));
    }
    if code == 403 && body.contains("failed to parse connect session auth token") {
        return Verdict::new(State::Invalid, Reason::WrongAuthScheme, seen(""));
    }
    if code == 401 && body.contains("scope does not match") {
        return Verdict::new(State::Invalid, Reason::ScopeMismatch, seen(""));
    }
    if code == 401 && expect.blocked_by_admin {
        return Verdict::new(
            State::Invalid,
            Reason::BlockedByAdmin,
            seen("the organization's token list says an admin blocked it"),
        );
    }
    if has_seraph("AUTHENTICATED_FAILED") {
        return Verdict::new(
            rejected_state,
            Reason::Unauthorized,
            seen("X-Seraph-LoginReason: AUTHENTICATED_FAILED"),
        );
    }
    if code == 401 {
        return Verdict::new(rejected_state, Reason::Unauthorized, seen(""));
    }
    let anonymous = text(&answer.headers, "x-ausername")
        .is_some_and(|user| user.trim().eq_ignore_ascii_case("anonymous"));
    // Jira's row says invalid, without the expiry upgrade of the 401 row; on Confluence the
    // anonymous user is how a PAT is rejected, expired ones included (§13), so it upgrades.
    let anonymous_state = match expect.product {
        Product::Confluence => rejected_state,
        Product::Jira | Product::Bitbucket => State::Invalid,
    };
    if status.is_success() && anonymous {
        return Verdict::new(
            anonymous_state,
            Reason::AnonymousFallback,
            seen("X-AUSERNAME: anonymous"),
        );
    }
    // The sheet is silent on AUTHORISATION_FAILED; Seraph means "authenticated but not
    // authorised" by it, and a Seraph failure beats the status, so it reads as forbidden.
    // The caller the header names goes with the verdict: a refusal that names who was
    // refused is an accepted login (the budget reads it so); one that names nobody may come
    // from something in front of the product, and neither counts nor forgives.
    if code == 403 || has_seraph("AUTHORISATION_FAILED") {
        return Verdict {
            identity: answer.caller_identity(),
            ..Verdict::new(State::Forbidden, Reason::Forbidden, seen(""))
        };
    }
    if status.is_redirection() {
        let location = text(&answer.headers, "location")
            .map(|l| format!("Location: {}", l.chars().take(200).collect::<String>()))
            .unwrap_or_default();
        return Verdict::new(State::Unknown, Reason::Redirected, seen(&location));
    }
    if status.is_server_error() {
        return Verdict::new(State::Unknown, Reason::ServerError, seen(""));
    }
    if code != 200 {
        return Verdict::new(
            State::Unknown,
            Reason::UnexpectedResponse,
            seen("expected 200 from the identity probe"),
        );
    }
    // A body that broke off is not read: part of an object is not the account.
    let identity = if answer.truncated {
        None
    } else {
        last.read(&answer.body)
    };
    let Some(identity) = identity else {
        let what = if answer.truncated {
            "body broke off before the end"
        } else {
            "body is not a user object"
        };
        return Verdict::new(State::Unknown, Reason::UnexpectedResponse, seen(what));
    };
    if let Some(verdict) = not_an_account(&identity, answer, expect.product, anonymous_state, &seen)
    {
        return verdict;
    }
    let (state, reason, detail) = if identity.active == Some(false) {
        (
            State::Invalid,
            Reason::AccountInactive,
            "myself reports active: false".to_owned(),
        )
    } else if let Some(expected) = expect
        .expect_account
        .filter(|e| identity.can_tell(e, expect.kind) && !identity.is(e, expect.kind))
    {
        let actual = identity
            .account(expect.kind)
            .unwrap_or("an unnamed account");
        (
            State::Invalid,
            Reason::WrongAccount,
            format!("credential belongs to {actual:?}, expected {expected:?}"),
        )
    } else {
        (State::Valid, Reason::Ok, seen(""))
    };
    Verdict {
        state,
        reason,
        identity: Some(identity),
        detail: Some(detail),
    }
}

/// The verdict on a 200 whose user object is not an account: the anonymous user (a
/// credential Confluence ignored), an object that names no one, or (Confluence) a user type
/// other than `known` or an `X-AUSERNAME` that names someone else than the body.
fn not_an_account(
    identity: &Identity,
    answer: &Answer,
    product: Product,
    anonymous_state: State,
    seen: &dyn Fn(&str) -> String,
) -> Option<Verdict> {
    if identity.is_anonymous() {
        return Some(Verdict::new(
            anonymous_state,
            Reason::AnonymousFallback,
            seen("the user object is the anonymous user"),
        ));
    }
    if !identity.names_someone() {
        return Some(Verdict::new(
            State::Unknown,
            Reason::UnexpectedResponse,
            seen("the user object names no account"),
        ));
    }
    if product != Product::Confluence {
        return None;
    }
    if !identity.is_known() {
        return Some(Verdict::new(
            State::Unknown,
            Reason::UnexpectedResponse,
            seen("the user object's type is not \"known\""),
        ));
    }
    let header = answer.named_caller();
    let named = identity.name.as_deref();
    match (header, named) {
        (Some(header), Some(named)) if !header.eq_ignore_ascii_case(named) => Some(Verdict::new(
            State::Unknown,
            Reason::UnexpectedResponse,
            seen(&format!(
                "X-AUSERNAME names {:?}, the user object {named:?}",
                header.chars().take(64).collect::<String>()
            )),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::Kind;
    use crate::probe::answer::testing::{answer, now, Row};
    use http::{HeaderMap, StatusCode};
    use std::sync::Arc;

    fn run(
        code: u16,
        headers: &[(&str, &str)],
        body: &str,
        expect: Expectation<'_>,
    ) -> (State, Reason) {
        let verdict = classify(&answer(code, headers, body), &expect);
        (verdict.state, verdict.reason)
    }

    const DC_USER: &str = r#"{"self":"https://jira.example.com/rest/api/2/user?username=svc-jira","key":"JIRAUSER10001","name":"svc-jira","emailAddress":"svc@example.com","displayName":"Service Jira","active":true,"deleted":false}"#;
    const CLOUD_USER: &str = r#"{"accountId":"5b10a2844c20165700ede21g","accountType":"atlassian","emailAddress":"mia@example.com","displayName":"Mia Krystof","active":true}"#;

    /// One row per line of the table in docs/jira-answers.md §7 (and a few precedence checks).
    #[test]
    fn the_classification_table() {
        let server = Expectation {
            product: Product::Jira,
            kind: Kind::Server,
            expect_account: None,
            expires_at: None,
            blocked_by_admin: false,
            now: now(),
        };
        let cloud = Expectation {
            kind: Kind::Cloud,
            ..server
        };
        let expired = Expectation {
            expires_at: Some(now() - chrono::Duration::days(1)),
            ..server
        };
        let expect_svc = Expectation {
            expect_account: Some("SVC-JIRA"),
            ..server
        };
        let expect_other = Expectation {
            expect_account: Some("someone-else"),
            ..server
        };
        // The organization's list says an admin blocked the token.
        let blocked = Expectation {
            blocked_by_admin: true,
            ..cloud
        };
        let captcha = [
            ("X-Seraph-LoginReason", "AUTHENTICATION_DENIED"),
            (
                "X-Authentication-Denied-Reason",
                "CAPTCHA_CHALLENGE; login-url=https://jira.example.com/login.jsp",
            ),
        ];
        let failed = [("X-Seraph-LoginReason", "AUTHENTICATED_FAILED")];
        let inactive = DC_USER.replace("\"active\":true", "\"active\":false");
        type Row<'a> = (
            u16,
            Vec<(&'a str, &'a str)>,
            &'a str,
            Expectation<'a>,
            State,
            Reason,
        );
        let rows: Vec<Row<'_>> = vec![
            (403, captcha.to_vec(), "Basic Authentication Failure - Reason : AUTHENTICATION_DENIED", server, State::Locked, Reason::CaptchaRequired),
            (403, vec![("X-Authentication-Denied-Reason", "CAPTCHA_CHALLENGE; login-url=x")], "", server, State::Locked, Reason::CaptchaRequired),
            (200, vec![("X-Seraph-LoginReason", "OK, AUTHENTICATION_DENIED")], DC_USER, server, State::Locked, Reason::CaptchaRequired),
            (429, vec![("Retry-After", "30")], "", server, State::Unknown, Reason::RateLimited),
            (503, vec![("Retry-After", "30")], "", server, State::Unknown, Reason::RateLimited),
            (403, vec![], r#"{"message":"Basic Authentication has been disabled on this instance."}"#, server, State::Forbidden, Reason::BasicAuthDisabled),
            (401, vec![("Content-Type", "text/plain")], "Basic authentication with passwords is deprecated.  For more information, see: https://developer.atlassian.com/", cloud, State::Invalid, Reason::PasswordAuthDeprecated),
            (403, vec![], r#"{"error": "Failed to parse Connect Session Auth Token"}"#, cloud, State::Invalid, Reason::WrongAuthScheme),
            (401, vec![], r#"{"code":401,"message":"Unauthorized; scope does not match"}"#, cloud, State::Invalid, Reason::ScopeMismatch),
            (401, failed.to_vec(), "<html>login</html>", server, State::Invalid, Reason::Unauthorized),
            (401, vec![], r#"{"message":"Client must be authenticated to access this resource.","status-code":401}"#, server, State::Invalid, Reason::Unauthorized),
            (401, vec![], r#"{"errorMessages":["You are not authenticated. Authentication required to perform this operation."],"errors":{}}"#, expired, State::Expired, Reason::Unauthorized),
            (200, failed.to_vec(), CLOUD_USER, cloud, State::Invalid, Reason::Unauthorized),
            (200, vec![("X-AUSERNAME", "anonymous")], "{}", server, State::Invalid, Reason::AnonymousFallback),
            (200, vec![("X-AUSERNAME", "anonymous")], "{}", expired, State::Invalid, Reason::AnonymousFallback),
            (403, vec![], r#"{"errorMessages":["No permission"],"errors":{}}"#, server, State::Forbidden, Reason::Forbidden),
            (302, vec![("Location", "https://idp.example.com/saml")], "", server, State::Unknown, Reason::Redirected),
            (500, vec![], "oops", server, State::Unknown, Reason::ServerError),
            (503, vec![], "maintenance", server, State::Unknown, Reason::ServerError),
            (200, vec![], "<html><title>Log in - Jira</title></html>", server, State::Unknown, Reason::UnexpectedResponse),
            (200, vec![], r#"{"self":"x"}"#, server, State::Unknown, Reason::UnexpectedResponse),
            (404, vec![], "not found", server, State::Unknown, Reason::UnexpectedResponse),
            (200, vec![], &inactive, server, State::Invalid, Reason::AccountInactive),
            (200, vec![], DC_USER, expect_other, State::Invalid, Reason::WrongAccount),
            (200, vec![], DC_USER, expect_svc, State::Valid, Reason::Ok),
            (200, vec![("X-Seraph-LoginReason", "OK"), ("X-AUSERNAME", "svc-jira")], DC_USER, server, State::Valid, Reason::Ok),
            (200, vec![], CLOUD_USER, cloud, State::Valid, Reason::Ok),
            (401, vec![], "", blocked, State::Invalid, Reason::BlockedByAdmin),
            (401, failed.to_vec(), "", blocked, State::Invalid, Reason::BlockedByAdmin),
            (200, vec![], CLOUD_USER, blocked, State::Valid, Reason::Ok),
        ];
        for (i, (code, headers, body, expect, state, reason)) in rows.iter().enumerate() {
            assert_eq!(
                run(*code, headers, body, *expect),
                (*state, *reason),
                "row {i}: {code} {headers:?} {body}"
            );
        }
    }

    /// The answers of docs/jira-answers.md §13: Confluence's user object and its failures.
    #[test]
    fn confluence_answers() {
        let dc = Expectation {
            product: Product::Confluence,
            kind: Kind::Server,
            expect_account: None,
            expires_at: None,
            blocked_by_admin: false,
            now: now(),
        };
        let cloud = Expectation {
            kind: Kind::Cloud,
            ..dc
        };
        let expect_svc = Expectation {
            expect_account: Some("SVC-WIKI"),
            ..dc
        };
        let expired = Expectation {
            expires_at: Some(now() - chrono::Duration::days(1)),
            ..dc
        };
        let known = r#"{"type":"known","username":"svc-wiki","userKey":"ff8080817","displayName":"Service Wiki"}"#;
        let cloud_known = r#"{"type":"known","accountId":"5b10ac8d82e05b22cc7d4ef5","accountType":"atlassian","email":"mia@example.com","publicName":"Mia","displayName":"Mia"}"#;
        let anonymous = r#"{"type":"anonymous","displayName":"Anonymous","_links":{}}"#;
        let ok = [("X-AUSERNAME", "svc-wiki"), ("X-Seraph-LoginReason", "OK")];
        let denied = [
            ("X-Seraph-LoginReason", "AUTHENTICATION_DENIED"),
            (
                "WWW-Authenticate",
                "OAuth realm=\"https://wiki.example.com\"",
            ),
        ];
        let failed = [("X-Seraph-LoginReason", "AUTHENTICATED_FAILED")];
        let not_permitted =
            r#"{"message":"Current user not permitted to use Confluence","statusCode":403}"#;
        #[rustfmt::skip]
        let rows: Vec<Row<'_>> = vec![
            (200, &ok, known, dc, State::Valid, Reason::Ok),
            (200, &ok, known, expect_svc, State::Valid, Reason::Ok),
            (200, &[], known, dc, State::Valid, Reason::Ok),
            (200, &[], anonymous, dc, State::Invalid, Reason::AnonymousFallback),
            (200, &[], anonymous, expired, State::Expired, Reason::AnonymousFallback),
            (200, &[("X-AUSERNAME", "anonymous")], anonymous, dc, State::Invalid, Reason::AnonymousFallback),
            (200, &[("X-AUSERNAME", "someone-else")], known, dc, State::Unknown, Reason::UnexpectedResponse),
            (200, &[("X-AUSERNAME", "svc%2Dwiki")], known, dc, State::Valid, Reason::Ok),
            (200, &[], r#"{"username":"svc-wiki"}"#, dc, State::Unknown, Reason::UnexpectedResponse),
            (200, &[], r#"{"type":"known"}"#, dc, State::Unknown, Reason::UnexpectedResponse),
            (401, &failed, "Basic Authentication Failure - Reason : AUTHENTICATED_FAILED", dc, State::Invalid, Reason::Unauthorized),
            (401, &failed, "Basic Authentication Failure - Reason : AUTHENTICATED_FAILED", expired, State::Expired, Reason::Unauthorized),
            (401, &denied, "Basic Authentication Failure - Reason : AUTHENTICATION_DENIED", dc, State::Locked, Reason::CaptchaRequired),
            (429, &[("Retry-After", "9223372036854775807")], "", dc, State::Unknown, Reason::RateLimited),
            (200, &[], cloud_known, cloud, State::Valid, Reason::Ok),
            (200, &[], anonymous, cloud, State::Invalid, Reason::AnonymousFallback),
            (403, &[], not_permitted, cloud, State::Forbidden, Reason::Forbidden),
            (401, &[], "", cloud, State::Invalid, Reason::Unauthorized),
        ];
        for (i, (code, headers, body, expect, state, reason)) in rows.iter().enumerate() {
            assert_eq!(
                run(*code, headers, body, *expect),
                (*state, *reason),
                "row {i}: {code} {headers:?} {body}"
            );
        }
    }

    #[test]
    fn cloud_accounts_match_by_email_or_id() {
        let identity: Identity = serde_json::from_str(CLOUD_USER).expect("json");
        assert_eq!(identity.account(Kind::Cloud), Some("mia@example.com"));
        assert!(identity.is("MIA@example.com", Kind::Cloud));
        assert!(identity.is("5b10a2844c20165700ede21g", Kind::Cloud));
        assert!(!identity.is("5B10A2844C20165700EDE21G", Kind::Cloud));
    }

    #[test]
    fn a_hidden_cloud_email_is_not_a_wrong_account() {
        let hidden =
            r#"{"accountId":"5b10a2844c20165700ede21g","displayName":"Mia","active":true}"#;
        let expect = Expectation {
            product: Product::Jira,
            kind: Kind::Cloud,
            expect_account: Some("mia@example.com"),
            expires_at: None,
            blocked_by_admin: false,
            now: now(),
        };
        assert_eq!(run(200, &[], hidden, expect), (State::Valid, Reason::Ok));
        let other_id = Expectation {
            expect_account: Some("someone-else-id"),
            ..expect
        };
        assert_eq!(
            run(200, &[], hidden, other_id),
            (State::Invalid, Reason::WrongAccount)
        );
    }

    #[test]
    fn repeated_seraph_headers_are_all_read() {
        let expect = Expectation {
            product: Product::Jira,
            kind: Kind::Server,
            expect_account: None,
            expires_at: None,
            blocked_by_admin: false,
            now: now(),
        };
        let headers = [
            ("X-Seraph-LoginReason", "OK"),
            ("X-Seraph-LoginReason", "AUTHENTICATED_FAILED"),
        ];
        assert_eq!(
            run(200, &headers, DC_USER, expect),
            (State::Invalid, Reason::Unauthorized)
        );
    }

    #[test]
    fn truncated_200_is_unexpected() {
        let answer = Answer {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: DC_USER.as_bytes()[..20].to_vec(),
            truncated: true,
        };
        let expect = Expectation {
            product: Product::Jira,
            kind: Kind::Server,
            expect_account: None,
            expires_at: None,
            blocked_by_admin: false,
            now: now(),
        };
        assert_eq!(
            classify(&answer, &expect).reason,
            Reason::UnexpectedResponse
        );
    }

    #[test]
    fn an_unchanged_body_is_not_read_again_and_a_changed_one_is() {
        fn answer(body: &str, truncated: bool) -> Answer {
            Answer {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                body: body.as_bytes().to_vec(),
                truncated,
            }
        }
        let expect = Expectation {
            product: Product::Jira,
            kind: Kind::Server,
            expect_account: Some("svc-jira"),
            expires_at: None,
            blocked_by_admin: false,
            now: now(),
        };
        let mut last = LastMyself::default();
        let first = classify_after(&answer(DC_USER, false), &expect, &mut last);
        let again = classify_after(&answer(DC_USER, false), &expect, &mut last);
        assert_eq!(again.reason, Reason::Ok);
        let (first, again) = (first.identity.expect("read"), again.identity.expect("kept"));
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same bytes are not read again"
        );

        // Any change to the bytes is read: the account went inactive, then it is another one.
        let inactive = DC_USER.replace("\"active\":true", "\"active\":false");
        let verdict = classify_after(&answer(&inactive, false), &expect, &mut last);
        assert_eq!(verdict.reason, Reason::AccountInactive);
        let other = DC_USER.replace("svc-jira", "svc-other");
        let verdict = classify_after(&answer(&other, false), &expect, &mut last);
        assert_eq!(verdict.reason, Reason::WrongAccount);
        assert_eq!(
            verdict.identity.and_then(|i| i.name.clone()).as_deref(),
            Some("svc-other")
        );

        // A body that broke off is not taken for the one kept, even with the same bytes.
        let verdict = classify_after(&answer(&other, true), &expect, &mut last);
        assert_eq!(verdict.reason, Reason::UnexpectedResponse);
        // Nor is a body that names no one, after one that did.
        let verdict = classify_after(&answer("{}", false), &expect, &mut last);
        assert_eq!(verdict.reason, Reason::UnexpectedResponse);
        let verdict = classify_after(&answer(DC_USER, false), &expect, &mut last);
        assert_eq!(verdict.reason, Reason::Ok);
    }
}
