#![no_main]
// The body, its checks and its seeds: shelf::fuzzing::manifest, fuzz/corpus/manifest/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shelf::fuzzing::manifest(data));
