//! The demo fleet's Jira connections: Data Center and Cloud sites whose accounts, between them,
//! show every state and most reasons credwatch reports, and the Acme organization's admin API.

use chrono::{Duration, Utc};

use super::{member, Member, ORG_API, ORG_API_KEY, ORG_ID};
use crate::admin::{OrgApi, OrgApiToken};
use crate::oauth::OAuthClient;
use crate::{ApiToken, Front, Pat, Simulator, Site, User};

/// The fleet's Jira connections.
pub(super) fn members() -> Vec<Member> {
    vec![
        Member {
            username: Some("sync-bot@acme.example"),
            org: true,
            team: "data",
            ..member(
                "cloud-sync-bot",
                Some("acme-cloud"),
                "cloud",
                "api_token",
                "demo-cloud-token-sync",
                "valid",
                "ok",
            )
        },
        Member {
            username: Some("old-bot@acme.example"),
            org: true,
            ..member(
                "cloud-blocked-bot",
                Some("acme-cloud"),
                "cloud",
                "api_token",
                "demo-cloud-token-blocked",
                "invalid",
                "blocked_by_admin",
            )
        },
        Member {
            token_name: Some("credwatch"),
            expect_account: Some("svc-ci"),
            ..member(
                "dc-ci-pipeline",
                Some("dc-prod"),
                "server",
                "pat",
                "demo-pat-ci",
                "valid",
                "ok",
            )
        },
        Member {
            token_name: Some("sync"),
            team: "data",
            ..member(
                "dc-sync-expiring",
                Some("dc-prod"),
                "server",
                "pat",
                "demo-pat-sync",
                "valid",
                "ok",
            )
        },
        Member {
            token_name: Some("reports"),
            team: "data",
            ..member(
                "dc-reports",
                Some("dc-prod"),
                "server",
                "pat",
                "demo-pat-reports",
                "valid",
                "ok",
            )
        },
        member(
            "dc-legacy-bot",
            Some("dc-prod"),
            "server",
            "pat",
            "demo-pat-forever",
            "valid",
            "ok",
        ),
        Member {
            team: "support",
            ..member(
                "dc-revoked-bot",
                Some("dc-prod"),
                "server",
                "pat",
                "demo-pat-revoked",
                "invalid",
                "unauthorized",
            )
        },
        Member {
            expect_account: Some("svc-sync"),
            ..member(
                "dc-borrowed-token",
                Some("dc-prod"),
                "server",
                "pat",
                "demo-pat-jdoe",
                "invalid",
                "wrong_account",
            )
        },
        Member {
            username: Some("svc-legacy"),
            ..member(
                "dc-locked-basic",
                Some("dc-legacy"),
                "server",
                "basic",
                "demo-right-password",
                "locked",
                "captcha_required",
            )
        },
        Member {
            username: Some("svc-hardened"),
            ..member(
                "dc-basic-disabled",
                Some("dc-hardened"),
                "server",
                "basic",
                "demo-password",
                "forbidden",
                "basic_auth_disabled",
            )
        },
        Member {
            username: Some("ops@acme.example"),
            expires_in_days: Some(300),
            ..member(
                "cloud-ops",
                Some("acme-cloud"),
                "cloud",
                "api_token",
                "demo-cloud-token-ops",
                "valid",
                "ok",
            )
        },
        Member {
            username: Some("analyst@acme.example"),
            team: "data",
            ..member(
                "cloud-password",
                Some("acme-cloud"),
                "cloud",
                "api_token",
                "demo-cloud-account-password",
                "invalid",
                "password_auth_deprecated",
            )
        },
        Member {
            username: Some("bot@acme.example"),
            // Created 340 days ago: the derived expiry is 25 days away.
            created_days_ago: Some(340),
            ..member(
                "cloud-burst-limited",
                Some("acme-cloud-busy"),
                "cloud",
                "api_token",
                "demo-cloud-token-bot",
                "valid",
                "ok",
            )
        },
        Member {
            username: Some("automation@serviceaccount.atlassian.com"),
            team: "data",
            extra: "scoped = true\ngateway_url = \"{gateway}\"\n",
            ..member(
                "cloud-scoped-sa",
                Some("acme-cloud"),
                "cloud",
                "api_token",
                "demo-scoped-token",
                "valid",
                "ok",
            )
        },
        Member {
            username: Some("reporter@serviceaccount.atlassian.com"),
            // Not `scoped`: the site rejects it, the gateway accepts it.
            extra: "gateway_url = \"{gateway}\"\n",
            ..member(
                "cloud-scoped-on-site",
                Some("acme-cloud"),
                "cloud",
                "api_token",
                "demo-scoped-site-token",
                "invalid",
                "scoped_token_site_url",
            )
        },
        Member {
            extra: "client_id = \"demo-cloud-client\"\ngateway_url = \"{gateway}\"\ntoken_url = \"{auth}/oauth/token\"\n",
            ..member(
                "cloud-oauth-sa",
                Some("acme-cloud"),
                "cloud",
                "oauth_client_credentials",
                "demo-cloud-client-secret",
                "valid",
                "ok",
            )
        },
        Member {
            extra: "client_id = \"demo-dc-client\"\n",
            ..member(
                "dc-oauth-sa",
                Some("dc-prod"),
                "server",
                "oauth_client_credentials",
                "demo-dc-client-secret",
                "valid",
                "ok",
            )
        },
        member(
            "dc-unreachable",
            None,
            "server",
            "pat",
            "demo-pat-unreachable",
            "unknown",
            "connect_error",
        ),
        member(
            "dc-behind-sso",
            Some("dc-sso"),
            "server",
            "pat",
            "demo-pat-sso",
            "unknown",
            "redirected",
        ),
    ]
}

