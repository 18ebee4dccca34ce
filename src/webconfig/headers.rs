//! `http_server_config.headers`: the response headers a web configuration may set, checked as
//! the exporter-toolkit checks them.
//!
//! Only five names may be set, spelt as the toolkit spells them (its check is case-sensitive,
//! and so is this one); the two whose values are an enumeration take only those values:
//! `X-Content-Type-Options` only `nosniff`, `X-Frame-Options` only `deny` or `sameorigin`.
//! The other three take any valid header value.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};

/// The headers the exporter-toolkit lets a web configuration set, and the values each takes
/// (empty: any).
const SETTABLE: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// The headers as written, checked; errors are (key, message).
pub(super) fn check(
    headers: BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, (String, String)> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let key = format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = SETTABLE.iter().find(|(settable, _)| *settable == name) else {
            let hint = SETTABLE
                .iter()
                .find(|(settable, _)| settable.eq_ignore_ascii_case(&name))
                .map(|(settable, _)| format!(" (names are case-sensitive: {settable})"))
                .unwrap_or_default();
            let names: Vec<&str> = SETTABLE.iter().map(|(n, _)| *n).collect();
            return Err((
                key,
                format!(
                    "HTTP header {name:?} can not be configured{hint}: one of {}",
                    names.join(", ")
                ),
            ));
        };
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err((
                key,
                format!("invalid value {value:?}: expected one of {allowed:?}"),
            ));
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| (key.clone(), "not a valid header value".to_string()))?;
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| (key, "not a valid header name".to_string()))?;
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(name: &str, value: &str) -> Option<String> {
        check(BTreeMap::from([(name.to_string(), value.to_string())]))
            .err()
            .map(|(key, _)| key)
    }

    #[test]
    fn the_enumerated_values_are_checked_and_the_others_are_free() {
        assert_eq!(key_of("X-Content-Type-Options", "nosniff"), None);
        assert_eq!(
            key_of("X-Content-Type-Options", "sniff").as_deref(),
            Some("http_server_config.headers.X-Content-Type-Options")
        );
        assert_eq!(key_of("X-Frame-Options", "deny"), None);
        assert_eq!(key_of("X-Frame-Options", "sameorigin"), None);
        assert!(key_of("X-Frame-Options", "foo").is_some());
        assert!(
            key_of("X-Frame-Options", "DENY").is_some(),
            "as the toolkit: exact"
        );
        assert_eq!(key_of("X-XSS-Protection", "1; mode=block"), None);
        assert_eq!(
            key_of("Content-Security-Policy", "default-src 'self'"),
            None
        );
    }

    #[test]
    fn names_are_exact_and_a_near_miss_gets_a_hint() {
        let (key, message) = check(BTreeMap::from([(
            "x-frame-options".to_string(),
            "deny".to_string(),
        )]))
        .expect_err("refused");
        assert_eq!(key, "http_server_config.headers.x-frame-options");
        assert!(
            message.contains("case-sensitive: X-Frame-Options"),
            "{message}"
        );
        assert!(key_of("Content-Type", "foo").is_some());
    }
}
