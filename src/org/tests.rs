//! The pure parts of the organization admin API: a page parsed, a connection matched to its
//! token, a block as a fact for the classifier, and the inventory counted.

use chrono::{DateTime, Duration, Utc};

use super::list::parse_page;
use super::*;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

fn token(
    email: &str,
    label: &str,
    status: TokenStatus,
    expires_in_days: i64,
    used_days_ago: Option<i64>,
) -> OrgToken {
    OrgToken {
        id: format!("{email}/{label}"),
        label: label.to_owned(),
        status,
        email: email.to_owned(),
        created_at: Some(now() - Duration::days(100)),
        expires_at: Some(now() + Duration::days(expires_in_days)),
        last_active_at: used_days_ago.map(|d| now() - Duration::days(d)),
    }
}

fn cloud(extra: &str) -> Connection {
    let text = format!(
        "[[atlassian_org]]\nname = \"acme\"\norg_id = \"o-1\"\napi_key = \"k\"\n\n[[connection]]\nname = \"c\"\nurl = \"https://acme.atlassian.net\"\nusername = \"Bot@Acme.example\"\ntoken = \"t\"\norg = \"acme\"\n{extra}\n"
    );
    crate::config::Config::from_sources(&[("t.toml".into(), text)])
        .unwrap_or_else(|e| panic!("{e}"))
        .connections
        .remove(0)
}

#[test]
fn a_page_of_the_admin_api_parses_with_its_next_link() {
    let body = br#"{"data":[{"id":"t1","label":"ci","status":"ALLOWED","createdAt":"2026-01-01T00:00:00Z","expiresAt":"2027-01-01T00:00:00.000Z","lastActiveAt":null,"user":{"id":"u1","orgId":"o-1","name":"Bot","email":"bot@acme.example"},"scopes":[]},{"id":"t2","label":"old","status":"BLOCKED","createdAt":"2025-06-01T00:00:00Z","expiresAt":"2026-06-01T00:00:00Z","user":{"email":"ops@acme.example"}}],"links":{"self":"x","next":"b2Zmc2V0PTI="}}"#;
    let (tokens, next) = parse_page(body).expect("a page");
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0].label, "ci");
    assert_eq!(tokens[0].status, TokenStatus::Allowed);
    assert_eq!(tokens[0].last_active_at, None);
    assert_eq!(tokens[1].status, TokenStatus::Blocked);
    assert_eq!(next.as_deref(), Some("b2Zmc2V0PTI="));
    let (_, last) = parse_page(br#"{"data":[],"links":{"self":"x"}}"#).expect("last page");
    assert_eq!(last, None);
    assert!(parse_page(b"<html>login</html>").is_err());
    // A status added since, and an entry without its user: skipped or kept, never the page.
    let (odd, _) = parse_page(
        br#"{"data":[{"id":"x","status":"MAYBE","user":{}},{"id":"y","status":"allowed"}]}"#,
    )
    .expect("a page");
    assert_eq!(odd.len(), 1);
    assert_eq!((odd[0].id.as_str(), odd[0].email.as_str()), ("y", ""));
}

#[test]
fn a_connection_matches_by_label_by_the_only_token_or_not_at_all() {
    let tokens = vec![
        token("bot@acme.example", "ci", TokenStatus::Allowed, 20, Some(1)),
        token(
            "bot@acme.example",
            "sync",
            TokenStatus::Allowed,
            200,
            Some(1),
        ),
        token("ops@acme.example", "ops", TokenStatus::Allowed, 50, None),
    ];
    // Two tokens and no label: ambiguous, and the note says what to set.
    let ambiguous = match_token(&cloud(""), "acme", &tokens);
    assert_eq!(ambiguous.token, None);
    assert!(
        ambiguous
            .note
            .as_deref()
            .is_some_and(|n| n.contains("set token_label")),
        "{ambiguous:?}"
    );
    // The label picks one; the email matches without regard to case.
    let by_label = match_token(&cloud("token_label = \"sync\""), "acme", &tokens);
    assert_eq!(
        by_label.token.as_ref().map(|t| t.label.as_str()),
        Some("sync")
    );
    let wrong_label = match_token(&cloud("token_label = \"nope\""), "acme", &tokens);
    assert!(
        wrong_label
            .note
            .as_deref()
            .is_some_and(|n| n.contains("\"ci\", \"sync\"")),
        "{wrong_label:?}"
    );
    // The only token of the account.
    let only = match_token(&cloud(""), "acme", &tokens[2..]);
    assert!(only.token.is_none(), "not this account's");
    let single = match_token(&cloud(""), "acme", &tokens[..1]);
    assert_eq!(single.token.as_ref().map(|t| t.label.as_str()), Some("ci"));
    // Two tokens with the same label.
    let twins = vec![tokens[0].clone(), tokens[0].clone()];
    let twice = match_token(&cloud("token_label = \"ci\""), "acme", &twins);
    assert!(
        twice
            .note
            .as_deref()
            .is_some_and(|n| n.contains("unique label")),
        "{twice:?}"
    );
}

#[test]
fn a_blocked_token_is_a_fact_known_before_the_probe() {
    let blocked = OrgMatch {
        org: "acme".into(),
        token: Some(token(
            "bot@acme.example",
            "ci",
            TokenStatus::Blocked,
            20,
            None,
        )),
        note: None,
    };
    let connection = cloud("");
    let facts = crate::expiry::facts(
        &connection,
        Some(&crate::expiry::Listing::Org(blocked.clone())),
    );
    assert!(facts.blocked_by_admin);
    // Allowed in the list: nothing to tell the classifier but the expiry.
    let allowed = OrgMatch {
        token: Some(token(
            "bot@acme.example",
            "ci",
            TokenStatus::Allowed,
            20,
            None,
        )),
        ..blocked
    };
    let facts = crate::expiry::facts(&connection, Some(&crate::expiry::Listing::Org(allowed)));
    assert!(!facts.blocked_by_admin);
    assert!(facts.known_expiry.is_some());
}

#[test]
fn the_inventory_counts_statuses_expiry_windows_and_unused_tokens() {
    let tokens = vec![
        token("a@x", "soon", TokenStatus::Allowed, 3, Some(1)),
        token("b@x", "month", TokenStatus::Allowed, 20, Some(200)),
        token("c@x", "later", TokenStatus::Allowed, 200, None),
        token("d@x", "gone", TokenStatus::Allowed, -2, Some(1)),
        token("e@x", "blocked", TokenStatus::Blocked, 5, Some(1)),
    ];
    let inventory = Inventory::of(&tokens, std::time::Duration::from_secs(90 * 86_400), now());
    assert_eq!(
        inventory,
        Inventory {
            allowed: 3,
            blocked: 1,
            expired: 1,
            expiring_7d: 1,
            expiring_30d: 2,
            unused: 2,
        }
    );
}
