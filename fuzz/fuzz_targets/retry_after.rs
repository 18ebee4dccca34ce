//! Fuzz target `retry_after`: `credwatch::fuzzing::retry_after` on libFuzzer's inputs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| credwatch::fuzzing::retry_after(data));
