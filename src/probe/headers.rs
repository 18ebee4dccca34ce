//! The response headers a probe reads besides the status: Jira's rate-limit headers (Data
//! Center and Cloud) and `Retry-After` in both of its HTTP forms. The headers themselves are
//! reqwest's `http::HeaderMap`; a value counts as text when `HeaderValue::to_str` reads it
//! (visible ASCII).

use std::fmt;
use std::time::Duration;

use http::HeaderMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: 120`.
    Seconds(u64),
    /// `Retry-After: Sun, 22 Nov 2026 10:05:00 GMT`.
    Date(DateTime<Utc>),
}

impl RetryAfter {
    /// Parses either form; `None` for anything else.
    pub fn parse(text: &str) -> Option<RetryAfter> {
        let text = text.trim();
        if let Ok(seconds) = text.parse::<u64>() {
            return Some(RetryAfter::Seconds(seconds));
        }
        // IMF-fixdate is a subset of RFC 2822 as chrono reads it; "GMT" is accepted there. Its
        // year has four digits: chrono's wider years are no HTTP-date (found by fuzzing).
        DateTime::parse_from_rfc2822(text)
            .ok()
            .map(|date| date.with_timezone(&Utc))
            .filter(|date| (0..=9999).contains(&chrono::Datelike::year(date)))
            .map(RetryAfter::Date)
    }

    /// How long to wait, counted from `now` (a date in the past means no wait).
    pub fn delay_from(&self, now: DateTime<Utc>) -> Duration {
        match *self {
            RetryAfter::Seconds(seconds) => Duration::from_secs(seconds),
            RetryAfter::Date(date) => (date - now).to_std().unwrap_or(Duration::ZERO),
        }
    }
}

impl fmt::Display for RetryAfter {
    /// The header value, in the form it was received.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryAfter::Seconds(seconds) => write!(f, "{seconds}"),
            RetryAfter::Date(date) => write!(f, "{}", date.format("%a, %d %b %Y %H:%M:%S GMT")),
        }
    }
}

/// Jira's rate-limit headers; every field is optional because many answers carry none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// `X-RateLimit-Limit`: the bucket size (DC) or budget (Cloud).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// `X-RateLimit-Remaining`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    /// `X-RateLimit-Interval-Seconds` (Data Center).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
    /// `X-RateLimit-FillRate`: tokens added per interval (Data Center).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill_rate: Option<u64>,
    /// `X-RateLimit-Reset`: when the budget resets (Cloud, ISO 8601).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset: Option<DateTime<Utc>>,
    /// `X-RateLimit-NearLimit: true`: under 20% of the budget is left (Cloud).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub near_limit: Option<bool>,
    /// `RateLimit-Reason`, e.g. `jira-burst-based` (Cloud).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RateLimit {
    /// Reads whatever rate-limit headers are present (the first value of each counts).
    pub fn from_headers(headers: &HeaderMap) -> RateLimit {
        let mut rate = RateLimit::default();
        // Most answers carry none of these.
        if headers.is_empty() {
            return rate;
        }
        for name in RATE_LIMIT_HEADERS {
            let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            let number = || value.trim().parse().ok();
            match name {
                "x-ratelimit-limit" => rate.limit = number(),
                "x-ratelimit-remaining" => rate.remaining = number(),
                "x-ratelimit-interval-seconds" => rate.interval_seconds = number(),
                "x-ratelimit-fillrate" => rate.fill_rate = number(),
                "x-ratelimit-reset" => rate.reset = parse_iso8601(value),
                "x-ratelimit-nearlimit" => {
                    rate.near_limit = Some(value.trim().eq_ignore_ascii_case("true"));
                }
                "ratelimit-reason" => rate.reason = Some(value.trim().chars().take(64).collect()),
                _ => {}
            }
        }
        rate
    }

    /// Whether no rate-limit header was present.
    pub fn is_empty(&self) -> bool {
        *self == RateLimit::default()
    }
}

/// The headers [`RateLimit`] reads, in lower case.
const RATE_LIMIT_HEADERS: [&str; 7] = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-interval-seconds",
    "x-ratelimit-fillrate",
    "x-ratelimit-reset",
    "x-ratelimit-nearlimit",
    "ratelimit-reason",
];

/// ISO 8601 as Atlassian sends it: RFC 3339, or without seconds (`2026-11-22T10:05Z`).
pub(crate) fn parse_iso8601(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    if let Ok(time) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M%#z") {
        return Some(time.with_timezone(&Utc));
    }
    let naive = text.strip_suffix('Z')?;
    NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn retry_after_both_forms() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(RetryAfter::parse("30"), Some(RetryAfter::Seconds(30)));
        let date = RetryAfter::parse("Sun, 22 Nov 2026 10:05:00 GMT").expect("http-date");
        assert_eq!(date.delay_from(now), Duration::from_secs(300));
        assert_eq!(date.to_string(), "Sun, 22 Nov 2026 10:05:00 GMT");
        let past = RetryAfter::parse("Sun, 22 Nov 2026 09:00:00 GMT").expect("http-date");
        assert_eq!(past.delay_from(now), Duration::ZERO);
        for bad in ["", "-1", "soon", "1.5"] {
            assert_eq!(RetryAfter::parse(bad), None, "{bad}");
        }
    }

    /// A header map from fields in the order they arrived.
    pub(crate) fn map(fields: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                http::HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    #[test]
    fn rate_limit_headers_of_both_products() {
        let headers = map(&[
            ("X-RateLimit-Limit", "500"),
            ("X-RateLimit-Remaining", "499"),
            ("X-RateLimit-Interval-Seconds", "60"),
            ("X-RateLimit-FillRate", "500"),
            ("X-RateLimit-Reset", "2026-11-22T10:05Z"),
            ("X-RateLimit-NearLimit", "true"),
            ("RateLimit-Reason", "jira-burst-based"),
            // A repeated field: the first value counts.
            ("x-ratelimit-remaining", "1"),
            ("X-RateLimit-FillRate", "7"),
        ]);
        let limits = RateLimit::from_headers(&headers);
        assert_eq!(limits.limit, Some(500));
        assert_eq!(limits.remaining, Some(499));
        assert_eq!(limits.interval_seconds, Some(60));
        assert_eq!(limits.fill_rate, Some(500));
        assert_eq!(
            limits.reset.map(|t| t.to_rfc3339()),
            Some("2026-11-22T10:05:00+00:00".to_owned())
        );
        assert_eq!(limits.near_limit, Some(true));
        assert_eq!(limits.reason.as_deref(), Some("jira-burst-based"));
        assert!(RateLimit::from_headers(&HeaderMap::new()).is_empty());
        // A value that is not visible ASCII is not read.
        let mut odd = HeaderMap::new();
        odd.insert(
            "x-ratelimit-remaining",
            http::HeaderValue::from_bytes(b"caf\xc3\xa9").expect("value"),
        );
        assert_eq!(RateLimit::from_headers(&odd).remaining, None);
    }
}
