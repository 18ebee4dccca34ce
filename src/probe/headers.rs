//! The response headers a probe reads besides the status: how they are kept ([`Headers`]),
//! Jira's rate-limit headers (Data Center and Cloud) and `Retry-After` in both of its HTTP
//! forms.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

/// An answer's header fields, in the order they arrived.
///
/// An answer carries a handful of fields and a probe looks up a few of them once, so the
/// fields are kept in one buffer and found by a scan that ignores case. Building an
/// `http::HeaderMap` (a hash of every name, an allocation per value) cost more than all of the
/// probe's lookups together (BENCHMARKS.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// Every name and value, back to back.
    text: Vec<u8>,
    /// Where each field's name and value lie in `text`.
    fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: Range<usize>,
    value: Range<usize>,
}

impl Headers {
    /// Room for `fields` fields of `bytes` bytes of names and values in all.
    pub fn with_capacity(fields: usize, bytes: usize) -> Headers {
        Headers {
            text: Vec::with_capacity(bytes),
            fields: Vec::with_capacity(fields),
        }
    }

    /// Adds a field after the others (a name may repeat). Names are kept in lower case.
    pub fn append(&mut self, name: &str, value: &[u8]) {
        let start = self.text.len();
        self.text
            .extend(name.as_bytes().iter().map(u8::to_ascii_lowercase));
        let middle = self.text.len();
        self.text.extend_from_slice(value);
        self.fields.push(Field {
            name: start..middle,
            value: middle..self.text.len(),
        });
    }

    /// Every value of the fields called `name` (any case), in order.
    pub fn get_all<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl DoubleEndedIterator<Item = &'a [u8]> + use<'a, 'n> {
        self.fields
            .iter()
            .filter(move |field| {
                self.text[field.name.clone()].eq_ignore_ascii_case(name.as_bytes())
            })
            .map(|field| &self.text[field.value.clone()])
    }

    /// The values of the fields called `name` (any case) that are visible ASCII (tabs
    /// allowed), in order, as `http::HeaderValue::to_str` reads them.
    pub fn get_all_str<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl DoubleEndedIterator<Item = &'a str> + use<'a, 'n> {
        self.get_all(name).filter_map(visible_ascii)
    }

    /// The first value of the field called `name` (any case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.get_all(name).next()
    }

    /// Whether a field called `name` (any case) is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The first value of the field called `name` as text, if it is visible ASCII (tabs
    /// allowed), as `http::HeaderValue::to_str` reads it.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(visible_ascii)
    }

    /// Every field as its name (in lower case) and value, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], &[u8])> + '_ {
        self.fields.iter().map(|field| {
            (
                &self.text[field.name.clone()],
                &self.text[field.value.clone()],
            )
        })
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Headers {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(fields: I) -> Headers {
        let mut headers = Headers::default();
        for (name, value) in fields {
            headers.append(name, value.as_bytes());
        }
        headers
    }
}

/// `value` as text, if every byte is visible ASCII or a tab.
fn visible_ascii(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

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
        // IMF-fixdate is a subset of RFC 2822 as chrono reads it; "GMT" is accepted there.
        DateTime::parse_from_rfc2822(text)
            .ok()
            .map(|date| RetryAfter::Date(date.with_timezone(&Utc)))
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
    /// Reads whatever rate-limit headers are present.
    pub fn from_headers(headers: &Headers) -> RateLimit {
        let mut rate = RateLimit::default();
        // One pass over the fields (most answers carry none of these), rather than a lookup
        // per header; the first value of each counts, as with `Headers::get`.
        let mut seen = [false; RATE_LIMIT_HEADERS.len()];
        for (name, value) in headers.iter() {
            let Some(index) = RATE_LIMIT_HEADERS
                .iter()
                .position(|known| known.as_bytes() == name)
            else {
                continue;
            };
            if std::mem::replace(&mut seen[index], true) {
                continue;
            }
            let Some(value) = visible_ascii(value) else {
                continue;
            };
            let number = || value.trim().parse().ok();
            match RATE_LIMIT_HEADERS[index] {
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
pub fn parse_iso8601(text: &str) -> Option<DateTime<Utc>> {
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
mod tests {
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

    #[test]
    fn rate_limit_headers_of_both_products() {
        let headers: Headers = [
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
        ]
        .into_iter()
        .collect();
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
        assert!(RateLimit::from_headers(&Headers::default()).is_empty());
    }

    #[test]
    fn fields_are_found_without_case_and_in_order() {
        let mut headers: Headers = [
            ("Content-Type", "application/json"),
            ("X-Seraph-LoginReason", "AUTHENTICATED_FAILED"),
            ("x-seraph-loginreason", "OK"),
        ]
        .into_iter()
        .collect();
        headers.append("X-Note", b"caf\xc3\xa9");
        headers.append("X-Tab", b"a\tb");
        assert_eq!(headers.len(), 5);
        assert!(!headers.is_empty());
        assert_eq!(headers.get("content-type"), Some(&b"application/json"[..]));
        assert_eq!(
            headers.get_all("X-SERAPH-LOGINREASON").collect::<Vec<_>>(),
            [&b"AUTHENTICATED_FAILED"[..], &b"OK"[..]]
        );
        assert!(headers.contains("x-note"));
        assert!(!headers.contains("x-not"));
        assert_eq!(headers.get("x-note"), Some("café".as_bytes()));
        // Text only when visible ASCII, as `http::HeaderValue::to_str` reads it.
        assert_eq!(headers.get_str("x-note"), None);
        assert_eq!(headers.get_str("x-tab"), Some("a\tb"));
        assert_eq!(headers.get_str("missing"), None);
        headers.append("X-Seraph-LoginReason", b"caf\xc3\xa9");
        assert_eq!(
            headers
                .get_all_str("x-seraph-loginreason")
                .collect::<Vec<_>>(),
            ["AUTHENTICATED_FAILED", "OK"]
        );
        // Names in lower case, as they arrived otherwise.
        let names: Vec<&[u8]> = headers.iter().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                &b"content-type"[..],
                b"x-seraph-loginreason",
                b"x-seraph-loginreason",
                b"x-note",
                b"x-tab",
                b"x-seraph-loginreason"
            ]
        );
    }
}
