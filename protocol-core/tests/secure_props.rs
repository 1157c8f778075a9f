//! Property tests of the secure extension's frames and server session.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // a test may read the clock the core is given

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use protocol_core::secure::frame::{
    decode_request, decode_response, encode_request, encode_response, Described, FileEntry,
    Refusal, RequestLimits, SecureRequest, SecureResponse, VersionEntry, MAX_DATA,
};
use protocol_core::secure::keys::KeyKind;
use protocol_core::secure::SessionBinding;
use protocol_core::{ClientId, ServerConfig, ServerConnection, ServerEvent};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn name() -> impl Strategy<Value = String> {
    "[ -~]{1,40}"
}

fn kind() -> impl Strategy<Value = KeyKind> {
    prop_oneof![
        Just(KeyKind::LegacyRsa),
        Just(KeyKind::Ed25519),
        Just(KeyKind::Rsa)
    ]
}

fn blob(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn request() -> impl Strategy<Value = SecureRequest> {
    prop_oneof![
        (kind(), blob(300)).prop_map(|(kind, signature)| SecureRequest::SignIn { kind, signature }),
        (name(), kind(), blob(300), blob(300)).prop_map(|(name, kind, key, signature)| {
            SecureRequest::Register {
                name,
                kind,
                key,
                signature,
            }
        }),
        (kind(), blob(64), blob(64)).prop_map(|(kind, key, signature)| SecureRequest::SetKey {
            kind,
            key,
            signature
        }),
        any::<bool>().prop_map(|keep| SecureRequest::KeepLegacy { keep }),
        (name(), any::<u64>()).prop_map(|(name, size)| SecureRequest::PutBegin { name, size }),
        blob(5000).prop_map(|data| SecureRequest::PutData { data }),
        any::<[u8; 32]>().prop_map(|sha256| SecureRequest::PutEnd { sha256 }),
        Just(SecureRequest::List),
        name().prop_map(|name| SecureRequest::Versions { name }),
        (
            name(),
            proptest::option::of(1u64..),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(
                |(name, version, offset, unverified_ok)| SecureRequest::Get {
                    name,
                    version,
                    offset,
                    unverified_ok
                }
            ),
        name().prop_map(|name| SecureRequest::Remove { name }),
        (name(), any::<u64>()).prop_map(|(name, version)| SecureRequest::Restore { name, version }),
    ]
}

fn described() -> impl Strategy<Value = Described> {
    (
        any::<u64>(),
        any::<bool>(),
        proptest::option::of(any::<[u8; 32]>()),
        proptest::option::of(any::<u32>()),
        "[0-9: -]{0,20}",
    )
        .prop_map(|(size, verified, sha256, cksum, updated)| Described {
            size,
            verified,
            sha256,
            cksum,
            updated,
        })
}

fn response() -> impl Strategy<Value = SecureResponse> {
    prop_oneof![
        Just(SecureResponse::Done),
        any::<bool>().prop_map(|legacy_open| SecureResponse::SignedIn { legacy_open }),
        any::<[u8; 16]>().prop_map(|b| SecureResponse::Registered {
            client_id: ClientId(b)
        }),
        any::<u64>().prop_map(|offset| SecureResponse::PutOffset { offset }),
        (any::<u64>(), any::<u32>(), any::<[u8; 32]>()).prop_map(|(size, cksum, sha256)| {
            SecureResponse::Stored {
                size,
                cksum,
                sha256,
            }
        }),
        (name(), described(), any::<u32>()).prop_map(|(name, content, versions)| {
            SecureResponse::FileEntry(FileEntry {
                name,
                content,
                versions,
            })
        }),
        (1u64.., described(), "[0-9: -]{0,20}").prop_map(|(id, content, superseded)| {
            SecureResponse::VersionEntry(VersionEntry {
                id,
                content,
                superseded,
            })
        }),
        any::<u32>().prop_map(|count| SecureResponse::ListEnd { count }),
        (proptest::option::of(1u64..), any::<u64>(), described()).prop_map(
            |(version, offset, content)| SecureResponse::GetBegin {
                version,
                offset,
                content
            }
        ),
        blob(5000).prop_map(|data| SecureResponse::GetData { data }),
        Just(SecureResponse::GetEnd),
        (1u16..20, "[ -~]{0,80}").prop_map(|(c, message)| SecureResponse::Refused {
            reason: Refusal::from_code(c),
            message
        }),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip_whole_and_split(req in request(), id in any::<[u8; 16]>(), cut in any::<prop::sample::Index>()) {
        let mut buf = BytesMut::new();
        encode_request(&mut buf, ClientId(id), &req);
        let whole = buf.clone();
        let at = cut.index(whole.len());
        // A prefix alone is incomplete, never an error.
        let mut prefix = BytesMut::from(&whole[..at]);
        prop_assert_eq!(decode_request(&mut prefix, &RequestLimits::default()).unwrap(), None);
        let got = decode_request(&mut buf, &RequestLimits::default()).unwrap();
        prop_assert_eq!(got, Some((ClientId(id), req)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn responses_round_trip(resp in response()) {
        let mut buf = BytesMut::new();
        encode_response(&mut buf, &resp);
        prop_assert_eq!(decode_response(&mut buf).unwrap(), Some(resp));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn any_bytes_into_a_secure_connection_never_panic_nor_pile_up(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 1..8),
        secure_header in any::<bool>(),
    ) {
        let now = Instant::now();
        let mut conn = ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(1), now);
        conn.enter_secure(SessionBinding::new([5; 32]));
        let mut input = BytesMut::new();
        for (i, c) in chunks.iter().enumerate() {
            let mut c = c.clone();
            if secure_header && i == 0 && c.len() >= 23 {
                c[16] = 0x83; // get past the version check into the payload decoders
            }
            input.extend_from_slice(&c);
            let _ = conn.handle_input(&mut input, now);
            while let Some(ev) = conn.poll_event() {
                let ServerEvent::Secure(_) = ev else { panic!("legacy event inside TLS") };
            }
            let mut out = BytesMut::new();
            conn.poll_transmit(&mut out);
            // Never more than one largest frame is held unanswered.
            prop_assert!(input.len() <= 23 + MAX_DATA + 3000);
        }
    }
}
