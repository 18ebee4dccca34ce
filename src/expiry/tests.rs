//! The expiry rules, row by row: Jira's PAT list, the organization's list, the declared and
//! the derived expiry, rotation, and the audit of an account's tokens.

use super::*;
use crate::config::parse_date_or_time;

fn at(text: &str) -> DateTime<Utc> {
    parse_date_or_time(text).expect("time")
}

fn connection(extra: &str) -> Connection {
    let text = format!(
        "[[connection]]\nname = \"c\"\nurl = \"https://jira.example.com\"\ntoken = \"t\"\n{extra}\n"
    );
    crate::config::Config::from_sources(&[("t.toml".into(), text)])
        .unwrap_or_else(|e| panic!("{e}"))
        .connections
        .remove(0)
}

fn entry(id: u64, name: &str, expires: Option<&str>, used: Option<&str>) -> PatEntry {
    PatEntry {
        id,
        name: name.to_owned(),
        created_at: Some(at("2026-09-01T00:00:00Z")),
        last_accessed_at: used.map(at),
        expiring_at: expires.map(at),
    }
}

const NOW: &str = "2026-11-22T12:00:00Z";

#[test]
fn the_entry_named_token_name_wins() {
    let conn = connection("token_name = \"credwatch\"");
    let list = Listing::Tokens(vec![
        entry(1, "laptop", Some("2027-01-01T00:00:00Z"), None),
        entry(
            2,
            "credwatch",
            Some("2026-12-03T22:35:14.728+00:00"),
            Some("2026-11-22T11:00:00Z"),
        ),
    ]);
    let a = assess(&conn, Some(&list), at(NOW));
    assert_eq!(a.expires_at, Some(at("2026-12-03T22:35:14.728+00:00")));
    assert_eq!(a.source, Some(Source::Jira));
    assert_eq!(a.never_expires, Some(false));
    assert_eq!(a.last_used_at, Some(at("2026-11-22T11:00:00Z")));
    assert_eq!(
        a.rotation_due,
        Some(true),
        "11 days left, rotate_before 14d"
    );
    assert_eq!(a.note, None);
    assert!(a
        .tokens
        .iter()
        .any(|t| t.name == "credwatch" && t.this_connection));
    assert!(a
        .tokens
        .iter()
        .any(|t| t.name == "laptop" && !t.this_connection));
}

#[test]
fn the_only_entry_is_used_without_token_name_and_several_are_ambiguous() {
    let conn = connection("");
    let one = Listing::Tokens(vec![entry(1, "any", Some("2027-06-01T00:00:00Z"), None)]);
    let a = assess(&conn, Some(&one), at(NOW));
    assert_eq!(
        (a.expires_at, a.source),
        (Some(at("2027-06-01T00:00:00Z")), Some(Source::Jira))
    );
    assert_eq!(a.rotation_due, Some(false));

    let two = Listing::Tokens(vec![
        entry(1, "a", Some("2027-06-01T00:00:00Z"), None),
        entry(2, "b", Some("2027-07-01T00:00:00Z"), None),
    ]);
    let a = assess(&conn, Some(&two), at(NOW));
    assert_eq!(a.expires_at, None);
    assert_eq!(a.rotation_due, None, "nothing tells");
    assert!(
        a.note
            .as_deref()
            .is_some_and(|n| n.contains("set token_name")),
        "{:?}",
        a.note
    );

    let named = connection("token_name = \"missing\"");
    let a = assess(&named, Some(&two), at(NOW));
    assert!(a
        .note
        .as_deref()
        .is_some_and(|n| n.contains("no token named \"missing\"")));
    let dup = Listing::Tokens(vec![entry(1, "x", None, None), entry(2, "x", None, None)]);
    let a = assess(&connection("token_name = \"x\""), Some(&dup), at(NOW));
    assert!(a
        .note
        .as_deref()
        .is_some_and(|n| n.contains("2 tokens are named \"x\"")));
}

