//! The fuzz targets' bodies: one function per parser of untrusted input, taking raw bytes and
//! panicking when an invariant breaks. `fuzz/` (cargo fuzz, libFuzzer) calls them on generated
//! inputs; `tests/fuzz_regressions.rs` calls them, on stable Rust, on every input kept under
//! `fuzz/regressions/`, so that a crash once found stays fixed. See FUZZING.md.
//!
//! Not part of credwatch's interface: hidden from the docs, kept public for those two callers.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::config::{Config, Kind, Product};
use crate::probe::classify::{classify, Answer, Expectation};
use crate::probe::{Reason, RetryAfter, State};

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, as `fuzz/fuzz_targets/` and `fuzz/regressions/` name them.
pub const TARGETS: [(&str, Target); 7] = [
    ("config", config),
    ("classify", classify_answer),
    ("pat_list", pat_list),
    ("org_list", org_list),
    ("retry_after", retry_after),
    ("web_config", web_config),
    ("oauth", oauth_answers),
];

/// The configuration loader: any text loads or fails with errors that name the file.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    match Config::from_sources(&[(PathBuf::from("fuzz.toml"), text)]) {
        Ok(config) => assert!(
            !config.connections.is_empty(),
            "a configuration without connections loaded"
        ),
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without a mistake");
            for error in &errors.0 {
                let shown = error.to_string();
                assert!(
                    shown.starts_with("fuzz.toml"),
                    "the error does not name the file: {shown}"
                );
                assert!(
                    !error.message.trim().is_empty(),
                    "an empty message: {shown}"
                );
            }
        }
    }
}

/// Reads a byte, or 0 past the end.
fn byte(data: &[u8], at: usize) -> u8 {
    data.get(at).copied().unwrap_or(0)
}

/// The classifier on an answer read from `data`: two bytes of status (100 to 599), a byte of
/// flags (Cloud, truncated, an expected account, an expiry in the past), then header lines
/// (`name: value`, `\n`-separated) up to an empty line, then the body.
pub fn classify_answer(data: &[u8]) {
    let status = 100 + u16::from_be_bytes([byte(data, 0), byte(data, 1)]) % 500;
    let flags = byte(data, 2);
    let rest = data.get(3..).unwrap_or_default();
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (rest, &[][..]),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        // Only fields that could arrive: hyper refuses the rest of a head.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let now = Utc::now();
    let expired = flags & 8 != 0;
    let answer = Answer {
        status: StatusCode::from_u16(status).expect("100..600 is a status"),
        headers,
        body: body.to_vec(),
        truncated: flags & 2 != 0,
    };
    let expectation = Expectation {
        product: if flags & 32 != 0 {
            Product::Confluence
        } else {
            Product::Jira
        },
        kind: if flags & 1 != 0 {
            Kind::Cloud
        } else {
            Kind::Server
        },
        expect_account: (flags & 4 != 0).then_some("svc-ci"),
        expires_at: Some(if expired {
            now - chrono::Duration::days(1)
        } else {
            now + chrono::Duration::days(1)
        }),
        blocked_by_admin: flags & 16 != 0,
        now,
    };
    let verdict = classify(&answer, &expectation);
    assert_eq!(verdict.state == State::Valid, verdict.reason == Reason::Ok);
    if matches!(
        verdict.reason,
        Reason::RateLimited | Reason::ServerError | Reason::Redirected | Reason::UnexpectedResponse
    ) {
        assert_eq!(verdict.state, State::Unknown);
    }
    if verdict.state == State::Valid {
        assert_eq!(status, 200);
        assert!(verdict.identity.is_some());
    }
    if verdict.state == State::Expired {
        assert!(expired, "expired without an expiry in the past");
    }
    // The hint and the detail are shown to people: they must be text, and bounded.
    assert!(verdict.detail.as_deref().is_none_or(|d| d.len() <= 4096));
}

