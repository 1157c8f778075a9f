//! Property tests: codec round trips, and hostile bytes into both roles.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// test harness: a failure is a panic

// Tests are the caller: they own the clock that the core is handed.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use common::mem::MemStore;
use proptest::prelude::*;
use protocol_core::wire::{self, RequestEncoding, ResponseEncoding};
use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn field() -> impl Strategy<Value = FieldString> {
    proptest::collection::vec(1u8..=255, 0..=254).prop_map(|v| FieldString::new(v).unwrap())
}

fn client_id() -> impl Strategy<Value = ClientId> {
    any::<[u8; 16]>().prop_map(ClientId)
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        field().prop_map(|name| Request::Register { name }),
        field().prop_map(|name| Request::Reconnect { name }),
        (field(), any::<[u8; 32]>()).prop_map(|(name, k)| Request::SendPublicKey {
            name,
            public_key: Bytes::from([&k[..], &[0u8; 128][..]].concat()),
        }),
        (
            any::<u32>(),
            any::<u32>(),
            any::<u16>(),
            any::<u16>(),
            field(),
            proptest::collection::vec(any::<u8>(), 0..600)
        )
            .prop_map(
                |(c, o, n, t, file_name, content)| Request::SendFile(FilePacket {
                    content_size: c,
                    original_size: o,
                    packet_number: n,
                    total_packets: t,
                    file_name,
                    content: content.into(),
                })
            ),
        field().prop_map(|file_name| Request::CrcOk { file_name }),
        field().prop_map(|file_name| Request::CrcRetry { file_name }),
        field().prop_map(|file_name| Request::CrcAbort { file_name }),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        client_id().prop_map(|client_id| Response::Registered { client_id }),
        Just(Response::RegistrationFailed),
        (client_id(), proptest::collection::vec(any::<u8>(), 1..=512)).prop_map(
            |(client_id, k)| {
                Response::AesKey {
                    client_id,
                    encrypted_key: k.into(),
                }
            }
        ),
        (client_id(), any::<u32>(), field(), any::<u32>()).prop_map(
            |(client_id, content_size, file_name, checksum)| Response::FileReceived {
                client_id,
                content_size,
                file_name,
                checksum
            }
        ),
        proptest::option::of(client_id()).prop_map(|client_id| Response::Ack { client_id }),
        (client_id(), proptest::collection::vec(any::<u8>(), 1..=512)).prop_map(
            |(client_id, k)| {
                Response::Reconnected {
                    client_id,
                    encrypted_key: k.into(),
                }
            }
        ),
        proptest::option::of(client_id())
            .prop_map(|client_id| Response::ReconnectRefused { client_id }),
        Just(Response::GeneralError),
    ]
}

fn order() -> impl Strategy<Value = ByteOrder> {
    prop_oneof![Just(ByteOrder::Little), Just(ByteOrder::Big)]
}

proptest! {
    #[test]
    fn every_request_round_trips(id in client_id(), req in request(), order in order(), split in any::<prop::sample::Index>()) {
        let mut buf = BytesMut::new();
        wire::encode_request(&mut buf, id, &req, RequestEncoding { byte_order: order, ..Default::default() });
        let whole = buf.clone();
        // Any prefix is "not yet"; the whole frame decodes to the same request.
        let at = split.index(whole.len());
        let mut prefix = BytesMut::from(&whole[..at]);
        prop_assert_eq!(wire::decode_request(&mut prefix, &Limits::default()).unwrap(), None);
        let frame = wire::decode_request(&mut buf, &Limits::default()).unwrap().unwrap();
        prop_assert!(buf.is_empty());
        prop_assert_eq!(frame.client_id, id);
        prop_assert_eq!(frame.byte_order, order);
        prop_assert_eq!(frame.request, req);
    }

    #[test]
    fn every_response_round_trips(resp in response(), order in order()) {
        let mut buf = BytesMut::new();
        wire::encode_response(&mut buf, &resp, ResponseEncoding { byte_order: order, empty_ack: false });
        prop_assert_eq!(wire::decode_response(&mut buf).unwrap(), Some(resp));
        prop_assert!(buf.is_empty());
    }

    /// Hostile bytes, in hostile pieces: no panic, and a correct transport (one that
    /// reads only while `wants_read`) never holds more than one frame's limit.
    #[test]
    fn arbitrary_bytes_into_the_server_never_panic_or_overgrow(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 0..30),
        prefix in proptest::option::of(0usize..3),
    ) {
        let limits = Limits { max_payload: 2048, max_unwritten: 4096, ..Limits::default() };
        let now = Instant::now();
        let mut server = ServerConnection::new(
            ServerConfig { limits: limits.clone(), ..ServerConfig::default() },
            ChaCha20Rng::seed_from_u64(1), now);
        let mut store = MemStore::default();
        let mut input = BytesMut::new();
        // Sometimes start from a valid registration, so later garbage meets a session.
        if let Some(k) = prefix {
            let name = FieldString::new(format!("user{k}")).unwrap();
            wire::encode_request(&mut input, ClientId::ZERO, &Request::Register { name }, Default::default());
        }
        let mut out = BytesMut::new();
        for c in chunks {
            if server.wants_read() {
                input.extend_from_slice(&c);
            }
            let _ = server.handle_input(&mut input, now);
            store.serve(&mut server);
            let _ = server.handle_input(&mut input, now);
            store.serve(&mut server);
            server.poll_transmit(&mut out);
            prop_assert!(
                server.is_closed() || !server.wants_read()
                    || input.len() <= wire::REQUEST_HEADER_LEN + limits.max_payload + 400,
                "input grew to {} while the server still wanted more", input.len());
        }
        server.handle_eof();
        store.serve(&mut server);
    }

    #[test]
    fn arbitrary_bytes_into_the_client_never_panic(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
    ) {
        let mut client = ClientSession::new(ClientConfig {
            name: FieldString::new("x").unwrap(),
            file_name: FieldString::new("f").unwrap(),
            file_size: 10,
            identity: None,
            registration_key: Some(common_key()),
            dialect: Dialect::default(),
        }, ChaCha20Rng::seed_from_u64(2)).unwrap();
        let mut input = BytesMut::new();
        for c in chunks {
            input.extend_from_slice(&c);
            let _ = client.handle_input(&mut input);
            while client.poll_event().is_some() {}
            // A response is never larger than 16 + 512 bytes after its header.
            prop_assert!(client.is_finished() || input.len() < 7 + 16 + 512 + 300);
        }
    }
}

fn common_key() -> protocol_core::crypto::PrivateKey {
    protocol_core::crypto::PrivateKey::from_base64(&common::rsa_field("private_pkcs8_b64")).unwrap()
}
