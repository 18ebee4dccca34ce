//! What the simulator knows: sites, their users and credentials, and how a Jira site decides
//! who is calling (Seraph's rules on Data Center, the API-token rules on Cloud).

use std::time::Instant;

use base64::Engine as _;
use chrono::{DateTime, Utc};

use crate::{Kind, Product};

/// One simulated Jira site, served under its own context path.
#[derive(Debug, Clone)]
pub struct Site {
    /// Which product answers.
    pub product: Product,
    /// Data Center or Cloud answers.
    pub kind: Kind,
    /// What stands in front of the API (a healthy node, an SSO redirect, an outage...).
    pub front: Front,
    /// Data Center: whether Basic authentication is allowed (admins may disable it, 8.16+).
    pub basic_auth_enabled: bool,
    /// Whether `myself` falls through to anonymous access when a credential is rejected
    /// (observed on endpoints that permit anonymous access).
    pub anonymous_fallback: bool,
    /// Data Center: consecutive failed Basic logins after which the account needs a CAPTCHA.
    pub captcha_after: u32,
    /// Data Center: the per-user token bucket, if rate limiting is on.
    pub bucket: Option<Bucket>,
    /// Whether `/rest/pat/latest/tokens` exists (Jira 8.14+ with PATs enabled).
    pub pat_api: bool,
    /// Which of the two observed bodies a rejected PAT gets: `{"message": ...}` (false) or
    /// the `errorMessages` envelope (true).
    pub error_messages_body: bool,
    /// What `GET /status` reports: RUNNING, STARTING, STOPPING, MAINTENANCE or ERROR.
    pub node_state: &'static str,
    /// The node id sent in `X-ANODEID` (Data Center).
    pub node_id: String,
    /// The accounts of the site.
    pub users: Vec<User>,
    /// Cloud: the site's cloudId, which `/_edge/tenant_info` tells and the gateway routes by.
    pub cloud_id: String,
    /// The OAuth 2.0 clients (service accounts' credentials) registered on the site.
    pub oauth_clients: Vec<crate::oauth::OAuthClient>,
    /// Bitbucket: whether a token may read its owner's token list.
    pub tokens_readable: bool,
    /// Bitbucket: the most entries a page of a list holds.
    pub page_limit: usize,
}

/// A made-up cloudId, different for every site of the process (a UUID in form).
fn next_cloud_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("5ca1ab1e-0000-4000-8000-{n:012x}")
}

impl Site {
    /// A healthy Data Center site with no users.
    pub fn server() -> Site {
        Site {
            product: Product::Jira,
            kind: Kind::Server,
            front: Front::Healthy,
            basic_auth_enabled: true,
            anonymous_fallback: false,
            captcha_after: 3,
            // Real DC values (docs/jira-answers.md §4): every authenticated answer carries them.
            bucket: Some(Bucket {
                limit: 500,
                fill_rate: 500,
                interval_seconds: 60,
            }),
            pat_api: true,
            error_messages_body: false,
            node_state: "RUNNING",
            node_id: "node1".to_owned(),
            users: Vec::new(),
            cloud_id: next_cloud_id(),
            oauth_clients: Vec::new(),
            tokens_readable: true,
            page_limit: 1000,
        }
    }

    /// A healthy Cloud site with no users.
    pub fn cloud() -> Site {
        Site {
            kind: Kind::Cloud,
            pat_api: false,
            bucket: None,
            ..Site::server()
        }
    }

    /// A healthy Confluence Data Center site with no users (PATs since 7.9; Seraph's counter;
    /// the same rate-limit bucket as Jira's).
    pub fn confluence_server() -> Site {
        Site {
            product: Product::Confluence,
            ..Site::server()
        }
    }

    /// A healthy Confluence Cloud site with no users: served under `/{site}/wiki`, its
    /// `_edge/tenant_info` at `/{site}`.
    pub fn confluence_cloud() -> Site {
        Site {
            product: Product::Confluence,
            ..Site::cloud()
        }
    }

    /// A healthy Bitbucket Data Center site with no users: the CAPTCHA after 5 failed logins
    /// (Bitbucket's default), lists paged by at most 2 entries so that paging is exercised.
    pub fn bitbucket() -> Site {
        Site {
            product: Product::Bitbucket,
            captcha_after: 5,
            bucket: None,
            pat_api: false,
            page_limit: 2,
            ..Site::server()
        }
    }

    /// Adds a user.
    pub fn with_user(mut self, user: User) -> Site {
        self.users.push(user);
        self
    }

