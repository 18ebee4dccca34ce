//! `rate_limit`: one token bucket for the whole server, as the exporter-toolkit's
//! (`golang.org/x/time/rate`) applies it.
//!
//! ```yaml
//! rate_limit:
//!   interval: 1s     # one request more per interval; Go's duration syntax, or nanoseconds
//!   burst: 10        # the bucket's size, full at start
//! ```
//!
//! An `interval` of zero (or below, or none) turns it off. Otherwise a request is let through
//! when the bucket holds a token, and answered `429 Too Many Requests` when it does not, before
//! authentication (so that it also bounds bcrypt's work). A `burst` of zero or less with an
//! interval refuses every request, as in Go: the file loads, with a warning. `/healthz` is not
//! counted (it must answer liveness probes); everything else is. The bucket goes with the
//! configuration: a reload starts a full one.

use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;

/// `rate_limit` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RateLimitFile {
    interval: Option<GoDuration>,
    burst: Option<i64>,
}

/// A Go `time.Duration` in YAML: a string in Go's syntax, or an integer of nanoseconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum GoDuration {
    Nanoseconds(i64),
    Text(String),
}

/// The limiter.
#[derive(Debug)]
pub(crate) struct RateLimit {
    /// Seconds per token.
    interval: f64,
    burst: f64,
    /// Tokens in the bucket, and when that was counted.
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimit {
    /// The limiter `file` describes (`None`: off); a limit that refuses everything is added to
    /// `warnings`.
    pub(super) fn new(
        file: RateLimitFile,
        warnings: &mut Vec<String>,
    ) -> Result<Option<RateLimit>, (String, String)> {
        let interval = match file.interval {
            None => return Ok(None),
            Some(GoDuration::Nanoseconds(ns)) => ns as f64 / 1e9,
            Some(GoDuration::Text(text)) => parse_go_duration(&text).ok_or_else(|| {
                (
                    "rate_limit.interval".to_string(),
                    format!("invalid duration {text:?} (Go's syntax: 1s, 500ms, 1m30s)"),
                )
            })?,
        };
        if interval <= 0.0 {
            return Ok(None);
        }
        let burst = file.burst.unwrap_or(0);
        if burst <= 0 {
            warnings.push(format!("rate_limit: burst {burst} with an interval refuses every request but /healthz with 429, as the exporter-toolkit does: set burst to 1 or more"));
        }
        let burst = burst.max(0) as f64;
        Ok(Some(RateLimit {
            interval,
            burst,
            bucket: Mutex::new((burst, Instant::now())),
        }))
    }

    /// Whether a request may go on now; it takes a token if so.
    pub(crate) fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (tokens, since) = *bucket;
        let elapsed = now.saturating_duration_since(since).as_secs_f64();
        let tokens = (tokens + elapsed / self.interval).min(self.burst);
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            true
        } else {
            *bucket = (tokens, now);
            false
        }
    }
}

/// Seconds in a Go duration (`300ms`, `1.5h`, `2h45m`, `-1s`, `0`); `None` when it is not one.
fn parse_go_duration(text: &str) -> Option<f64> {
    let (negative, mut rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut seconds = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_end];
        if number.is_empty() || number == "." {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        seconds += value * scale;
        rest = &rest[unit_end..];
    }
    Some(if negative { -seconds } else { seconds })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limit(interval: GoDuration, burst: i64) -> (Option<RateLimit>, Vec<String>) {
        let mut warnings = Vec::new();
        let limit = RateLimit::new(
            RateLimitFile {
                interval: Some(interval),
                burst: Some(burst),
            },
            &mut warnings,
        )
        .expect("valid");
        (limit, warnings)
    }

    #[test]
    fn go_durations_parse_as_go_parses_them() {
        assert_eq!(parse_go_duration("1s"), Some(1.0));
        assert_eq!(parse_go_duration("0"), Some(0.0));
        assert_eq!(parse_go_duration("1.5h"), Some(5400.0));
        assert_eq!(parse_go_duration("1m30s"), Some(90.0));
        assert_eq!(parse_go_duration("300ms"), Some(0.3));
        assert_eq!(parse_go_duration("-1s"), Some(-1.0));
        for bad in ["", "1", "s", "1 s", "1d", "1s2", "."] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_zero_interval_is_no_limit_and_a_zero_burst_refuses_all_with_a_warning() {
        assert!(limit(GoDuration::Nanoseconds(0), 0).0.is_none());
        assert!(limit(GoDuration::Text("0".into()), 5).0.is_none());
        let (refusing, warnings) = limit(GoDuration::Text("1s".into()), 0);
        let refusing = refusing.expect("a limit");
        assert!(!refusing.allow());
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn the_bucket_starts_full_and_refills_one_token_per_interval() {
        let (bucket, warnings) = limit(GoDuration::Nanoseconds(1_000_000_000), 3);
        let bucket = bucket.expect("a limit");
        assert!(warnings.is_empty());
        let start = Instant::now();
        let allowed = (0..10).filter(|_| bucket.allow_at(start)).count();
        assert_eq!(allowed, 3, "the burst");
        let later = start + Duration::from_millis(2500);
        let allowed = (0..10).filter(|_| bucket.allow_at(later)).count();
        assert_eq!(allowed, 2, "two intervals later: two more");
    }
}
