//! Every invalid fixture in `tests/fixtures/invalid/` fails to load with the message its
//! first line (`# expect: ...`) names, and no error message shows a secret.

use std::path::Path;

use credwatch::config::Config;

#[test]
fn every_invalid_fixture_fails_with_its_message() {
    let dir = Path::new("tests/fixtures/invalid");
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for entry in std::fs::read_dir(dir).expect("fixtures exist") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read fixture");
        let expected = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no '# expect: ' first line", path.display()));
        let errors = match Config::load(&path) {
            Ok(_) => panic!(
                "{} loaded, but should fail with {expected:?}",
                path.display()
            ),
            Err(errors) => errors.to_string(),
        };
        if !errors.contains(expected) {
            mismatches.push(format!(
                "{}:\n  expected to contain: {expected}\n  got: {errors}",
                path.display()
            ));
        }
        assert!(
            errors.starts_with(&dir.join("").display().to_string()),
            "every error names the file: {errors}"
        );
        assert!(!errors.contains("canary"), "a secret leaked into: {errors}");
        checked += 1;
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(checked >= 25, "only {checked} fixtures found");
}

#[test]
fn several_mistakes_are_all_reported() {
    let text = "[[connection]]\nname = \"a\"\nurl = \"ftp://x\"\ninterval = \"soon\"\ntoken = \"t\"\n\n[[connection]]\nname = \"b\"\nurl = \"https://jira.example.com\"\n";
    let errors = Config::from_sources(&[("many.toml".into(), text.to_owned())])
        .expect_err("invalid")
        .0;
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[0].starts_with("many.toml:4: connection \"a\": interval: invalid duration"));
    assert!(lines[1].starts_with("many.toml:3: connection \"a\": url: must start with https://"));
    assert!(lines[2].starts_with("many.toml:7: connection \"b\": no secret"));
}

#[test]
fn a_directory_merges_files_and_names_stay_unique_across_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let connection = |name: &str| {
        format!("[[connection]]\nname = \"{name}\"\nurl = \"https://jira.example.com\"\ntoken = \"t\"\n")
    };
    std::fs::write(dir.path().join("a.toml"), connection("one")).expect("write");
    std::fs::write(dir.path().join("b.toml"), connection("two")).expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not configuration").expect("write");
    let config = Config::load(dir.path()).expect("loads");
    let names: Vec<&str> = config.connections.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["one", "two"]);
    let inline = config
        .warnings
        .iter()
        .filter(|w| w.contains("the secret is written in the configuration file"))
        .count();
    assert_eq!(inline, 2, "inline secrets draw a warning each");

    std::fs::write(dir.path().join("c.toml"), connection("one")).expect("write");
    let errors = Config::load(dir.path()).expect_err("duplicate").to_string();
    assert!(
        errors.contains("c.toml:1: connection \"one\": name: duplicate name (first defined at"),
        "{errors}"
    );
    assert!(errors.contains("a.toml:1)"), "{errors}");

    let empty = tempfile::tempdir().expect("tempdir");
    let errors = Config::load(empty.path()).expect_err("empty").to_string();
    assert!(
        errors.contains("the directory holds no *.toml file"),
        "{errors}"
    );
}

#[test]
fn defaults_apply_and_connections_override_them() {
    let text = "[defaults]\ninterval = \"1m\"\ntimeout = \"5s\"\nlabels = { env = \"prod\", team = \"x\" }\n\n[[connection]]\nname = \"a\"\nurl = \"https://jira.example.com\"\ntoken = \"t\"\ninterval = \"2m\"\nlabels = { team = \"y\" }\n";
    let config = Config::from_sources(&[("d.toml".into(), text.to_owned())]).expect("loads");
    let a = &config.connections[0];
    assert_eq!(a.settings.interval.as_secs(), 120);
    assert_eq!(a.settings.timeout.as_secs(), 5);
    assert_eq!(
        a.settings.labels.get("env").map(String::as_str),
        Some("prod")
    );
    assert_eq!(a.settings.labels.get("team").map(String::as_str), Some("y"));
}

#[test]
fn a_config_with_inline_secrets_readable_by_others_draws_a_warning() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("inline.toml");
    std::fs::write(&path, "[[connection]]\nname = \"a\"\nurl = \"https://jira.example.com\"\ntoken = \"perm-canary\"\n").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let warnings = Config::load(&path).expect("loads").warnings;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("readable by other users (mode 644)")),
        "{warnings:?}"
    );
    assert!(warnings.iter().all(|w| !w.contains("perm-canary")));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let warnings = Config::load(&path).expect("loads").warnings;
    assert!(
        !warnings
            .iter()
            .any(|w| w.contains("readable by other users")),
        "{warnings:?}"
    );
    // A world-readable file without inline secrets is fine.
    let secret = dir.path().join("token");
    std::fs::write(&secret, "t\n").expect("write");
    let clean = dir.path().join("clean.toml");
    std::fs::write(&clean, "[[connection]]\nname = \"a\"\nurl = \"https://jira.example.com\"\ntoken_file = \"token\"\n").expect("write");
    std::fs::set_permissions(&clean, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(Config::load(&clean).expect("loads").warnings.is_empty());
}
