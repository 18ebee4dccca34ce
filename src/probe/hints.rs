//! What an operator should do about a [`Reason`], in the words of the credential's product:
//! Jira's, Confluence's screens, scopes and gateway paths where a hint names them, and the
//! product's name wherever a hint speaks of "the server". The set-up guides' troubleshooting
//! advice is the model (`docs/jira-answers.md`).
//!
//! A hint is `&'static str`, as every outcome carries one: the table is written once as
//! templates (`{product}` stands for the product's name) and worded for every product and
//! credential when first asked for.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::verdict::Reason;
use crate::config::{AuthMethod, CredentialType, Product};

/// Every auth method, for the table.
const AUTHS: [AuthMethod; 4] = [
    AuthMethod::Pat,
    AuthMethod::ApiToken,
    AuthMethod::Basic,
    AuthMethod::OAuthClientCredentials,
];

/// The hints, worded for every product and credential.
static HINTS: LazyLock<HashMap<(Reason, CredentialType), String>> = LazyLock::new(|| {
    let mut table = HashMap::new();
    for reason in Reason::ALL {
        for product in Product::ALL {
            for auth in AUTHS {
                let of = CredentialType { product, auth };
                if let Some(template) = template(reason, of) {
                    table.insert((reason, of), in_words_of(template, product));
                }
            }
        }
    }
    table
});

impl Reason {
    /// What an operator should do about this reason, in the words of this type of
    /// credential's product. `None` for `ok`.
    pub fn hint(self, of: CredentialType) -> Option<&'static str> {
        HINTS.get(&(self, of)).map(String::as_str)
    }
}

/// `template` with `{product}` replaced by the product's name.
pub(crate) fn in_words_of(template: &str, product: Product) -> String {
    template.replace("{product}", product.title())
}

