#![no_main]
// The body, its checks and its seeds: shelf::fuzzing::http, fuzz/corpus/http/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shelf::fuzzing::http(data));
