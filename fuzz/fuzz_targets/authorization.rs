#![no_main]
// The body, its checks and its seeds: shelf::fuzzing::authorization, fuzz/corpus/authorization/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shelf::fuzzing::authorization(data));
