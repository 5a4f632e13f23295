#![no_main]
// The body, its checks and its seeds: shelf::fuzzing::names, fuzz/corpus/names/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shelf::fuzzing::names(data));
