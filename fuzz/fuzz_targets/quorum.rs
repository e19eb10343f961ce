//! Fuzz target: any bytes through the quorum link's frame splitter, greeting and message decoder.
//! Run: `cargo fuzz run quorum` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    corral::zab::wire::decode_stream(data);
});
