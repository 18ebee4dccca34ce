//! Where the state store lives: an explicit directory (`--state-dir`, `CREDWATCH_STATE_DIR`,
//! or systemd's `$STATE_DIRECTORY`), which must be usable, or the XDG default
//! (`$XDG_STATE_HOME/credwatch`, else `~/.local/state/credwatch`), which may not be: then
//! credwatch warns and runs without state.

use std::path::{Path, PathBuf};

/// How the state directory was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `--no-state`: nothing is kept.
    Disabled,
    /// Named by the operator (or by systemd): a directory that cannot be used is an error.
    Explicit(PathBuf),
    /// The XDG default: a directory that cannot be used is a warning.
    Defaulted(PathBuf),
}

impl Location {
    /// Decides the location from the command line (`dir`, `no_state`) and the environment:
    /// `CREDWATCH_STATE_DIR` is read by clap into `dir`; `$STATE_DIRECTORY` (systemd's
    /// `StateDirectory=`, the first of its colon-separated paths), then `$XDG_STATE_HOME` and
    /// `$HOME` are read here.
    pub fn resolve(dir: Option<PathBuf>, no_state: bool) -> Location {
        Self::resolve_with(dir, no_state, |name| std::env::var_os(name))
    }

    /// [`Location::resolve`] with the environment given, for tests.
    pub fn resolve_with(
        dir: Option<PathBuf>,
        no_state: bool,
        env: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Location {
        if no_state {
            return Location::Disabled;
        }
        if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
            return Location::Explicit(dir);
        }
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        if let Some(systemd) = set("STATE_DIRECTORY") {
            let first = systemd
                .to_string_lossy()
                .split(':')
                .next()
                .map(PathBuf::from);
            if let Some(first) = first.filter(|p| !p.as_os_str().is_empty()) {
                return Location::Explicit(first);
            }
        }
        if let Some(xdg) = set("XDG_STATE_HOME").map(PathBuf::from) {
            if xdg.is_absolute() {
                return Location::Defaulted(xdg.join("credwatch"));
            }
        }
        match set("HOME") {
            Some(home) => Location::Defaulted(Path::new(&home).join(".local/state/credwatch")),
            None => Location::Disabled,
        }
    }

    /// The directory, unless state is disabled.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Location::Disabled => None,
            Location::Explicit(dir) | Location::Defaulted(dir) => Some(dir),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(dir: Option<&str>, no_state: bool, vars: &[(&str, &str)]) -> Location {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Location::resolve_with(dir.map(PathBuf::from), no_state, |name| {
            vars.get(name).map(Into::into)
        })
    }

    #[test]
    fn the_flag_wins_then_systemd_then_xdg_then_home() {
        let all = [
            ("STATE_DIRECTORY", "/var/lib/credwatch:/var/lib/other"),
            ("XDG_STATE_HOME", "/home/u/.state"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(resolve(Some("/x"), true, &all), Location::Disabled);
        assert_eq!(
            resolve(Some("/x"), false, &all),
            Location::Explicit("/x".into())
        );
        assert_eq!(
            resolve(None, false, &all),
            Location::Explicit("/var/lib/credwatch".into())
        );
        assert_eq!(
            resolve(None, false, &all[1..]),
            Location::Defaulted("/home/u/.state/credwatch".into())
        );
        assert_eq!(
            resolve(
                None,
                false,
                &[("XDG_STATE_HOME", "relative"), ("HOME", "/h")]
            ),
            Location::Defaulted("/h/.local/state/credwatch".into()),
            "a relative XDG_STATE_HOME is ignored, as the XDG spec says"
        );
        assert_eq!(resolve(None, false, &[]), Location::Disabled);
    }
}
