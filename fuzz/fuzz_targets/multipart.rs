#![no_main]
// The body, its checks and its seeds: shelf::fuzzing::multipart, fuzz/corpus/multipart/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shelf::fuzzing::multipart(data));
