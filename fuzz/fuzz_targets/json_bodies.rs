#![no_main]
// The body, its checks and its seeds: shelf::fuzzing::json_bodies, fuzz/corpus/json_bodies/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shelf::fuzzing::json_bodies(data));
