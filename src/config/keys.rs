//! The per-key parsers shared by `[defaults]` and `[[connection]]`, and the key lists.
//!
//! Both tables are read as "key → spanned TOML value" maps rather than through a serde struct,
//! so that every error can name the exact line and key, unknown keys can suggest the key that
//! was meant, and a value is never echoed back for a secret key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use toml::Value;

use super::settings::SETTING_KEYS;

/// Keys that identify a connection and its secret: `[[connection]]` only.
pub(super) const IDENTITY_KEYS: [&str; 12] = [
    "name",
    "url",
    "login_site",
    "token",
    "token_env",
    "token_file",
    "password",
    "password_env",
    "password_file",
    "client_secret",
    "client_secret_env",
    "client_secret_file",
];

/// Keys that apply to the whole daemon: `[defaults]` only.
pub(super) const GLOBAL_KEYS: [&str; 2] = ["max_concurrent_probes", "max_concurrent_per_site"];

/// Most static labels a connection may carry.
pub(super) const MAX_LABELS: usize = 8;

/// Label names credwatch itself puts on `credwatch_connection_info`.
pub(super) const RESERVED_LABELS: [&str; 7] = [
    "connection",
    "url",
    "atlassian_product",
    "kind",
    "auth",
    "account",
    "state",
];

/// A whole number from `min` to `max`.
pub(super) fn count(value: &Value, min: i64, max: i64) -> Result<usize, String> {
    match value.as_integer() {
        Some(n) if (min..=max).contains(&n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        Some(n) => Err(format!("must be from {min} to {max}, not {n}")),
        None => Err(format!("must be a whole number, not {}", type_of(value))),
    }
}

/// The message for a key credwatch does not know, with the closest known key when one is near.
pub(super) fn unknown_key(key: &str) -> String {
    let closest = IDENTITY_KEYS
        .iter()
        .chain(SETTING_KEYS.iter())
        .chain(GLOBAL_KEYS.iter())
        .map(|known| (edit_distance(key, known), *known))
        .min();
    match closest {
        Some((distance, known)) if distance <= 2 => {
            format!("unknown key `{key}` (did you mean `{known}`?)")
        }
        _ => format!("unknown key `{key}`"),
    }
}

/// A string value. The error never shows the value, so it is safe for secret keys too.
pub(super) fn string(value: &Value) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("must be a string, not {}", type_of(value)))
}

pub(super) fn non_empty(text: String) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(text)
    }
}

/// A humantime duration such as "90s", "5m", "14d"; zero is refused.
pub(super) fn duration(value: &Value) -> Result<Duration, String> {
    let text = string(value)?;
    let parsed = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?}: {e} (examples: \"30s\", \"5m\", \"14d\")")
    })?;
    if parsed.is_zero() {
        return Err(format!(
            "invalid duration {text:?}: must be greater than zero"
        ));
    }
    Ok(parsed)
}

/// A duration the way people write them in the configuration: the largest unit that divides
/// it evenly ("90d", "6h", "5m", "30s", "1500ms").
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if millis >= size && millis.is_multiple_of(size) {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

/// A date ("2027-03-01", UTC midnight) or an RFC 3339 time, as a string or a TOML date.
pub(super) fn date_or_time(value: &Value) -> Result<DateTime<Utc>, String> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Datetime(datetime) => datetime.to_string(),
        other => return Err(format!("must be a date or a time, not {}", type_of(other))),
    };
    parse_date_or_time(text.trim()).ok_or_else(|| {
        format!("invalid date {text:?}: use \"2027-03-01\" or an RFC 3339 time such as \"2027-03-01T12:00:00Z\"")
    })
}

/// Parses "2027-03-01" (UTC midnight) or an RFC 3339 time.
pub fn parse_date_or_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

/// A path; `${CREDENTIALS_DIRECTORY}` (systemd's `LoadCredential=`) is expanded, and a relative
/// path is taken relative to the directory of the file that names it.
pub(super) fn path(value: &Value, base_dir: &Path) -> Result<PathBuf, String> {
    let text = non_empty(string(value)?)?;
    const CREDENTIALS: &str = "${CREDENTIALS_DIRECTORY}";
    let expanded = if let Some(rest) = text.strip_prefix(CREDENTIALS) {
        let dir = std::env::var("CREDENTIALS_DIRECTORY").map_err(|_| {
            format!("{text:?} uses ${{CREDENTIALS_DIRECTORY}}, which is not set (it is set by systemd's LoadCredential=)")
        })?;
        format!("{dir}{rest}")
    } else {
        text
    };
    let path = PathBuf::from(expanded);
    Ok(if path.is_relative() {
        base_dir.join(path)
    } else {
        path
    })
}

pub(super) fn labels(value: &Value) -> Result<BTreeMap<String, String>, String> {
    let table = value
        .as_table()
        .ok_or_else(|| format!("must be a table of strings, not {}", type_of(value)))?;
    if table.len() > MAX_LABELS {
        return Err(format!(
            "at most {MAX_LABELS} labels are allowed, found {}",
            table.len()
        ));
    }
    let mut labels = BTreeMap::new();
    for (key, value) in table {
        if !is_label_name(key) {
            return Err(format!("label name {key:?} must match [a-z_][a-z0-9_]*"));
        }
        if RESERVED_LABELS.contains(&key.as_str()) || key.starts_with("__") {
            return Err(format!("label name {key:?} is reserved by credwatch"));
        }
        let value = value
            .as_str()
            .ok_or_else(|| format!("label {key:?} must be a string, not {}", type_of(value)))?;
        labels.insert(key.clone(), value.to_owned());
    }
    Ok(labels)
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether `name` is a valid connection name: `[a-z0-9][a-z0-9_.-]*`, at most 64 characters.
pub(super) fn is_connection_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
}

/// The TOML type name of a value, for messages that must not show the value itself.
pub(super) fn type_of(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_written() {
        for (text, printed) in [
            ("90d", "90d"),
            ("14d", "14d"),
            ("6h", "6h"),
            ("5m", "5m"),
            ("90s", "90s"),
            ("1500ms", "1500ms"),
            ("2h 30m", "150m"),
        ] {
            let parsed = humantime::parse_duration(text).expect("parses");
            assert_eq!(format_duration(parsed), printed);
            assert_eq!(
                humantime::parse_duration(printed).expect("round-trips"),
                parsed
            );
        }
    }

    #[test]
    fn dates_and_times() {
        let midnight = parse_date_or_time("2027-03-01").expect("date");
        assert_eq!(midnight.to_rfc3339(), "2027-03-01T00:00:00+00:00");
        let jira = parse_date_or_time("2026-12-03T22:35:14.728+00:00").expect("jira form");
        assert_eq!(jira.timestamp_millis(), 1_796_337_314_728);
        assert!(parse_date_or_time("2027-02-30").is_none());
        assert!(parse_date_or_time("next week").is_none());
    }

    #[test]
    fn unknown_keys_suggest_the_near_one() {
        assert_eq!(
            unknown_key("tokne"),
            "unknown key `tokne` (did you mean `token`?)"
        );
        assert_eq!(unknown_key("colour"), "unknown key `colour`");
    }

    #[test]
    fn connection_names() {
        for good in ["jira-prod", "a", "0x", "ci.bot_1", &"a".repeat(64)] {
            assert!(is_connection_name(good), "{good}");
        }
        for bad in ["", "Jira", "-x", "a b", "ä", &"a".repeat(65)] {
            assert!(!is_connection_name(bad), "{bad}");
        }
    }
}
