//! The fuzz targets' regression inputs, on stable Rust: every file under
//! `fuzz/regressions/<target>/` (the crashes the fuzzers found, and the seeds they started from)
//! goes through the same function the fuzzer drives (`credwatch::fuzzing`), which panics when an
//! invariant breaks. CI runs these, not the fuzzers; FUZZING.md says how the fuzzers are run.

use std::path::Path;

#[test]
fn every_regression_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut ran = 0;
    for (target, check) in credwatch::fuzzing::TARGETS {
        let dir = root.join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("entry").path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{} holds no input", dir.display());
        for input in inputs {
            let data = std::fs::read(&input).expect("input");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target} fails on {}", input.display());
            ran += 1;
        }
    }
    assert!(ran >= credwatch::fuzzing::TARGETS.len());
}

#[test]
fn every_fuzz_target_has_a_binary_and_regression_inputs() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (target, _) in credwatch::fuzzing::TARGETS {
        assert!(
            fuzz.join("fuzz_targets")
                .join(format!("{target}.rs"))
                .is_file(),
            "fuzz/fuzz_targets/{target}.rs"
        );
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "{target} in fuzz/Cargo.toml"
        );
        assert!(
            fuzz.join("regressions").join(target).is_dir(),
            "fuzz/regressions/{target}"
        );
    }
}
