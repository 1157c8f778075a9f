#![no_main]
//! The frame decoders on arbitrary bytes: no panic, and nothing buffered past the limit.
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol_core::{wire, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_payload: 4096, ..Limits::default() };
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = wire::decode_request(&mut buf, &limits) {}
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = wire::decode_response(&mut buf) {}
});
