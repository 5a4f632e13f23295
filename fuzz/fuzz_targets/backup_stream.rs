#![no_main]
// The body, its checks and its seeds: shelf::fuzzing::backup_stream, fuzz/corpus/backup_stream/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shelf::fuzzing::backup_stream(data));
