//! Fuzz target `config`: `credwatch::fuzzing::config` on libFuzzer's inputs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| credwatch::fuzzing::config(data));
