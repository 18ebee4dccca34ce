//! Fuzz target `classify`: `credwatch::fuzzing::classify_answer` on libFuzzer's inputs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| credwatch::fuzzing::classify_answer(data));
