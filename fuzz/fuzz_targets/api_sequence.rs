#![no_main]
// The body, its checks and its seeds: shelf::fuzzing::api_sequence, fuzz/corpus/api_sequence/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shelf::fuzzing::api_sequence(data));