/// The PAT list (`GET /rest/pat/latest/tokens`) and the date parser behind its fields.
pub fn pat_list(data: &[u8]) {
    if let Some(entries) = crate::expiry::parse_pat_list(data) {
        for entry in entries {
            round_trips(entry.expiring_at);
            round_trips(entry.created_at);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        round_trips(crate::config::parse_date_or_time(text));
    }
}

/// A parsed time, written as Jira writes it, parses back to itself.
fn round_trips(time: Option<DateTime<Utc>>) {
    use chrono::Datelike as _;
    if let Some(time) = time.filter(|t| (0..=9999).contains(&t.year())) {
        let text = time.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string();
        if time.timestamp_subsec_nanos() % 1_000_000 == 0 {
            assert_eq!(
                crate::config::parse_date_or_time(&text),
                Some(time),
                "{text}"
            );
        }
    }
}

/// A page of an organization's API-token list (the admin API).
pub fn org_list(data: &[u8]) {
    // The property is that it returns: an error or a page, never a panic or a hang.
    let _ = crate::org::list::parse_page(data);
}

/// `Retry-After`: whatever parses prints back as a header that parses to the same value.
pub fn retry_after(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(parsed) = RetryAfter::parse(text) {
        assert_eq!(
            RetryAfter::parse(&parsed.to_string()),
            Some(parsed),
            "{text:?}"
        );
        let _ = parsed.delay_from(Utc::now());
    }
}

/// The web configuration: any text loads or fails with a message.
pub fn web_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let dir = Path::new("/nonexistent-credwatch-fuzz");
    if let Err((key, message)) = crate::webconfig::WebConfig::parse(&text, dir) {
        assert!(!message.trim().is_empty(), "an empty message for {key}");
    }
}

/// The OAuth and gateway answers: a token endpoint's answer read as a grant or a verdict (two
/// bytes of status, then the body), and the same body as `tenant_info` and as the accessible
/// resources. A grant is a sendable Bearer header and a lifetime of at most a day; a verdict
/// never shows the client secret.
pub fn oauth_answers(data: &[u8]) {
    use std::sync::OnceLock;
    static CONNECTION: OnceLock<crate::config::Connection> = OnceLock::new();
    const SECRET: &str = "fuzz-client-secret";
    let connection = CONNECTION.get_or_init(|| {
        let text = format!("[[connection]]\nname = \"c\"\nurl = \"https://acme.atlassian.net\"\nauth = \"oauth_client_credentials\"\nclient_id = \"c\"\nclient_secret = \"{SECRET}\"\n");
        Config::from_sources(&[(PathBuf::from("fuzz.toml"), text)])
            .expect("the fuzz connection loads")
            .connections
            .remove(0)
    });
    let status = 100 + u16::from_be_bytes([byte(data, 0), byte(data, 1)]) % 500;
    let body = data.get(2..).unwrap_or_default().to_vec();
    let answer = Answer {
        status: StatusCode::from_u16(status).expect("100..600 is a status"),
        headers: HeaderMap::new(),
        body,
        truncated: false,
    };
    match crate::probe::oauth::read_grant(&answer, connection) {
        Ok((header, lifetime)) => {
            assert_eq!(status, 200);
            assert!(header.as_bytes().starts_with(b"Bearer ") && header.is_sensitive());
            assert!(lifetime <= std::time::Duration::from_secs(86_400));
        }
        Err(verdict) => {
            assert_ne!(verdict.state, State::Valid);
            assert!(verdict
                .detail
                .as_deref()
                .is_none_or(|d| !d.contains(SECRET) && d.len() <= 1024));
        }
    }
    if let Some(cloud_id) = crate::probe::gateway::read_tenant_info(&answer.body) {
        assert!(!cloud_id.is_empty() && !cloud_id.contains('/'));
    }
    let _ = crate::probe::oauth::read_resources(&answer.body);
}
