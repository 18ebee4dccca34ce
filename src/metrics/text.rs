//! The project's own writer of the Prometheus text exposition format (0.0.4): a family's
//! `# HELP` and `# TYPE` header, then its samples, label values escaped.
//!
//! It is the one place that writes the format, so that it streams (no registry holds the
//! series of 100,000 connections) and so that every value Jira chose (display names, account
//! names) and every label a user wrote goes through [`escape_into`]. The promtool test in
//! `tests/prometheus.rs` feeds it quotes, backslashes and line feeds.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

/// One metric family: a header, then its samples.
pub(super) struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    pub(super) fn new(
        out: &'a mut String,
        name: &'static str,
        kind: &str,
        help: &str,
    ) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out, name }
    }

    /// A family whose header is already written.
    pub(super) fn resume(out: &'a mut String, name: &'static str) -> Family<'a> {
        Family { out, name }
    }

    pub(super) fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.sample_named(self.name, labels, value);
    }

    pub(super) fn sample_named(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(key);
                self.out.push_str("=\"");
                escape_into(self.out, value);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        write_value(self.out, value);
        self.out.push('\n');
    }

    /// A sample labelled with the connection's name alone; none while the value is unknown
    /// (never a sentinel).
    pub(super) fn connection(
        &mut self,
        item: &super::families::Item<'_>,
        value: impl Into<Option<f64>>,
    ) {
        if let Some(value) = value.into() {
            self.sample(&[("connection", item.name)], value);
        }
    }
}

/// Label values escape backslash, double quote and line feed (exposition format 0.0.4).
pub(super) fn escape_into(out: &mut String, value: &str) {
    if !value.contains(['\\', '"', '\n']) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes a sample value as Prometheus reads it: whole numbers without a fraction.
pub(super) fn write_value(out: &mut String, value: f64) {
    let _ = if value.fract() == 0.0 && value.abs() < 1e15 {
        write!(out, "{}", value as i64)
    } else {
        write!(out, "{value}")
    };
}

pub(super) fn seconds(time: DateTime<Utc>) -> f64 {
    time.timestamp_millis() as f64 / 1000.0
}

pub(super) fn flag(on: bool) -> f64 {
    f64::from(u8::from(on))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape_into(&mut out, "a\\b\"c\nd");
        assert_eq!(out, "a\\\\b\\\"c\\nd");
        out.clear();
        escape_into(&mut out, "plain-name.1");
        assert_eq!(out, "plain-name.1");
    }

    #[test]
    fn values_print_as_prometheus_reads_them() {
        let value = |v: f64| {
            let mut out = String::new();
            write_value(&mut out, v);
            out
        };
        assert_eq!(value(1.0), "1");
        assert_eq!(value(0.25), "0.25");
        assert_eq!(value(1_796_337_314.728), "1796337314.728");
        assert_eq!(value(-3.0), "-3");
    }
}