/// The hint templates; see the module documentation.
fn template(reason: Reason, of: CredentialType) -> Option<&'static str> {
    let CredentialType { product, auth } = of;
    let hint = match (reason, product, auth) {
        (Reason::Ok, ..) => return None,
        (Reason::Unauthorized, Product::Jira, AuthMethod::Pat) => {
            "Jira rejected the token: it is wrong, expired or revoked (Jira answers the same for all three); verify it under Profile > Personal Access Tokens and create a new one if needed"
        }
        (Reason::Unauthorized, Product::Bitbucket, AuthMethod::Pat) => {
            "Bitbucket rejected the HTTP access token: it is wrong, expired or revoked; check it under Manage account > HTTP access tokens (a project's or repository's under its settings > HTTP access tokens) and create a new one if needed"
        }
        (Reason::Unauthorized, Product::Bitbucket, AuthMethod::Basic) => {
            "Bitbucket rejected the username and password (or the personal token sent as the password): fix them now, since every failed login counts towards Bitbucket's CAPTCHA lock for this account"
        }
        (Reason::Unauthorized, Product::Confluence, AuthMethod::Pat) => {
            "Confluence rejected the token: it is wrong, expired or revoked; verify it under Profile picture > Settings > Personal Access Tokens and create a new one if needed"
        }
        (Reason::Unauthorized, _, AuthMethod::ApiToken) => {
            "{product} rejected the email and API token: verify both, check that the token is not expired or revoked (id.atlassian.com > Security > API tokens) and that the account is active"
        }
        (Reason::Unauthorized, _, AuthMethod::OAuthClientCredentials) => {
            "{product} rejected the access token the token endpoint issued for this client: check that the service account is active and has access to this site (its product access), and that cloud_id names this site"
        }
        (Reason::Unauthorized, _, AuthMethod::Basic) => {
            "{product} rejected the username and password: fix them now, since every failed login counts towards {product}'s CAPTCHA lock for this account"
        }
        (Reason::BlockedByAdmin, ..) => {
            "an organization admin blocked this API token (admin.atlassian.com > Security > API tokens): ask the admin why; unblock it there, or create a new token for the integration and update it"
        }
        (Reason::AnonymousFallback, Product::Confluence, _) => {
            "Confluence answered as the anonymous user: it does so for a wrong, revoked or expired personal access token alike, without a 401; verify the token under Profile picture > Settings > Personal Access Tokens and create a new one if needed"
        }
        (Reason::AnonymousFallback, Product::Bitbucket, _) => {
            "Bitbucket answered without naming a user (no X-AUSERNAME): it did not accept the credential; verify the token under Manage account > HTTP access tokens, or the username and password"
        }
        (Reason::AnonymousFallback, ..) => {
            "{product} ignored the credential and answered anonymously: the token is invalid, expired or revoked; verify it and create a new one if needed"
        }
        (Reason::CaptchaRequired, ..) => {
            "the account is locked behind a CAPTCHA after failed logins: log in once through {product}'s login page in a browser, or have an admin reset the failed-login count, then fix the password; consider a personal access token instead"
        }
        (Reason::BasicAuthDisabled, Product::Jira, _) => {
            "Basic authentication is disabled on this Jira: create a personal access token (Jira 8.14+) and use auth = \"pat\""
        }
        (Reason::BasicAuthDisabled, Product::Bitbucket, _) => {
            "Basic authentication is disabled on this Bitbucket: create an HTTP access token and use auth = \"pat\""
        }
        (Reason::BasicAuthDisabled, Product::Confluence, _) => {
            "Basic authentication is disabled on this Confluence: create a personal access token (Confluence 7.9+) and use auth = \"pat\""
        }
        (Reason::PasswordAuthDeprecated, ..) => {
            "{product} Cloud does not accept account passwords over the API: create an API token at id.atlassian.com and use auth = \"api_token\""
        }
        (Reason::WrongAuthScheme, ..) => {
            "a Cloud API token was sent as Bearer: use kind = \"cloud\" and auth = \"api_token\" with the account's email as username"
        }
        (Reason::ScopeMismatch, Product::Jira, AuthMethod::OAuthClientCredentials) => {
            "the OAuth credential lacks a scope /myself needs (read:jira-user, or the granular read:user:jira): add it to the service account's credential, or create one with it"
        }
        (Reason::ScopeMismatch, Product::Jira, _) => {
            "the scoped API token lacks a scope this call needs (read:jira-user): create a token with that scope, or an unscoped one"
        }
        (Reason::ScopeMismatch, Product::Bitbucket, _) => {
            "the token lacks a permission this call needs: give the HTTP access token at least read permission, or create one with it"
        }
        (Reason::ScopeMismatch, Product::Confluence, _) => {
            "the scoped API token lacks a scope /rest/api/user/current needs (read:content-details:confluence, or the classic read:confluence-user): create a token with that scope, or an unscoped one"
        }
        (Reason::ClientRejected, ..) => {
            "the token endpoint rejected the client id and secret (invalid_client): they are wrong, revoked or expired; create a new OAuth 2.0 credential for the service account and update client_id and the secret"
        }
        (Reason::ScopedTokenSiteUrl, Product::Jira, _) => {
            "this is a scoped API token, which works only through the API gateway: set scoped = true here, and point the integration at https://api.atlassian.com/ex/jira/{cloudId} as well, since it fails on the site URL too"
        }
        (Reason::ScopedTokenSiteUrl, Product::Bitbucket, _) => {
            "a scoped Atlassian Cloud token reached a site that only the API gateway accepts it at; Bitbucket Data Center has no scoped tokens: use an HTTP access token"
        }
        (Reason::ScopedTokenSiteUrl, Product::Confluence, _) => {
            "this is a scoped API token, which works only through the API gateway: set scoped = true here, and point the integration at https://api.atlassian.com/ex/confluence/{cloudId}/wiki as well, since it fails on the site URL too"
        }
        (Reason::Forbidden, _, AuthMethod::OAuthClientCredentials) => {
            "the OAuth client may not use the client-credentials grant (unauthorized_client), or its account lacks permission: check the credential's grant and the service account's access in {product}"
        }
        (Reason::Forbidden, Product::Bitbucket, _) => {
            "the credential works but may not do this (com.atlassian.bitbucket.AuthorisationException): check the token's permissions and the user's access in Bitbucket"
        }
        (Reason::Forbidden, Product::Confluence, _) => {
            "the credential works but the account may not use Confluence (no product access, or not permitted): grant it Confluence access (on Cloud, admin.atlassian.com > Products) or check its permissions"
        }
        (Reason::Forbidden, ..) => {
            "the credential works but lacks permission: check the user's permissions and application access in {product}"
        }
        (Reason::AccountInactive, ..) => {
            "{product} reports the account as inactive: reactivate the service account or move the integration to an active one"
        }
        (Reason::WrongAccount, ..) => {
            "the credential belongs to another account than expect_account: the integration is using someone else's token; replace it or fix expect_account"
        }
        (Reason::RateLimited, ..) => {
            "{product} is rate limiting this account or site: credwatch waits for Retry-After; if it persists, reduce other traffic from this account"
        }
        (Reason::ServerError, ..) => {
            "{product} answered with a server error: check the node's health (GET /status) and its logs; no verdict on the credential"
        }
        (Reason::Redirected, ..) => {
            "the API answered with a redirect, usually SSO or a login page in front of {product}: check the URL (context path, https) and exempt the REST API from SSO"
        }
        (Reason::UnexpectedResponse, Product::Bitbucket, _) => {
            "the answer was not Bitbucket's REST API (a paged JSON object): check the URL and its context path, and whether a proxy or login page stands in front of the API"
        }
        (Reason::UnexpectedResponse, ..) => {
            "the answer was not {product}'s user object: check the URL and its context path, and whether a proxy or login page stands in front of the API"
        }
        (Reason::TlsError, ..) => {
            "the TLS handshake failed: check the certificate (expiry, host name); for a private CA set ca_file"
        }
        (Reason::DnsError, ..) => {
            "the host name did not resolve: check the URL and DNS from this machine"
        }
        (Reason::ConnectError, ..) => {
            "no connection to {product}: check the URL, the port, firewalls and proxies between this machine and {product}"
        }
        (Reason::Timeout, ..) => {
            "{product} did not answer within the timeout: check the network path and its load, or raise timeout"
        }
    };
    Some(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_but_ok_has_a_hint_for_every_product_and_auth() {
        for product in Product::ALL {
            for auth in AUTHS {
                let of = CredentialType { product, auth };
                for reason in Reason::ALL {
                    let hint = reason.hint(of);
                    assert_eq!(hint.is_none(), reason == Reason::Ok, "{reason} {of:?}");
                    let Some(hint) = hint else { continue };
                    assert!(!hint.contains("{product}"), "{hint}");
                    for other in Product::ALL.into_iter().filter(|p| *p != product) {
                        assert!(
                            !hint.contains(other.title()),
                            "a {product} hint names {other}: {hint}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn confluence_hints_name_confluence_screens_scopes_and_paths() {
        let confluence = |auth| CredentialType {
            product: Product::Confluence,
            auth,
        };
        let scope = Reason::ScopeMismatch
            .hint(confluence(AuthMethod::ApiToken))
            .expect("hint");
        assert!(scope.contains("read:content-details:confluence"), "{scope}");
        assert!(!scope.contains("jira"), "{scope}");
        let site = Reason::ScopedTokenSiteUrl
            .hint(confluence(AuthMethod::ApiToken))
            .expect("hint");
        assert!(site.contains("/ex/confluence/"), "{site}");
        let anonymous = Reason::AnonymousFallback
            .hint(confluence(AuthMethod::Pat))
            .expect("hint");
        assert!(
            anonymous.contains("Settings > Personal Access Tokens"),
            "{anonymous}"
        );
    }
}
