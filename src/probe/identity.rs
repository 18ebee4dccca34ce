//! The account an identity probe's answer names: Jira's `myself` object, Confluence's
//! `user/current` (the same fields under other names, and a user type), read once per body
//! ([`LastMyself`]) since nearly every probe of a connection gets the same bytes back.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::config::Kind;

/// The account a product's user object names (Jira's `myself`, Confluence's
/// `user/current`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Server/DC user name (Confluence's `username`).
    #[serde(default, alias = "username", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Server/DC user key (`JIRAUSER10001`; Confluence's `userKey`).
    #[serde(default, alias = "userKey", skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Cloud account id.
    #[serde(
        default,
        rename(deserialize = "accountId"),
        skip_serializing_if = "Option::is_none"
    )]
    pub account_id: Option<String>,
    /// Display name.
    #[serde(
        default,
        rename(deserialize = "displayName"),
        skip_serializing_if = "Option::is_none"
    )]
    pub display_name: Option<String>,
    /// Email, when Jira shows it.
    #[serde(
        default,
        rename(deserialize = "emailAddress"),
        alias = "email",
        skip_serializing_if = "Option::is_none"
    )]
    pub email: Option<String>,
    /// Whether the account is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Confluence's user type: `known` for an account, `anonymous` when the credential was
    /// not accepted (Jira sends none). Read, never kept.
    #[serde(default, rename(deserialize = "type"), skip_serializing)]
    pub user_type: Option<String>,
}

impl Identity {
    /// The account as operators name it: the user name on Server, the email (or account id)
    /// on Cloud.
    pub fn account(&self, kind: Kind) -> Option<&str> {
        fn non_empty(field: &Option<String>) -> Option<&str> {
            field.as_deref().filter(|s| !s.is_empty())
        }
        match kind {
            Kind::Server => non_empty(&self.name).or(non_empty(&self.key)),
            Kind::Cloud => non_empty(&self.email).or(non_empty(&self.account_id)),
        }
    }

    /// Whether this is the account `expected` names: user name or key on Server, email or
    /// account id on Cloud. User names and emails compare without case, as Jira does.
    pub fn is(&self, expected: &str, kind: Kind) -> bool {
        let same = |s: &Option<String>| {
            s.as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(expected))
        };
        match kind {
            Kind::Server => same(&self.name) || same(&self.key),
            Kind::Cloud => same(&self.email) || self.account_id.as_deref() == Some(expected),
        }
    }

    /// Whether this answer can tell at all: Cloud may hide the email for privacy, and then an
    /// expected email can be neither confirmed nor refuted.
    pub fn can_tell(&self, expected: &str, kind: Kind) -> bool {
        !(kind == Kind::Cloud && expected.contains('@') && self.email.is_none())
    }
}

/// The user object a connection's last identity probe read, with a digest of that body.
///
/// Nearly every probe of a connection gets the same bytes back; reading them as JSON again was
/// a fifth of the CPU of a probe. The digest is SipHash with keys drawn once per process, so
/// two different bodies that digest alike are not something a server can arrange.
#[derive(Debug, Default, Clone)]
pub struct LastMyself {
    digest: u64,
    identity: Option<Arc<Identity>>,
    /// What the API gateway said of this secret, once the site rejected it (unscoped Cloud API
    /// tokens only; see [`super::gateway`]). Reset with the secret.
    pub gateway: Option<super::gateway::GatewayTry>,
}

impl LastMyself {
    /// The user object `body` holds: the one kept when the body is the same as last time.
    pub(super) fn read(&mut self, body: &[u8]) -> Option<Arc<Identity>> {
        static KEYS: OnceLock<RandomState> = OnceLock::new();
        let digest = KEYS.get_or_init(RandomState::new).hash_one(body);
        if let Some(identity) = self.identity.as_ref().filter(|_| self.digest == digest) {
            return Some(identity.clone());
        }
        let identity = Arc::new(user_object(body)?);
        self.digest = digest;
        self.identity = Some(identity.clone());
        Some(identity)
    }
}

impl Identity {
    /// Whether the object names an account: a user name, a key or an account id.
    pub fn names_someone(&self) -> bool {
        [&self.name, &self.key, &self.account_id]
            .into_iter()
            .any(|field| field.as_deref().is_some_and(|v| !v.is_empty()))
    }

    /// Whether the object says it is the anonymous user (Confluence's `"type": "anonymous"`).
    pub fn is_anonymous(&self) -> bool {
        self.user_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("anonymous"))
    }

    /// Whether the object says it is an account (Confluence's `"type": "known"`).
    pub fn is_known(&self) -> bool {
        self.user_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("known"))
    }
}

/// Reads a user object; `None` unless it is one (a JSON object).
fn user_object(body: &[u8]) -> Option<Identity> {
    serde_json::from_slice(body).ok()
}
