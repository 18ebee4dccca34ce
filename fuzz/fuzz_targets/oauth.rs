//! Fuzz target `oauth`: `credwatch::fuzzing::oauth_answers` on libFuzzer's inputs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| credwatch::fuzzing::oauth_answers(data));
