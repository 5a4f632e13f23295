#![no_main]
// The body, its checks and its seeds: shelf::fuzzing::tar, fuzz/corpus/tar/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shelf::fuzzing::tar(data));
