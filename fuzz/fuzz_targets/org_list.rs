//! Fuzz target `org_list`: `credwatch::fuzzing::org_list` on libFuzzer's inputs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| credwatch::fuzzing::org_list(data));
