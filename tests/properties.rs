//! Property tests: the classifier never panics on any status, headers or body and keeps its
//! invariants; the configuration loader never panics on any input and always names the
//! problem; `Retry-After` and Jira's dates round-trip.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use credwatch::config::{parse_date_or_time, Config, Kind, Product};
use credwatch::probe::classify::{classify, classify_after, Answer, Expectation, LastMyself};
use credwatch::probe::{Reason, RetryAfter, State};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use proptest::prelude::*;

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x-seraph-loginreason".to_owned()),
        Just("x-ausername".to_owned()),
        Just("x-authentication-denied-reason".to_owned()),
        Just("retry-after".to_owned()),
        Just("location".to_owned()),
        Just("x-ratelimit-remaining".to_owned()),
        Just("x-ratelimit-reset".to_owned()),
        "[a-z][a-z0-9-]{0,15}",
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"AUTHENTICATED_FAILED".to_vec()),
        Just(b"AUTHENTICATION_DENIED".to_vec()),
        Just(b"OK, AUTHORISATION_FAILED".to_vec()),
        Just(b"anonymous".to_vec()),
        Just(b"CAPTCHA_CHALLENGE; login-url=x".to_vec()),
        Just(b"Sun, 22 Nov 2026 10:05:00 GMT".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "[ -~]{0,200}".prop_map(String::into_bytes),
        (any::<bool>(), "[a-z@.]{0,10}", "[a-z0-9]{0,10}").prop_map(|(active, name, id)| {
            format!(r#"{{"name":"{name}","accountId":"{id}","emailAddress":"{name}","displayName":"x","active":{active}}}"#).into_bytes()
        }),
        Just(b"Basic Authentication has been disabled on this instance.".to_vec()),
        Just(b"Basic authentication with passwords is deprecated.".to_vec()),
        Just(br#"{"error": "Failed to parse Connect Session Auth Token"}"#.to_vec()),
        Just(br#"{"code":401,"message":"Unauthorized; scope does not match"}"#.to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_classifier_never_panics_and_keeps_its_invariants(
        status in 100u16..=599,
        headers in proptest::collection::vec((header_name(), header_value()), 0..6),
        body in body(),
        truncated in any::<bool>(),
        cloud in any::<bool>(),
        confluence in any::<bool>(),
        expect in proptest::option::of("[A-Za-z@.]{0,12}"),
        expired in any::<bool>(),
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in &headers {
            // Only fields that could arrive: hyper refuses the rest of the head.
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
                map.append(name, value);
            }
        }
        let now = Utc::now();
        let answer = Answer { status: StatusCode::from_u16(status).expect("in range"), headers: map, body: body.clone(), truncated };
        let expectation = Expectation {
            product: if confluence { Product::Confluence } else { Product::Jira },
            kind: if cloud { Kind::Cloud } else { Kind::Server },
            expect_account: expect.as_deref(),
            expires_at: Some(if expired { now - chrono::Duration::days(1) } else { now + chrono::Duration::days(1) }),
            blocked_by_admin: false,
            now,
        };
        let verdict = classify(&answer, &expectation);
        prop_assert_eq!(verdict.state == State::Valid, verdict.reason == Reason::Ok);
        if matches!(verdict.reason, Reason::RateLimited | Reason::ServerError | Reason::Redirected | Reason::UnexpectedResponse) {
            prop_assert_eq!(verdict.state, State::Unknown);
        }
        if verdict.state == State::Valid {
            prop_assert_eq!(status, 200);
            prop_assert!(verdict.identity.is_some());
        }
        if verdict.state == State::Expired {
            prop_assert!(expired);
        }
    }

    #[test]
    fn the_config_loader_never_panics_on_arbitrary_text_and_names_the_file(text in "\\PC{0,300}") {
        check_loader(text)?;
    }

    #[test]
    fn the_config_loader_never_panics_on_near_valid_configurations(
        lines in proptest::collection::vec((key(), value()), 0..12),
        defaults in proptest::collection::vec((key(), value()), 0..3),
    ) {
        let mut text = String::from("[defaults]\n");
        for (key, value) in defaults {
            text.push_str(&format!("{key} = {value}\n"));
        }
        text.push_str("[[connection]]\n");
        for (key, value) in lines {
            text.push_str(&format!("{key} = {value}\n"));
        }
        check_loader(text)?;
    }

    #[test]
    fn a_connection_remembering_its_last_body_classifies_as_if_it_did_not(
        bodies in proptest::collection::vec(body(), 1..4),
        answers in proptest::collection::vec((prop_oneof![Just(200u16), Just(401), Just(503)], 0usize..4, any::<bool>()), 1..12),
        expect in proptest::option::of("[a-z@.]{0,4}"),
    ) {
        // A few bodies over and over, as a connection sees them: each answer classifies alike
        // with the connection's memory of its last body and without any.
        let headers = HeaderMap::new();
        let expectation = Expectation { product: Product::Jira, kind: Kind::Server, expect_account: expect.as_deref(), expires_at: None, blocked_by_admin: false, now: Utc::now() };
        let mut last = LastMyself::default();
        for (status, body, truncated) in answers {
            let answer = Answer {
                status: StatusCode::from_u16(status).expect("in range"),
                headers: headers.clone(),
                body: bodies[body % bodies.len()].clone(),
                truncated,
            };
            let remembered = classify_after(&answer, &expectation, &mut last);
            prop_assert_eq!(remembered, classify(&answer, &expectation));
        }
    }

    #[test]
    fn retry_after_seconds_round_trip(seconds in any::<u64>()) {
        let header = RetryAfter::Seconds(seconds).to_string();
        prop_assert_eq!(RetryAfter::parse(&header), Some(RetryAfter::Seconds(seconds)));
    }

    #[test]
    fn retry_after_dates_round_trip(seconds in 0i64..253_402_300_799) {
        let date = DateTime::from_timestamp(seconds, 0).expect("in range");
        let header = RetryAfter::Date(date).to_string();
        prop_assert_eq!(RetryAfter::parse(&header), Some(RetryAfter::Date(date)));
    }

    #[test]
    fn jira_dates_round_trip(millis in 0i64..253_402_300_799_000) {
        let time = DateTime::from_timestamp_millis(millis).expect("in range");
        let text = credwatch::sim::answer::jira_date(time);
        prop_assert!(text.ends_with("+00:00"), "{}", text);
        prop_assert_eq!(parse_date_or_time(&text), Some(time));
        let list = format!(r#"[{{"id":1,"name":"t","createdAt":"{text}","expiringAt":"{text}"}}]"#);
        let entries = credwatch::expiry::parse_pat_list(list.as_bytes()).expect("a list");
        prop_assert_eq!(entries[0].expiring_at, Some(time));
    }
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "name",
            "url",
            "kind",
            "auth",
            "username",
            "token",
            "token_env",
            "token_file",
            "password",
            "password_file",
            "expect_account",
            "expires_at",
            "created_at",
            "token_name",
            "interval",
            "timeout",
            "rotate_before",
            "max_token_age",
            "labels",
            "ca_file",
            "allow_insecure_http",
            "backoff_initial",
            "backoff_max",
            "max_concurrent_probes",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,10}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\"[ -~&&[^\"\\\\]]{0,30}\"",
        Just("\"https://jira.example.com\"".to_owned()),
        Just("\"http://10.0.0.1\"".to_owned()),
        Just("\"5m\"".to_owned()),
        Just("\"server\"".to_owned()),
        Just("\"cloud\"".to_owned()),
        Just("\"pat\"".to_owned()),
        Just("\"basic\"".to_owned()),
        Just("\"2027-02-30\"".to_owned()),
        Just("{ team = \"x\" }".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("[1, 2]".to_owned()),
    ]
}

fn check_loader(text: String) -> Result<(), TestCaseError> {
    match Config::from_sources(&[(PathBuf::from("fuzz.toml"), text)]) {
        Ok(config) => prop_assert!(!config.connections.is_empty()),
        Err(errors) => {
            prop_assert!(!errors.0.is_empty());
            for error in &errors.0 {
                let shown = error.to_string();
                prop_assert!(shown.starts_with("fuzz.toml"), "{}", shown);
                prop_assert!(!error.message.trim().is_empty(), "{}", shown);
            }
        }
    }
    Ok(())
}
