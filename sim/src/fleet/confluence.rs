//! The demo fleet's Confluence connections: a Data Center site with a publisher's valid
//! token, an export token that expires within days, a revoked token (which Confluence answers
//! with the anonymous user, not a 401) and a service account locked behind the CAPTCHA, and a
//! Cloud site (under `/wiki`) with a valid API token.

use chrono::{Duration, Utc};

use super::{member, Member};
use crate::{ApiToken, Pat, Simulator, Site, User};

/// The fleet's Confluence connections.
pub(super) fn members() -> Vec<Member> {
    let confluence = |member: Member| Member {
        product: "confluence",
        team: "docs",
        ..member
    };
    vec![
        Member {
            token_name: Some("publisher"),
            expect_account: Some("svc-publisher"),
            ..confluence(member(
                "wiki-dc-publisher",
                Some("wiki-dc"),
                "server",
                "pat",
                "demo-wiki-pat-publisher",
                "valid",
                "ok",
            ))
        },
        Member {
            token_name: Some("export"),
            ..confluence(member(
                "wiki-dc-export-expiring",
                Some("wiki-dc"),
                "server",
                "pat",
                "demo-wiki-pat-export",
                "valid",
                "ok",
            ))
        },
        confluence(member(
            "wiki-dc-revoked-pat",
            Some("wiki-dc"),
            "server",
            "pat",
            "demo-wiki-pat-revoked",
            "invalid",
            "anonymous_fallback",
        )),
        Member {
            username: Some("svc-wiki-legacy"),
            ..confluence(member(
                "wiki-dc-legacy-basic",
                Some("wiki-dc"),
                "server",
                "basic",
                "demo-wiki-right-password",
                "locked",
                "captcha_required",
            ))
        },
        Member {
            username: Some("docs-bot@acme.example"),
            path: "/wiki",
            created_days_ago: Some(100),
            ..confluence(member(
                "wiki-cloud-docs-bot",
                Some("acme-wiki"),
                "cloud",
                "api_token",
                "demo-wiki-cloud-token",
                "valid",
                "ok",
            ))
        },
    ]
}

/// Installs the fleet's Confluence sites and accounts.
pub(super) fn install(simulator: &Simulator) {
    let mut revoked = Pat::new(13, "importer", "demo-wiki-pat-revoked", Some(120));
    revoked.revoked = true;
    let mut locked = User::new("svc-wiki-legacy").with_password("demo-wiki-right-password");
    locked.failed_logins = 3;
    simulator.add_site(
        "wiki-dc",
        Site::confluence_server()
            .with_user(User::new("svc-publisher").with_pat(Pat::new(
                11,
                "publisher",
                "demo-wiki-pat-publisher",
                Some(240),
            )))
            .with_user(User::new("svc-export").with_pat(Pat::new(
                12,
                "export",
                "demo-wiki-pat-export",
                Some(6),
            )))
            .with_user(User::new("svc-importer").with_pat(revoked))
            .with_user(locked),
    );
    let mut docs_token = ApiToken::new("demo-wiki-cloud-token");
    docs_token.expires_at = Some(Utc::now() + Duration::days(265));
    simulator.add_site(
        "acme-wiki",
        Site::confluence_cloud().with_user(
            User::new("docs-bot")
                .with_email("docs-bot@acme.example")
                .with_api_token(docs_token),
        ),
    );
}