#[test]
fn jira_beats_the_configuration_and_a_token_without_expiry_never_expires() {
    let conn = connection("expires_at = \"2026-12-01\"");
    let forever = Listing::Tokens(vec![entry(1, "ci", None, None)]);
    let a = assess(&conn, Some(&forever), at(NOW));
    assert_eq!(a.never_expires, Some(true));
    assert_eq!(
        a.expires_at, None,
        "Jira says never; the configuration loses"
    );
    assert_eq!(a.source, None);
    assert_eq!(a.rotation_due, Some(false));

    let a = assess(&conn, None, at(NOW));
    assert_eq!(
        (a.expires_at, a.source),
        (Some(at("2026-12-01")), Some(Source::Config))
    );
    assert_eq!(a.never_expires, None);
    assert_eq!(a.rotation_due, Some(true), "9 days left");
}

#[test]
fn an_unavailable_api_leaves_the_expiry_unknown_with_a_hint() {
    let a = assess(&connection(""), Some(&Listing::Unavailable(404)), at(NOW));
    assert_eq!(a.expires_at, None);
    assert!(a
        .note
        .as_deref()
        .is_some_and(|n| n.contains("404") && n.contains("8.14")));
    assert_eq!(a.audit, None);
}

#[test]
fn cloud_expiry_is_declared_or_derived_from_created_at() {
    let cloud = |extra: &str| {
        let text = format!(
            "[[connection]]\nname = \"c\"\nurl = \"https://acme.atlassian.net\"\nusername = \"a@b.c\"\ntoken = \"t\"\n{extra}\n"
        );
        crate::config::Config::from_sources(&[("t.toml".into(), text)])
            .unwrap_or_else(|e| panic!("{e}"))
            .connections
            .remove(0)
    };
    let derived = assess(&cloud("created_at = \"2026-01-10\""), None, at(NOW));
    assert_eq!(derived.expires_at, Some(at("2027-01-10")));
    assert_eq!(derived.source, Some(Source::Derived));
    assert_eq!(derived.created_at, Some(at("2026-01-10")));
    assert_eq!(derived.rotation_due, Some(false), "49 days left");
    let declared = assess(
        &cloud("created_at = \"2026-01-10\"\nexpires_at = \"2026-12-01\""),
        None,
        at(NOW),
    );
    assert_eq!(
        (declared.expires_at, declared.source),
        (Some(at("2026-12-01")), Some(Source::Config))
    );
}

#[test]
fn rotation_is_due_by_window_or_by_age() {
    let window = assess(
        &connection("expires_at = \"2026-12-10\"\nrotate_before = \"30d\""),
        None,
        at(NOW),
    );
    assert_eq!(window.rotation_due, Some(true));
    let not_yet = assess(
        &connection("expires_at = \"2026-12-10\"\nrotate_before = \"7d\""),
        None,
        at(NOW),
    );
    assert_eq!(not_yet.rotation_due, Some(false));
    let old = assess(
        &connection("created_at = \"2026-07-01\"\nmax_token_age = \"90d\""),
        None,
        at(NOW),
    );
    assert_eq!(old.rotation_due, Some(true), "144 days old");
    let young = assess(
        &connection("created_at = \"2026-11-01\"\nmax_token_age = \"90d\""),
        None,
        at(NOW),
    );
    assert_eq!(young.rotation_due, Some(false));
    // A token that never expires is still due when it is too old.
    let forever = Listing::Tokens(vec![entry(1, "ci", None, None)]);
    let aged = assess(
        &connection("max_token_age = \"30d\""),
        Some(&forever),
        at(NOW),
    );
    assert_eq!(
        aged.rotation_due,
        Some(true),
        "created 2026-09-01 by Jira's list"
    );
}

#[test]
fn the_audit_counts_every_token_of_the_account() {
    let list = Listing::Tokens(vec![
        entry(
            1,
            "fresh",
            Some("2027-01-01T00:00:00Z"),
            Some("2026-11-20T00:00:00Z"),
        ),
        entry(
            2,
            "stale",
            Some("2027-01-01T00:00:00Z"),
            Some("2026-05-01T00:00:00Z"),
        ),
        entry(3, "never-used", Some("2027-01-01T00:00:00Z"), None),
        entry(
            4,
            "gone",
            Some("2026-10-01T00:00:00Z"),
            Some("2026-09-30T00:00:00Z"),
        ),
        entry(5, "forever", None, Some("2026-11-21T00:00:00Z")),
    ]);
    let a = assess(&connection("token_name = \"fresh\""), Some(&list), at(NOW));
    assert_eq!(
        a.audit,
        Some(Audit {
            active: 4,
            expired: 1,
            unused: 2,
            never_expiring: 1
        })
    );
    let stale = a.tokens.iter().find(|t| t.name == "stale").expect("stale");
    assert!(stale.unused && stale.status == "active");
}

