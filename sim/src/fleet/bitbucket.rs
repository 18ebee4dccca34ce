//! The demo fleet's Bitbucket Data Center connections: a build pipeline's valid personal HTTP
//! access token, a release token that expires within days (both expiries read from the
//! owner's token list), a revoked token, a project token (whose system-generated user has no
//! token list of its own) and a service account locked behind the CAPTCHA after 5 failed
//! logins.

use super::{member, Member};
use crate::{Pat, Simulator, Site, User};

/// The fleet's Bitbucket connections.
pub(super) fn members() -> Vec<Member> {
    let bitbucket = |member: Member| Member {
        product: "bitbucket",
        team: "build",
        ..member
    };
    vec![
        Member {
            token_name: Some("ci-clone"),
            expect_account: Some("svc-build"),
            ..bitbucket(member(
                "bb-ci-clone",
                Some("bitbucket"),
                "server",
                "pat",
                "demo-bb-token-ci",
                "valid",
                "ok",
            ))
        },
        Member {
            token_name: Some("release"),
            ..bitbucket(member(
                "bb-release-expiring",
                Some("bitbucket"),
                "server",
                "pat",
                "demo-bb-token-release",
                "valid",
                "ok",
            ))
        },
        bitbucket(member(
            "bb-revoked-token",
            Some("bitbucket"),
            "server",
            "pat",
            "demo-bb-token-revoked",
            "invalid",
            "unauthorized",
        )),
        bitbucket(member(
            "bb-project-deploy",
            Some("bitbucket"),
            "server",
            "pat",
            "demo-bb-project-token",
            "valid",
            "ok",
        )),
        Member {
            username: Some("svc-mirror"),
            ..bitbucket(member(
                "bb-legacy-basic",
                Some("bitbucket"),
                "server",
                "basic",
                "demo-bb-right-password",
                "locked",
                "captcha_required",
            ))
        },
    ]
}

/// Installs the fleet's Bitbucket site and accounts.
pub(super) fn install(simulator: &Simulator) {
    let mut revoked = Pat::new(23, "old-ci", "demo-bb-token-revoked", Some(90));
    revoked.revoked = true;
    let mut locked = User::new("svc-mirror").with_password("demo-bb-right-password");
    locked.failed_logins = 5;
    simulator.add_site(
        "bitbucket",
        Site::bitbucket()
            .with_user(
                User::new("svc-build")
                    .with_pat(Pat::new(21, "ci-clone", "demo-bb-token-ci", Some(180)))
                    .with_pat(Pat::new(24, "laptop", "demo-bb-token-laptop", Some(30)))
                    .with_pat(Pat::new(25, "reports", "demo-bb-token-reports", None)),
            )
            .with_user(User::new("svc-release").with_pat(Pat::new(
                22,
                "release",
                "demo-bb-token-release",
                Some(4),
            )))
            .with_user(User::new("svc-old-ci").with_pat(revoked))
            .with_user(User::token_bot(
                "project-deploy-bot",
                Pat::new(26, "deploy", "demo-bb-project-token", Some(60)),
            ))
            .with_user(locked),
    );
}