    /// Sets the site's cloudId (a new one is made up otherwise).
    pub fn with_cloud_id(mut self, cloud_id: &str) -> Site {
        self.cloud_id = cloud_id.to_owned();
        self
    }

    /// Registers an OAuth 2.0 client.
    pub fn with_oauth_client(mut self, client: crate::oauth::OAuthClient) -> Site {
        self.oauth_clients.push(client);
        self
    }

    /// Sets what stands in front of the API.
    pub fn with_front(mut self, front: Front) -> Site {
        self.front = front;
        self
    }

    /// The user with this name (Server) or email (Cloud), ignoring case as Jira does.
    pub fn user_mut(&mut self, login: &str) -> Option<&mut User> {
        let kind = self.kind;
        self.users.iter_mut().find(|u| match kind {
            Kind::Server => u.username.eq_ignore_ascii_case(login),
            Kind::Cloud => u.email.eq_ignore_ascii_case(login),
        })
    }
}

/// What answers before Jira's own authentication runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Front {
    /// Jira answers.
    Healthy,
    /// Nothing answers: the connection is accepted and left hanging.
    Hang,
    /// A fixed status and body, such as 500 or a 503 during maintenance.
    Status(u16, String),
    /// A redirect, as an SSO proxy in front of Jira sends.
    Redirect(String),
    /// 200 with an HTML login page, as a misconfigured proxy sends.
    LoginPage,
    /// Jira answers as usual, but only after this long (a loaded node).
    Slow(std::time::Duration),
    /// The next `remaining` requests are refused with `status` (429, or 503) and, if set,
    /// `Retry-After`; then the site recovers.
    Throttle {
        /// Requests still to refuse.
        remaining: u32,
        /// 429 or 503.
        status: u16,
        /// The `Retry-After` value, in either of its forms.
        retry_after: Option<String>,
    },
}

/// A Data Center per-user token bucket (Jira 8.6+ rate limiting).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// `X-RateLimit-Limit`: the bucket size.
    pub limit: u32,
    /// `X-RateLimit-FillRate`: tokens added per interval.
    pub fill_rate: u32,
    /// `X-RateLimit-Interval-Seconds`.
    pub interval_seconds: u32,
}

/// One account.
#[derive(Debug, Clone)]
pub struct User {
    /// Server user name.
    pub username: String,
    /// Server user key.
    pub key: String,
    /// Cloud account id.
    pub account_id: String,
    /// Email (the Cloud login).
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Whether the account is active.
    pub active: bool,
    /// The account password, if it has one.
    pub password: Option<String>,
    /// Cloud API tokens.
    pub api_tokens: Vec<ApiToken>,
    /// Data Center personal access tokens.
    pub pats: Vec<Pat>,
    /// Whether the account lacks permission to use the API (answers 403).
    pub forbidden: bool,
    /// Consecutive failed Basic logins (Seraph's counter).
    pub failed_logins: u32,
    /// Bitbucket: the system-generated user of a project or repository token, which has no
    /// account (no password, no slug, no token list of its own).
    pub bot: bool,
    /// Tokens left in the rate-limit bucket, and when it was last filled.
    pub(super) bucket_state: Option<(f64, Instant)>,
}

impl User {
    /// An active account; the other identifiers are derived from `username`.
    pub fn new(username: &str) -> User {
        let digest: u64 = username.bytes().fold(1469598103934665603, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(1099511628211)
        });
        User {
            username: username.to_owned(),
            key: format!("JIRAUSER{}", 10000 + digest % 90000),
            account_id: format!("5b10a2844c{:014x}", digest >> 8),
            email: format!("{username}@example.com"),
            display_name: username.replace(['-', '_', '.'], " "),
            active: true,
            password: None,
            api_tokens: Vec::new(),
            pats: Vec::new(),
            forbidden: false,
            failed_logins: 0,
            bot: false,
            bucket_state: None,
        }
    }

    /// Sets the email (the Cloud login).
    pub fn with_email(mut self, email: &str) -> User {
        self.email = email.to_owned();
        self
    }

    /// Sets the password.
    pub fn with_password(mut self, password: &str) -> User {
        self.password = Some(password.to_owned());
        self
    }

    /// Adds a personal access token.
    pub fn with_pat(mut self, pat: Pat) -> User {
        self.pats.push(pat);
        self
    }

    /// Bitbucket: the system-generated user of a project or repository HTTP access token
    /// (`token`), which has no account.
    pub fn token_bot(name: &str, token: Pat) -> User {
        User {
            bot: true,
            ..User::new(name).with_pat(token)
        }
    }

    /// Adds a Cloud API token.
    pub fn with_api_token(mut self, token: ApiToken) -> User {
        self.api_tokens.push(token);
        self
    }
}

