#![no_main]
// The body, its checks and its seeds: shelf::fuzzing::range, fuzz/corpus/range/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shelf::fuzzing::range(data));
