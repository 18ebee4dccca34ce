//! What a probe's answer is read against: the [`Answer`] as the client received it, what the
//! connection expects of it ([`Expectation`]) and what is known of the credential before
//! ([`Facts`]). Every product's reading ([`super::classify`], [`super::bitbucket`]) takes these.

use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};

use super::verdict::State;
use crate::config::{Kind, Product};

/// An HTTP answer as the client received it ([`super::client::get`]), the body read up to
/// the probe's cap.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, up to the probe's cap.
    pub body: Vec<u8>,
    /// Whether the body was cut at the cap, or broke off before its end.
    pub truncated: bool,
}

/// What the connection expects of the answer.
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    /// The product that answered (decides how its user object reads).
    pub product: Product,
    /// Server/Data Center or Cloud (decides which account field identifies the user).
    pub kind: Kind,
    /// The account the credential must belong to.
    pub expect_account: Option<&'a str>,
    /// The credential's known expiry, which turns a rejection into `expired`.
    pub expires_at: Option<DateTime<Utc>>,
    /// The organization's list says an admin blocked the token, which turns a 401 into
    /// `blocked_by_admin`.
    pub blocked_by_admin: bool,
    /// The time of the probe.
    pub now: DateTime<Utc>,
}

/// What is known of a credential before it is probed, from its token lists and the
/// configuration: inputs of the classifier, so that a verdict is decided in one place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// The expiry (Jira's PAT list, the organization's list, or the configuration): a
    /// rejection after it is `expired`.
    pub known_expiry: Option<DateTime<Utc>>,
    /// The organization's list says an admin blocked the token: a 401 is `blocked_by_admin`
    /// (docs/jira-answers.md §8).
    pub blocked_by_admin: bool,
}

impl Answer {
    /// The caller the `X-AUSERNAME` response header names, URL-decoded (Bitbucket encodes
    /// it; a decoded name is the same name where nothing was encoded); `None` when the header
    /// is absent, empty or `anonymous`.
    pub fn named_caller(&self) -> Option<String> {
        let raw = self.headers.get("x-ausername")?.to_str().ok()?.trim();
        let name = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .ok()?
            .into_owned();
        (!name.is_empty() && !name.eq_ignore_ascii_case("anonymous")).then_some(name)
    }

    /// The caller as an identity, for a verdict that names who was refused.
    pub(super) fn caller_identity(&self) -> Option<std::sync::Arc<super::identity::Identity>> {
        let name = self.named_caller()?;
        Some(std::sync::Arc::new(super::identity::Identity {
            name: Some(name),
            ..super::identity::Identity::default()
        }))
    }
}

impl Expectation<'_> {
    /// The state of a rejection: `expired` once the known expiry has passed, else `invalid`.
    pub fn rejected_state(&self) -> State {
        match self.expires_at {
            Some(expiry) if expiry <= self.now => State::Expired,
            _ => State::Invalid,
        }
    }
}

/// What a verdict's detail says was seen: the status, and what else decided it.
pub(super) fn seen(code: u16, extra: &str) -> String {
    if extra.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code}, {extra}")
    }
}

/// What the tests of each reading build their tables from.
#[cfg(test)]
pub(super) mod testing {
    use chrono::{DateTime, Utc};
    use http::StatusCode;

    use super::super::verdict::{Reason, State};
    use super::{Answer, Expectation};

    /// One answer and the verdict it must get: status, headers, body, expectation.
    pub(in crate::probe) type Row<'a> = (
        u16,
        &'a [(&'a str, &'a str)],
        &'a str,
        Expectation<'a>,
        State,
        Reason,
    );

    /// The time every table is read at.
    pub(in crate::probe) fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    /// A whole answer with this status, these headers and this body.
    pub(in crate::probe) fn answer(code: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(code).expect("status"),
            headers: crate::probe::headers::tests::map(headers),
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }
}