/// A Data Center personal access token.
#[derive(Debug, Clone)]
pub struct Pat {
    /// Jira's id.
    pub id: u64,
    /// The name given at creation.
    pub name: String,
    /// The raw token.
    pub secret: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry; `None` for a token that never expires.
    pub expiring_at: Option<DateTime<Utc>>,
    /// Last use; Jira updates it at most once a minute.
    pub last_accessed_at: Option<DateTime<Utc>>,
    /// Revoked tokens stop working and leave the list.
    pub revoked: bool,
}

impl Pat {
    /// A token created now that expires in `days` (`None`: never).
    pub fn new(id: u64, name: &str, secret: &str, days: Option<i64>) -> Pat {
        let now = Utc::now();
        Pat {
            id,
            name: name.to_owned(),
            secret: secret.to_owned(),
            created_at: now,
            expiring_at: days.map(|d| now + chrono::Duration::days(d)),
            last_accessed_at: None,
            revoked: false,
        }
    }

    pub(crate) fn works(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && self.expiring_at.is_none_or(|expiry| expiry > now)
    }
}

/// A Cloud API token.
#[derive(Debug, Clone)]
pub struct ApiToken {
    /// The raw token.
    pub secret: String,
    /// Expiry (Cloud tokens last at most a year).
    pub expires_at: Option<DateTime<Utc>>,
    /// Revoked tokens stop working.
    pub revoked: bool,
    /// A scoped token that lacks the scope `myself` needs.
    pub missing_scope: bool,
    /// A scoped token (every service account's): it works only through the API gateway, and
    /// the site itself answers it with a plain 401, as for a revoked token.
    pub scoped: bool,
}

impl ApiToken {
    /// A working, unscoped token.
    pub fn new(secret: &str) -> ApiToken {
        ApiToken {
            secret: secret.to_owned(),
            expires_at: None,
            revoked: false,
            missing_scope: false,
            scoped: false,
        }
    }

    /// A working scoped token, for the gateway only.
    pub fn scoped(secret: &str) -> ApiToken {
        ApiToken {
            scoped: true,
            ..ApiToken::new(secret)
        }
    }
}

/// Why a site refused to authenticate a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No `Authorization` header, or one credwatch cannot read.
    NoCredentials,
    /// DC: Basic with a wrong user or password (counted by Seraph).
    BadPassword,
    /// DC: a PAT that is unknown, expired or revoked (all look the same).
    BadPat,
    /// DC: the account is behind a CAPTCHA.
    Captcha,
    /// DC: Basic authentication is disabled.
    BasicDisabled,
    /// Cloud: a bad, expired or revoked API token, or an inactive account.
    BadApiToken,
    /// Cloud: the account password instead of an API token.
    PasswordOnCloud,
    /// Cloud: an API token sent as Bearer.
    BearerOnCloud,
    /// Cloud: a scoped token without the needed scope.
    ScopeMismatch,
}

/// Decides who is calling, updating Seraph's failed-login counter and PAT use times.
/// Returns the index of the authenticated user.
pub fn authenticate(
    site: &mut Site,
    authorization: Option<&str>,
    now: DateTime<Utc>,
) -> Result<usize, Rejection> {
    authenticate_via(site, authorization, now, false)
}