/// Installs the fleet's Jira sites and accounts, and the organization's admin API.
pub(super) fn install(simulator: &Simulator) {
    let now = Utc::now();
    let mut revoked = Pat::new(5, "old-support-bot", "demo-pat-revoked", Some(90));
    revoked.revoked = true;
    simulator.add_site(
        "dc-prod",
        Site::server()
            .with_user(User::new("svc-ci").with_pat(Pat::new(
                1,
                "credwatch",
                "demo-pat-ci",
                Some(200),
            )))
            .with_user(
                User::new("svc-sync")
                    .with_pat(Pat::new(2, "sync", "demo-pat-sync", Some(3)))
                    .with_pat(Pat::new(3, "reports", "demo-pat-reports", Some(20))),
            )
            .with_user(User::new("svc-legacy-bot").with_pat(Pat::new(
                4,
                "legacy",
                "demo-pat-forever",
                None,
            )))
            .with_user(User::new("svc-support").with_pat(revoked))
            .with_user(User::new("svc-dc-sa"))
            .with_oauth_client(OAuthClient::new(
                "demo-dc-client",
                "demo-dc-client-secret",
                "svc-dc-sa",
            ))
            .with_user(User::new("jdoe").with_pat(Pat::new(
                6,
                "my laptop",
                "demo-pat-jdoe",
                Some(60),
            ))),
    );
    let mut locked = User::new("svc-legacy").with_password("demo-right-password");
    locked.failed_logins = 3;
    simulator.add_site("dc-legacy", Site::server().with_user(locked));
    let mut hardened =
        Site::server().with_user(User::new("svc-hardened").with_password("demo-password"));
    hardened.basic_auth_enabled = false;
    simulator.add_site("dc-hardened", hardened);
    let mut ops_token = ApiToken::new("demo-cloud-token-ops");
    ops_token.expires_at = Some(now + Duration::days(300));
    let mut sync_token = ApiToken::new("demo-cloud-token-sync");
    sync_token.expires_at = Some(now + Duration::days(5));
    let mut blocked_token = ApiToken::new("demo-cloud-token-blocked");
    blocked_token.revoked = true;
    simulator.add_site(
        "acme-cloud",
        Site::cloud()
            .with_user(
                User::new("ops")
                    .with_email("ops@acme.example")
                    .with_api_token(ops_token),
            )
            .with_user(
                User::new("sync-bot")
                    .with_email("sync-bot@acme.example")
                    .with_api_token(sync_token),
            )
            .with_user(
                User::new("old-bot")
                    .with_email("old-bot@acme.example")
                    .with_api_token(blocked_token),
            )
            .with_user(
                User::new("analyst")
                    .with_email("analyst@acme.example")
                    .with_password("demo-cloud-account-password"),
            )
            // Service accounts: two with scoped API tokens, one with an OAuth 2.0 client.
            .with_user(
                User::new("automation")
                    .with_email("automation@serviceaccount.atlassian.com")
                    .with_api_token(ApiToken::scoped("demo-scoped-token")),
            )
            .with_user(
                User::new("reporter")
                    .with_email("reporter@serviceaccount.atlassian.com")
                    .with_api_token(ApiToken::scoped("demo-scoped-site-token")),
            )
            .with_user(User::new("sync-sa").with_email("sync-sa@serviceaccount.atlassian.com"))
            .with_oauth_client(OAuthClient::new(
                "demo-cloud-client",
                "demo-cloud-client-secret",
                "sync-sa@serviceaccount.atlassian.com",
            )),
    );
    simulator.add_site(
        "acme-cloud-busy",
        Site::cloud()
            .with_user(
                User::new("bot")
                    .with_email("bot@acme.example")
                    .with_api_token(ApiToken::new("demo-cloud-token-bot")),
            )
            .with_front(Front::Throttle {
                remaining: 1,
                status: 429,
                retry_after: Some("3".to_owned()),
            }),
    );
    // The organization admin API of the Acme organization: the sync bot's token expires in 5
    // days, an admin blocked the old bot's, a report token has not been used for 200 days and
    // an intern's was never used.
    let mut blocked = OrgApiToken::new("old-bot@acme.example", "jira-sync", 120);
    blocked.blocked = true;
    let mut stale = OrgApiToken::new("reports@acme.example", "reports", 150);
    stale.last_active_at = Some(now - Duration::days(200));
    let mut never = OrgApiToken::new("intern@acme.example", "trying things", 80);
    never.last_active_at = None;
    simulator.add_org_api(
        ORG_API,
        OrgApi::new(ORG_ID, ORG_API_KEY)
            .with_token(OrgApiToken::new("sync-bot@acme.example", "jira-sync", 5))
            .with_token(blocked)
            .with_token(stale)
            .with_token(never)
            .with_token(OrgApiToken::new("ops@acme.example", "ops", 300)),
    );
    simulator.add_site(
        "dc-sso",
        Site::server().with_front(Front::Redirect(
            "https://idp.example.com/saml/login?RelayState=jira".to_owned(),
        )),
    );
}
