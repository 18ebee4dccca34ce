//! Secrets and where they come from.
//!
//! A [`Secret`] prints as a mask in `Debug`, `Display` and `Serialize`, so it cannot reach a
//! log line, a JSON document or an error message by accident; the only way to the bytes is
//! [`Secret::expose`], which the probe calls when it builds the `Authorization` header.
//! A [`SecretSource`] says where the secret is read from (inline, environment, file) and is
//! itself safe to print: it shows the variable name or path, never the value.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

/// What every secret prints as.
pub const MASK: &str = "********";

/// A credential secret (token or password) that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call only where it is sent to Jira.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

/// Where a connection's secret is read from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SecretSource {
    /// Written in the configuration file (works, but draws a warning).
    Inline(Secret),
    /// Read from this environment variable.
    Env(String),
    /// Read from this file; one trailing newline is trimmed.
    File(PathBuf),
}

/// Why a secret could not be read. Never holds the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The environment variable is not set or not valid Unicode.
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    /// The file could not be read.
    #[error("cannot read {path}: {message}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        message: String,
    },
    /// The source exists but holds nothing.
    #[error("the secret from {0} is empty")]
    Empty(String),
}

impl SecretSource {
    /// Reads the secret now.
    pub fn read(&self) -> Result<Secret, SecretError> {
        let value = match self {
            SecretSource::Inline(secret) => secret.expose().to_owned(),
            SecretSource::Env(var) => {
                std::env::var(var).map_err(|_| SecretError::EnvMissing(var.clone()))?
            }
            SecretSource::File(path) => read_secret_file(path)?,
        };
        if value.trim().is_empty() {
            return Err(SecretError::Empty(self.describe()));
        }
        Ok(Secret(value))
    }

    /// A printable description: "inline", "env JIRA_TOKEN", "file /run/secrets/jira".
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Inline(_) => "the inline value".to_owned(),
            SecretSource::Env(var) => format!("environment variable {var}"),
            SecretSource::File(path) => format!("file {}", path.display()),
        }
    }
}

fn read_secret_file(path: &Path) -> Result<String, SecretError> {
    let unreadable = |message: String| SecretError::Unreadable {
        path: path.to_owned(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
    let mut text = String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8 text".into()))?;
    // Editors and `echo` add a newline; Jira would reject the token with it.
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_itself() {
        let secret = Secret::new("hunter2-canary");
        for shown in [
            format!("{secret}"),
            format!("{secret:?}"),
            format!("{:?}", SecretSource::Inline(secret.clone())),
            serde_json::to_string(&secret).expect("serializes"),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert_eq!(secret.expose(), "hunter2-canary");
    }

    #[test]
    fn file_secret_trims_one_trailing_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (content, expected) in [
            ("tok\n", "tok"),
            ("tok\r\n", "tok"),
            ("tok", "tok"),
            ("tok \n", "tok "),
        ] {
            let path = dir.path().join("s");
            std::fs::write(&path, content).expect("write");
            let secret = SecretSource::File(path).read().expect("reads");
            assert_eq!(secret.expose(), expected);
        }
    }

    #[test]
    fn empty_and_missing_sources_are_errors_without_the_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty");
        std::fs::write(&path, "\n").expect("write");
        assert!(matches!(
            SecretSource::File(path).read(),
            Err(SecretError::Empty(_))
        ));
        let missing = SecretSource::File(dir.path().join("nope")).read();
        assert!(matches!(missing, Err(SecretError::Unreadable { .. })));
        let env = SecretSource::Env("CREDWATCH_TEST_SURELY_UNSET".into()).read();
        assert_eq!(
            env,
            Err(SecretError::EnvMissing(
                "CREDWATCH_TEST_SURELY_UNSET".into()
            ))
        );
    }
}
