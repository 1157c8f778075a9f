//! The server role against each variant of docs/PROTOCOL.md section 8 (requests that
//! break its limits: tests/server_limits.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]
// test harness: a failure is a panic

// Tests are the caller: they own the clock that the core is handed.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Instant;

use bytes::BytesMut;
use common::mem::MemStore;
use common::pattern;
use common::serving::{client, exchange, stored};
use protocol_core::crypto::cksum;
use protocol_core::wire;
use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn check_variant(dialect: Dialect, server_dialect: ServerDialect) -> Vec<u8> {
    let file = pattern(5000, 3);
    let mut store = MemStore::default();
    let (events, down) = exchange(dialect, server_dialect, &file, &mut store);
    assert!(
        matches!(
            events.last(),
            Some(ClientEvent::Finished(Outcome::Verified))
        ),
        "{events:?}"
    );
    let f = stored(&store);
    assert!(f.verified);
    assert_eq!(f.data, file);
    down
}

#[test]
fn specification_dialect_in_small_packets() {
    check_variant(
        Dialect {
            packet_size: 100,
            ..Dialect::default()
        },
        ServerDialect::default(),
    );
}

#[test]
fn variant_1_big_endian_requests_and_big_endian_responses() {
    let d = Dialect {
        byte_order: ByteOrder::Big,
        packet_size: 1024,
        ..Dialect::default()
    };
    let down = check_variant(d.clone(), ServerDialect::default());
    assert_eq!(&down[1..3], &1600u16.to_le_bytes());
    let down = check_variant(
        d,
        ServerDialect {
            response_order: ResponseOrder::MirrorRequest,
            ..ServerDialect::default()
        },
    );
    assert_eq!(&down[1..3], &1600u16.to_be_bytes());
}

#[test]
fn variant_2_total_before_number() {
    check_variant(
        Dialect {
            packet_fields: PacketFieldOrder::TotalFirst,
            packet_size: 512,
            ..Dialect::default()
        },
        ServerDialect::default(),
    );
}

#[test]
fn variant_3_content_size_per_packet() {
    check_variant(
        Dialect {
            per_packet_content_size: true,
            packet_size: 512,
            ..Dialect::default()
        },
        ServerDialect::default(),
    );
}

#[test]
fn variant_4_each_packet_encrypted_on_its_own() {
    for per_packet_size in [false, true] {
        for packet_size in [16, 100, 1000, 4096, 10_000] {
            check_variant(
                Dialect {
                    per_packet_encryption: true,
                    per_packet_content_size: per_packet_size,
                    packet_size,
                    ..Dialect::default()
                },
                ServerDialect::default(),
            );
        }
    }
}

#[test]
fn variant_4_detection_never_mistakes_a_stream_whose_blocks_look_padded() {
    // Plaintext chosen so that every packet's last block of a stream decrypts to
    // something ending in 0x01 is impossible to arrange without the key; instead, run
    // many files and packet sizes through detection with both encodings.
    for seed in 0..40 {
        let file = pattern(1500 + seed * 37, seed);
        for per_packet in [false, true] {
            let mut store = MemStore::default();
            let d = Dialect {
                per_packet_encryption: per_packet,
                per_packet_content_size: true,
                packet_size: 48 + seed * 16,
                ..Dialect::default()
            };
            let (events, _) = exchange(d, ServerDialect::default(), &file, &mut store);
            assert!(matches!(
                events.last(),
                Some(ClientEvent::Finished(Outcome::Verified))
            ));
            assert_eq!(stored(&store).data, file);
        }
    }
}

#[test]
fn variant_5_client_name_in_crc_requests() {
    check_variant(
        Dialect {
            crc_carries_client_name: true,
            ..Dialect::default()
        },
        ServerDialect::default(),
    );
}

#[test]
fn variant_6_empty_ack() {
    let down = check_variant(
        Dialect::default(),
        ServerDialect {
            empty_ack: true,
            ..ServerDialect::default()
        },
    );
    // The last frame is a 1604 with no payload.
    assert_eq!(&down[down.len() - 7..], &[3, 0x44, 0x06, 0, 0, 0, 0]);
}

#[test]
fn variant_8_zlib_crc32_and_128_bit_keys() {
    check_variant(
        Dialect {
            checksum: protocol_core::crypto::ChecksumAlgorithm::Crc32,
            ..Dialect::default()
        },
        ServerDialect {
            checksum: protocol_core::crypto::ChecksumAlgorithm::Crc32,
            aes_key_size: protocol_core::crypto::AesKeySize::Aes128,
            ..ServerDialect::default()
        },
    );
}

#[test]
fn variant_7_a_connection_per_request_with_every_packet_answered() {
    let file = pattern(4000, 8);
    let mut store = MemStore::default();
    let now = Instant::now();
    let d = Dialect {
        packet_size: 1024,
        connection_per_request: true,
        ..Dialect::default()
    };
    let mut c = client(d, &file, None);
    let mut connections = 0;
    let mut resends = 0;
    let mut lingering = Vec::new();
    'run: for _ in 0..100 {
        // One connection: the client sends one request, the server answers, and the
        // client asks for a new connection.
        connections += 1;
        let mut s =
            ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(1), now);
        let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
        for _ in 0..10 {
            while let Some(ev) = c.poll_event() {
                match ev {
                    ClientEvent::SendFile { attempt } => {
                        resends = attempt - 1;
                        assert_eq!(c.push_file_data(&file).unwrap(), file.len());
                        c.end_of_file().unwrap();
                    }
                    ClientEvent::NewConnection => {
                        // The old connection is not seen to end before the next one
                        // is served: the upload must not depend on that order.
                        lingering.push(s);
                        c.connection_opened();
                        continue 'run;
                    }
                    _ => {}
                }
            }
            if c.is_finished() {
                break 'run;
            }
            c.poll_transmit(&mut up);
            let frames = {
                let mut probe = up.clone();
                let mut n = 0;
                while let Ok(Some(_)) = wire::decode_request(&mut probe, &Limits::default()) {
                    n += 1;
                }
                n
            };
            assert!(frames <= 1, "one request per connection, got {frames}");
            s.handle_input(&mut up, now).unwrap();
            store.serve(&mut s);
            s.poll_transmit(&mut down);
            c.handle_input(&mut down).unwrap();
        }
    }
    for mut s in lingering {
        s.handle_eof();
        store.serve(&mut s);
    }
    assert!(c.is_finished());
    assert_eq!(resends, 0);
    let f = stored(&store);
    assert!(f.verified);
    assert_eq!(f.data, file);
    // 825, 826, four packets, 900: a connection each.
    assert_eq!(connections, 7);
}

#[test]
fn checksum_in_1603_is_the_cksum_of_the_plaintext() {
    let file = pattern(70_000, 1);
    let mut store = MemStore::default();
    let (_, down) = exchange(
        Dialect::default(),
        ServerDialect::default(),
        &file,
        &mut store,
    );
    // 1600, 1602 (16 + 128), 1603, 1604.
    let at = 7 + 16 + 7 + 16 + 128;
    assert_eq!(u16::from_le_bytes([down[at + 1], down[at + 2]]), 1603);
    let c = &down[at + 7 + 16 + 4 + 255..at + 7 + 16 + 4 + 255 + 4];
    assert_eq!(u32::from_le_bytes(c.try_into().unwrap()), cksum(&file));
}
