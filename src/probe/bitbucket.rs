//! How Bitbucket Data Center's answer to the identity probe reads (`docs/jira-answers.md` §15).
//!
//! Bitbucket has no "myself": the probe is `GET rest/api/latest/profile/recent/repos?limit=1`,
//! which only an authenticated caller may make, and the caller is the `X-AUSERNAME` response
//! header (URL-encoded), not the body. A 401 does not always mean a bad credential: the
//! `exceptionName` of the `errors` body tells a rejected credential from a valid one without
//! permission, and the CAPTCHA lock from both, whatever the status.

use serde::Deserialize;

use super::answer::{Answer, Expectation};
use super::identity::Identity;
use super::verdict::{Reason, State, Verdict};

/// The exception of an authenticated caller without permission.
pub(super) const AUTHORISATION: &str = "com.atlassian.bitbucket.AuthorisationException";

#[derive(Deserialize)]
struct Errors {
    errors: Vec<Error>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Error {
    #[serde(default)]
    exception_name: Option<String>,
}

/// The `exceptionName`s of an `errors` body (none when the body is not one).
fn exceptions(body: &[u8]) -> Vec<String> {
    serde_json::from_slice::<Errors>(body)
        .map(|e| {
            e.errors
                .into_iter()
                .filter_map(|e| e.exception_name)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a 200 body is the paged object Bitbucket's REST API answers (`values`, `size`).
fn is_page(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.contains_key("values")))
        .unwrap_or(false)
}

/// The `exceptionName`s an answer's `errors` body holds, for a 4xx.
pub(super) fn exceptions_of(answer: &Answer) -> Vec<String> {
    if answer.status.is_client_error() {
        exceptions(&answer.body)
    } else {
        Vec::new()
    }
}

/// Classifies Bitbucket's answer to the identity probe.
pub(super) fn classify(answer: &Answer, expect: &Expectation<'_>) -> Verdict {
    let code = answer.status.as_u16();
    let seen = |extra: &str| super::answer::seen(code, extra);
    let rejected_state = expect.rejected_state();
    let exceptions = exceptions_of(answer);
    let exception = |suffix: &str| exceptions.iter().find(|e| e.ends_with(suffix));
    let user = answer.named_caller();

    if let Some(name) = exception("CaptchaRequiredAuthenticationException") {
        return Verdict::new(State::Locked, Reason::CaptchaRequired, seen(short(name)));
    }
    if code == 429 || (code == 503 && answer.headers.contains_key("retry-after")) {
        return Verdict::new(State::Unknown, Reason::RateLimited, seen(""));
    }
    if exceptions.iter().any(|e| e == AUTHORISATION) {
        // Without a caller, Bitbucket did not say that it authenticated anyone: the
        // conservative reading is a credential it did not accept (§15).
        return match user {
            Some(_) => Verdict {
                identity: answer.caller_identity(),
                ..Verdict::new(
                    State::Forbidden,
                    Reason::Forbidden,
                    seen("AuthorisationException"),
                )
            },
            None => Verdict::new(
                rejected_state,
                Reason::Unauthorized,
                seen("AuthorisationException without X-AUSERNAME"),
            ),
        };
    }
    if let Some(name) = exception("AuthenticationException") {
        return Verdict::new(rejected_state, Reason::Unauthorized, seen(short(name)));
    }
    if code == 401 {
        return Verdict::new(rejected_state, Reason::Unauthorized, seen(""));
    }
    // A 403 that names the caller is a valid credential without permission; one that names
    // nobody may come from something in front of Bitbucket (a proxy, an SSO app): no verdict.
    if code == 403 {
        return match user {
            Some(_) => Verdict {
                identity: answer.caller_identity(),
                ..Verdict::new(State::Forbidden, Reason::Forbidden, seen(""))
            },
            None => Verdict::new(
                State::Unknown,
                Reason::UnexpectedResponse,
                seen("a 403 that names nobody (no X-AUSERNAME)"),
            ),
        };
    }
    if answer.status.is_redirection() {
        return Verdict::new(State::Unknown, Reason::Redirected, seen(""));
    }
    if answer.status.is_server_error() {
        return Verdict::new(State::Unknown, Reason::ServerError, seen(""));
    }
    if code != 200 || answer.truncated || !is_page(&answer.body) {
        return Verdict::new(
            State::Unknown,
            Reason::UnexpectedResponse,
            seen("not Bitbucket's answer to profile/recent/repos"),
        );
    }
    let Some(name) = user else {
        return Verdict::new(
            State::Invalid,
            Reason::AnonymousFallback,
            seen("no X-AUSERNAME: the credential was not accepted"),
        );
    };
    let identity = std::sync::Arc::new(Identity {
        name: Some(name.clone()),
        ..Identity::default()
    });
    let (state, reason, detail) = match expect.expect_account {
        Some(expected) if !expected.eq_ignore_ascii_case(&name) => (
            State::Invalid,
            Reason::WrongAccount,
            format!("credential belongs to {name:?}, expected {expected:?}"),
        ),
        _ => (State::Valid, Reason::Ok, seen("")),
    };
    Verdict {
        state,
        reason,
        identity: Some(identity),
        detail: Some(detail),
    }
}

/// The exception's class name without its package.
fn short(exception: &str) -> &str {
    exception.rsplit('.').next().unwrap_or(exception)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::{Kind, Product};
    use crate::probe::answer::testing::{answer, now, Row};

    fn run(code: u16, headers: &[(&str, &str)], body: &str, expect: Expectation<'_>) -> Verdict {
        classify(&answer(code, headers, body), &expect)
    }

    fn errors(exception: &str) -> String {
        format!(r#"{{"errors":[{{"context":null,"message":"m","exceptionName":"{exception}"}}]}}"#)
    }

    /// The answers of docs/jira-answers.md §15, row by row.
    #[test]
    fn bitbucket_answers() {
        let dc = Expectation {
            product: Product::Bitbucket,
            kind: Kind::Server,
            expect_account: None,
            expires_at: None,
            blocked_by_admin: false,
            now: now(),
        };
        let expired = Expectation {
            expires_at: Some(now() - chrono::Duration::days(1)),
            ..dc
        };
        let expect_other = Expectation {
            expect_account: Some("someone-else"),
            ..dc
        };
        let expect_encoded = Expectation {
            expect_account: Some("John.Doe@example.com"),
            ..dc
        };
        let page = r#"{"size":0,"limit":1,"isLastPage":true,"values":[],"start":0}"#;
        let user = [("X-AUSERNAME", "svc-ci")];
        let incorrect =
            errors("com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException");
        let other_auth =
            errors("com.atlassian.bitbucket.auth.ExpiredAccessTokenAuthenticationException");
        let captcha = errors("com.atlassian.bitbucket.auth.CaptchaRequiredAuthenticationException");
        let not_permitted = errors("com.atlassian.bitbucket.AuthorisationException");
        #[rustfmt::skip]
        let rows: Vec<Row<'_>> = vec![
            (200, &user, page, dc, State::Valid, Reason::Ok),
            (200, &[("X-AUSERNAME", "john.doe%40example.com")], page, expect_encoded, State::Valid, Reason::Ok),
            (200, &user, page, expect_other, State::Invalid, Reason::WrongAccount),
            (200, &[], page, dc, State::Invalid, Reason::AnonymousFallback),
            (200, &[("X-AUSERNAME", "anonymous")], page, dc, State::Invalid, Reason::AnonymousFallback),
            (200, &user, "<html>login</html>", dc, State::Unknown, Reason::UnexpectedResponse),
            (401, &[], &incorrect, dc, State::Invalid, Reason::Unauthorized),
            (401, &[], &incorrect, expired, State::Expired, Reason::Unauthorized),
            (401, &[], &other_auth, dc, State::Invalid, Reason::Unauthorized),
            (401, &[], "", dc, State::Invalid, Reason::Unauthorized),
            // A 401 that is not a rejection: a valid credential without permission.
            (401, &user, &not_permitted, dc, State::Forbidden, Reason::Forbidden),
            // ... unless Bitbucket names nobody: then it did not accept the credential.
            (401, &[], &not_permitted, dc, State::Invalid, Reason::Unauthorized),
            (403, &user, &not_permitted, dc, State::Forbidden, Reason::Forbidden),
            // A 403 that names nobody may be a proxy's or an SSO app's: no verdict.
            (403, &[], "<html>Forbidden</html>", dc, State::Unknown, Reason::UnexpectedResponse),
            (401, &[], &captcha, dc, State::Locked, Reason::CaptchaRequired),
            (403, &[], &captcha, dc, State::Locked, Reason::CaptchaRequired),
            (429, &[("Retry-After", "30")], "", dc, State::Unknown, Reason::RateLimited),
            (302, &[("Location", "/login")], "", dc, State::Unknown, Reason::Redirected),
            (500, &[], "", dc, State::Unknown, Reason::ServerError),
            (404, &[], "", dc, State::Unknown, Reason::UnexpectedResponse),
        ];
        for (i, (code, headers, body, expect, state, reason)) in rows.iter().enumerate() {
            let verdict = run(*code, headers, body, *expect);
            assert_eq!(
                (verdict.state, verdict.reason),
                (*state, *reason),
                "row {i}: {code} {headers:?} {body}"
            );
        }
        let valid = run(200, &[("X-AUSERNAME", "john.doe%40example.com")], page, dc);
        let identity = valid.identity.expect("the caller");
        assert_eq!(
            identity.name.as_deref(),
            Some("john.doe@example.com"),
            "URL-decoded"
        );
    }
}