#[test]
fn jira_list_answers_parse() {
    let body = br#"[{"id":58,"name":"test","createdAt":"2026-09-04T22:35:14.728+00:00","lastAccessedAt":"2026-09-04T22:55:16.025+00:00","expiringAt":"2026-12-03T22:35:14.728+00:00"},{"id":59,"name":"forever","createdAt":"2026-01-01T00:00:00.000+00:00"}]"#;
    let entries = parse_pat_list(body).expect("list");
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0].expiring_at,
        Some(at("2026-12-03T22:35:14.728+00:00"))
    );
    assert_eq!(
        entries[0].expiring_at.map(|e| e.timestamp_millis()),
        Some(1_796_337_314_728)
    );
    assert_eq!(entries[1].expiring_at, None);
    assert_eq!(entries[1].last_accessed_at, None);
    assert!(parse_pat_list(b"<html>login</html>").is_none());
    assert!(parse_pat_list(br#"{"errorMessages":[]}"#).is_none());
}

#[test]
fn the_organizations_list_gives_a_cloud_token_its_expiry_and_says_why_not() {
    let text = "[[atlassian_org]]\nname = \"acme\"\norg_id = \"o\"\napi_key = \"k\"\n\n[[connection]]\nname = \"c\"\nurl = \"https://acme.atlassian.net\"\nusername = \"bot@acme.example\"\ntoken = \"t\"\ncreated_at = \"2026-01-01\"\norg = \"acme\"\n";
    let conn = crate::config::Config::from_sources(&[("t.toml".into(), text.to_owned())])
        .unwrap_or_else(|e| panic!("{e}"))
        .connections
        .remove(0);
    let token = crate::org::OrgToken {
        id: "t".into(),
        label: "ci".into(),
        status: crate::org::TokenStatus::Allowed,
        email: "bot@acme.example".into(),
        created_at: Some(at("2026-05-01T00:00:00Z")),
        expires_at: Some(at("2026-12-01T00:00:00Z")),
        last_active_at: Some(at("2026-11-30T00:00:00Z")),
    };
    let matched = Listing::Org(crate::org::OrgMatch {
        org: "acme".into(),
        token: Some(token),
        note: None,
    });
    let a = assess(&conn, Some(&matched), at(NOW));
    assert_eq!(a.source, Some(Source::OrgAdmin));
    assert_eq!(a.expires_at, Some(at("2026-12-01T00:00:00Z")));
    assert_eq!(
        a.created_at,
        Some(at("2026-05-01T00:00:00Z")),
        "the list's, not created_at"
    );
    assert_eq!(a.rotation_due, Some(true), "within rotate_before");
    assert_eq!(
        known_expiry(&conn, Some(&matched)),
        Some(at("2026-12-01T00:00:00Z"))
    );
    // No match: the derived expiry stands, and the note says why.
    let unmatched = Listing::Org(crate::org::OrgMatch {
        org: "acme".into(),
        token: None,
        note: Some("set token_label".into()),
    });
    let b = assess(&conn, Some(&unmatched), at(NOW));
    assert_eq!(b.source, Some(Source::Derived));
    assert_eq!(b.note.as_deref(), Some("set token_label"));
    // A reload removed `org`: the listing left behind is not this connection's any more.
    let plain = connection(
        "kind = \"cloud\"\nusername = \"bot@acme.example\"\ncreated_at = \"2026-01-01\"",
    );
    let c = assess(&plain, Some(&matched), at(NOW));
    assert_eq!(c.source, Some(Source::Derived));
    assert_eq!(known_expiry(&plain, Some(&matched)), c.expires_at);
}
