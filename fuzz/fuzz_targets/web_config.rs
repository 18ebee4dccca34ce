//! Fuzz target `web_config`: `credwatch::fuzzing::web_config` on libFuzzer's inputs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| credwatch::fuzzing::web_config(data));
