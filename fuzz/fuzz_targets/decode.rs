//! Fuzz target: any bytes through the frame splitter and every request decoder.
//! Run: `cargo fuzz run decode` (see fuzz/README.md).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    corral::proto::decode_everything(data, 1 << 20);
});
