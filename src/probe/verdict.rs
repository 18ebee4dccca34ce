//! What a probe concludes: the [`Verdict`] on one answer, in the fixed vocabularies of the
//! credential [`State`] and the probe [`Reason`] (whose hints are [`super::hints`]).
//!
//! Both vocabularies are public interface: they become metric label values and alert
//! conditions, so their strings come from one `as_str` each and never change casually.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::identity::Identity;

/// What the last probe says about the credential itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Jira accepted the credential and reported the expected, active account.
    Valid,
    /// Jira rejected the credential (wrong, revoked, wrong scheme or scope, inactive account).
    Invalid,
    /// Jira rejected the credential and its known expiry has passed.
    Expired,
    /// The account is behind a CAPTCHA: even the right password fails until a person acts.
    Locked,
    /// The credential authenticates, or would, but is not allowed to do what it needs.
    Forbidden,
    /// This probe reached no verdict (network, rate limit, server trouble...).
    Unknown,
}

impl State {
    /// Every state, in the order used for metric series and summaries.
    pub const ALL: [State; 6] = [
        State::Valid,
        State::Invalid,
        State::Expired,
        State::Locked,
        State::Forbidden,
        State::Unknown,
    ];

    /// The label value used in metrics, JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Valid => "valid",
            State::Invalid => "invalid",
            State::Expired => "expired",
            State::Locked => "locked",
            State::Forbidden => "forbidden",
            State::Unknown => "unknown",
        }
    }

    /// Whether this state is a verdict about the credential (everything but `unknown`).
    pub fn is_verdict(self) -> bool {
        self != State::Unknown
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the probe ended the way it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// `GET myself` answered with the expected account.
    Ok,
    /// 401 or Seraph `AUTHENTICATED_FAILED`: the credential was not accepted.
    Unauthorized,
    /// A 401 for a Cloud API token that the organization's admin API lists as `BLOCKED`.
    BlockedByAdmin,
    /// 2xx with `X-AUSERNAME: anonymous`: the credential was ignored and the call ran anonymously.
    AnonymousFallback,
    /// Jira requires a CAPTCHA before it accepts this account's password again.
    CaptchaRequired,
    /// The Data Center admin has disabled Basic authentication.
    BasicAuthDisabled,
    /// A Cloud account password was sent where an API token is required.
    PasswordAuthDeprecated,
    /// A Cloud API token was sent as `Bearer`.
    WrongAuthScheme,
    /// A scoped Cloud API token lacks the scope this call needs.
    ScopeMismatch,
    /// The OAuth token endpoint refused the client id and secret (`invalid_client`).
    ClientRejected,
    /// A scoped API token sent to the site URL: the site rejects it, the gateway accepts it.
    ScopedTokenSiteUrl,
    /// Authenticated, but not permitted.
    Forbidden,
    /// Jira reports the account as inactive.
    AccountInactive,
    /// The credential belongs to another account than `expect_account`.
    WrongAccount,
    /// 429, or 503 with `Retry-After`.
    RateLimited,
    /// A 5xx without `Retry-After`.
    ServerError,
    /// A 3xx: something (often SSO) stands in front of the API.
    Redirected,
    /// An answer that is not what `myself` returns (login page, wrong shape, 404...).
    UnexpectedResponse,
    /// The TLS handshake failed (unknown CA, expired certificate, wrong host name...).
    TlsError,
    /// The host name did not resolve.
    DnsError,
    /// No connection, or it broke before an answer arrived.
    ConnectError,
    /// The probe's deadline passed before the whole answer arrived.
    Timeout,
}

impl Reason {
    /// Whether Jira counted an answer of this reason as a failed login (Seraph's counter):
    /// any other answer to a Basic login means Jira accepted it.
    pub fn is_failed_login(self) -> bool {
        matches!(
            self,
            Reason::Unauthorized | Reason::AnonymousFallback | Reason::PasswordAuthDeprecated
        )
    }

    /// Every reason, in the order used for metric series and documentation.
    pub const ALL: [Reason; 22] = [
        Reason::Ok,
        Reason::Unauthorized,
        Reason::BlockedByAdmin,
        Reason::AnonymousFallback,
        Reason::CaptchaRequired,
        Reason::BasicAuthDisabled,
        Reason::PasswordAuthDeprecated,
        Reason::WrongAuthScheme,
        Reason::ScopeMismatch,
        Reason::ClientRejected,
        Reason::ScopedTokenSiteUrl,
        Reason::Forbidden,
        Reason::AccountInactive,
        Reason::WrongAccount,
        Reason::RateLimited,
        Reason::ServerError,
        Reason::Redirected,
        Reason::UnexpectedResponse,
        Reason::TlsError,
        Reason::DnsError,
        Reason::ConnectError,
        Reason::Timeout,
    ];

    /// The label value used in metrics, JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::Unauthorized => "unauthorized",
            Reason::BlockedByAdmin => "blocked_by_admin",
            Reason::AnonymousFallback => "anonymous_fallback",
            Reason::CaptchaRequired => "captcha_required",
            Reason::BasicAuthDisabled => "basic_auth_disabled",
            Reason::PasswordAuthDeprecated => "password_auth_deprecated",
            Reason::WrongAuthScheme => "wrong_auth_scheme",
            Reason::ScopeMismatch => "scope_mismatch",
            Reason::ClientRejected => "client_rejected",
            Reason::ScopedTokenSiteUrl => "scoped_token_site_url",
            Reason::Forbidden => "forbidden",
            Reason::AccountInactive => "account_inactive",
            Reason::WrongAccount => "wrong_account",
            Reason::RateLimited => "rate_limited",
            Reason::ServerError => "server_error",
            Reason::Redirected => "redirected",
            Reason::UnexpectedResponse => "unexpected_response",
            Reason::TlsError => "tls_error",
            Reason::DnsError => "dns_error",
            Reason::ConnectError => "connect_error",
            Reason::Timeout => "timeout",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The classification of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What the answer says about the credential.
    pub state: State,
    /// Why.
    pub reason: Reason,
    /// The account, when Jira reported one.
    pub identity: Option<Arc<Identity>>,
    /// A short, secret-free note on what was seen (`401, X-Seraph-LoginReason: AUTHENTICATED_FAILED`).
    pub detail: Option<String>,
}

impl Verdict {
    pub(super) fn new(state: State, reason: Reason, detail: impl Into<String>) -> Verdict {
        Verdict {
            state,
            reason,
            identity: None,
            detail: Some(detail.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            let label = reason.as_str();
            assert!(seen.insert(label), "duplicate reason label {label}");
            assert!(label.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert_eq!(
                serde_json::to_value(reason).expect("serializes"),
                serde_json::Value::from(label)
            );
        }
        for state in State::ALL {
            assert_eq!(
                serde_json::to_value(state).expect("serializes"),
                serde_json::Value::from(state.as_str())
            );
        }
    }
}
