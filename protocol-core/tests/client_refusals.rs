//! What the client session does with refusals: a refused name (1601) ends the run
//! at once, and a refused reconnect (1606) registers anew only when allowed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use bytes::BytesMut;
use protocol_core::crypto::PrivateKey;
use protocol_core::wire::{self, RequestCode, ResponseCode};
use protocol_core::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn session(identity: Option<Identity>) -> ClientSession<ChaCha20Rng> {
    ClientSession::new(
        ClientConfig {
            name: FieldString::new("alice").unwrap(),
            file_name: FieldString::new("f.txt").unwrap(),
            file_size: 3,
            identity,
            registration_key: None,
            dialect: Dialect::default(),
        },
        ChaCha20Rng::seed_from_u64(1),
    )
    .unwrap()
}

fn answer(s: &mut ClientSession<ChaCha20Rng>, r: Response) -> Result<(), ClientFailure> {
    let mut input = BytesMut::new();
    wire::encode_response(&mut input, &r, Default::default());
    s.handle_input(&mut input)
}

fn sent_codes(s: &mut ClientSession<ChaCha20Rng>) -> Vec<RequestCode> {
    let mut out = BytesMut::new();
    s.poll_transmit(&mut out);
    let mut codes = Vec::new();
    while let Ok(Some(frame)) = wire::decode_request(&mut out, &Default::default()) {
        codes.push(frame.request.code());
    }
    codes
}

fn identity() -> Identity {
    Identity {
        client_id: ClientId::from_hex(&"ab".repeat(16)).unwrap(),
        private_key: PrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(2)).unwrap(),
    }
}

#[test]
fn a_refused_name_ends_the_run_after_one_attempt() {
    let mut s = session(None);
    assert_eq!(sent_codes(&mut s), [RequestCode::Register]);
    let failure = answer(&mut s, Response::RegistrationFailed).unwrap_err();
    assert_eq!(
        failure,
        ClientFailure::ServerRefused {
            request: RequestCode::Register,
            last: ResponseCode::RegistrationFailed,
            attempts: 1,
        }
    );
    assert!(s.is_finished());
    assert!(sent_codes(&mut s).is_empty(), "no second 825");
}

#[test]
fn a_general_error_on_registration_is_still_retried() {
    let mut s = session(None);
    sent_codes(&mut s);
    answer(&mut s, Response::GeneralError).unwrap();
    assert_eq!(sent_codes(&mut s), [RequestCode::Register]);
}

#[test]
fn a_refused_reconnect_registers_anew_only_when_allowed() {
    let id = identity();
    let mut s = session(Some(id.clone()));
    assert_eq!(sent_codes(&mut s), [RequestCode::Reconnect]);
    let refused = Response::ReconnectRefused {
        client_id: Some(id.client_id),
    };
    answer(&mut s, refused.clone()).unwrap();
    assert!(matches!(
        s.poll_event(),
        Some(ClientEvent::ReconnectRefused)
    ));
    assert_eq!(sent_codes(&mut s), [RequestCode::Register]);

    let mut s = session(Some(id));
    s.set_register_when_refused(false);
    sent_codes(&mut s);
    assert_eq!(
        answer(&mut s, refused).unwrap_err(),
        ClientFailure::ReconnectRefused
    );
    assert!(s.is_finished());
    assert!(sent_codes(&mut s).is_empty(), "no 825");
}