/// As [`authenticate`], for a request that came to the site directly (`gateway` false) or
/// through the API gateway: a scoped API token works only through the gateway, an unscoped
/// one only at the site.
pub fn authenticate_via(
    site: &mut Site,
    authorization: Option<&str>,
    now: DateTime<Utc>,
    gateway: bool,
) -> Result<usize, Rejection> {
    let Some(authorization) = authorization else {
        return Err(Rejection::NoCredentials);
    };
    if let Some(token) = authorization.strip_prefix("Bearer ") {
        return match site.kind {
            Kind::Cloud => Err(Rejection::BearerOnCloud),
            Kind::Server => {
                let found = site.users.iter_mut().enumerate().find_map(|(i, user)| {
                    let pat = user.pats.iter_mut().find(|p| p.secret == token)?;
                    Some((i, pat))
                });
                match found {
                    Some((i, pat)) if pat.works(now) => {
                        let stale = pat
                            .last_accessed_at
                            .is_none_or(|t| now - t >= chrono::Duration::minutes(1));
                        if stale {
                            pat.last_accessed_at = Some(now);
                        }
                        Ok(i)
                    }
                    _ => Err(Rejection::BadPat),
                }
            }
        };
    }
    let Some((login, secret)) = decode_basic(authorization) else {
        return Err(Rejection::NoCredentials);
    };
    match site.kind {
        Kind::Server => {
            if !site.basic_auth_enabled {
                return Err(Rejection::BasicDisabled);
            }
            let captcha_after = site.captcha_after;
            let Some(user) = site.user_mut(&login) else {
                return Err(Rejection::BadPassword);
            };
            if user.failed_logins >= captcha_after {
                return Err(Rejection::Captcha);
            }
            if user.active && user.password.as_deref() == Some(secret.as_str()) {
                user.failed_logins = 0;
                let login = user.username.clone();
                Ok(index_of(site, &login))
            } else {
                user.failed_logins += 1;
                Err(Rejection::BadPassword)
            }
        }
        Kind::Cloud => {
            let Some(user) = site.user_mut(&login) else {
                return Err(Rejection::BadApiToken);
            };
            if user.password.as_deref() == Some(secret.as_str()) {
                return Err(Rejection::PasswordOnCloud);
            }
            let token = user
                .api_tokens
                .iter()
                .find(|t| t.secret == secret && t.scoped == gateway);
            match token {
                Some(t) if t.missing_scope => Err(Rejection::ScopeMismatch),
                Some(t)
                    if user.active
                        && !t.revoked
                        && t.expires_at.is_none_or(|expiry| expiry > now) =>
                {
                    let login = user.email.clone();
                    Ok(index_of(site, &login))
                }
                _ => Err(Rejection::BadApiToken),
            }
        }
    }
}

fn index_of(site: &mut Site, login: &str) -> usize {
    let kind = site.kind;
    site.users
        .iter()
        .position(|u| match kind {
            Kind::Server => u.username.eq_ignore_ascii_case(login),
            Kind::Cloud => u.email.eq_ignore_ascii_case(login),
        })
        .unwrap_or_default()
}

/// `Basic base64(login:secret)` → `(login, secret)`.
pub(crate) fn decode_basic(authorization: &str) -> Option<(String, String)> {
    let encoded = authorization.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (login, secret) = text.split_once(':')?;
    Some((login.to_owned(), secret.to_owned()))
}

/// Takes one token from the user's bucket; `Err(seconds to wait)` when it is empty.
pub fn take_token(user: &mut User, bucket: Bucket, now: Instant) -> Result<u32, u64> {
    let (tokens, filled) = user.bucket_state.unwrap_or((f64::from(bucket.limit), now));
    let per_second = f64::from(bucket.fill_rate) / f64::from(bucket.interval_seconds.max(1));
    let tokens = (tokens + now.duration_since(filled).as_secs_f64() * per_second)
        .min(f64::from(bucket.limit));
    if tokens >= 1.0 {
        user.bucket_state = Some((tokens - 1.0, now));
        // Truncation is what Jira shows: whole tokens left.
        Ok((tokens - 1.0) as u32)
    } else {
        user.bucket_state = Some((tokens, now));
        Err(((1.0 - tokens) / per_second).ceil().max(1.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(login: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{login}:{secret}"))
        )
    }

    #[test]
    fn seraph_locks_after_three_failures_and_then_refuses_the_right_password() {
        let mut site = Site::server().with_user(User::new("svc").with_password("right"));
        let now = Utc::now();
        for _ in 0..3 {
            assert_eq!(
                authenticate(&mut site, Some(&basic("svc", "wrong")), now),
                Err(Rejection::BadPassword)
            );
        }
        assert_eq!(
            authenticate(&mut site, Some(&basic("svc", "right")), now),
            Err(Rejection::Captcha)
        );
    }

    #[test]
    fn a_success_resets_the_counter() {
        let mut site = Site::server().with_user(User::new("svc").with_password("right"));
        let now = Utc::now();
        for _ in 0..2 {
            let _ = authenticate(&mut site, Some(&basic("svc", "wrong")), now);
        }
        assert_eq!(
            authenticate(&mut site, Some(&basic("svc", "right")), now),
            Ok(0)
        );
        assert_eq!(site.users[0].failed_logins, 0);
    }

    #[test]
    fn bucket_empties_and_refills() {
        let mut user = User::new("svc");
        let bucket = Bucket {
            limit: 2,
            fill_rate: 1,
            interval_seconds: 10,
        };
        let start = Instant::now();
        assert_eq!(take_token(&mut user, bucket, start), Ok(1));
        assert_eq!(take_token(&mut user, bucket, start), Ok(0));
        assert_eq!(take_token(&mut user, bucket, start), Err(10));
        let later = start + std::time::Duration::from_secs(10);
        assert_eq!(take_token(&mut user, bucket, later), Ok(0));
    }
}
