//! Fuzz target `pat_list`: `credwatch::fuzzing::pat_list` on libFuzzer's inputs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| credwatch::fuzzing::pat_list(data));
