//! The threat model of the secure mode (docs/PROTOCOL.md 10.4, docs/SECURITY.md):
//! a stranger who knows every client id. Once a client's first secure session is
//! done, its id opens nothing: legacy 827 and 828 with it get 1607 (the server says
//! why in its log), a TLS session cannot sign in with another key, cannot list or
//! download before signing in, and cannot replay a signature captured on another
//! session. `client --keep-legacy` reopens the legacy protocol for the victim's own
//! legacy tool.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;
mod secure_kit;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use common::{data, recv_response, Server};
use protocol_core::rand_core::OsRng;
use protocol_core::secure::frame::{Refusal, SecureRequest, SecureResponse};
use protocol_core::secure::keys::KeyKind;
use protocol_core::secure::{SecureClient, Signer};
use protocol_core::wire::{self, FilePacket, Request, RequestEncoding, Response};
use protocol_core::{ClientId, FieldString};
use secure_kit::*;

const LOCKED: &str = "legacy request refused for a client that went secure";

/// One legacy request on a connection of its own: the answer (`None`: closed).
fn legacy(port: u16, id: ClientId, request: &Request) -> Option<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut out = BytesMut::new();
    wire::encode_request(&mut out, id, request, RequestEncoding::default());
    let _ = s.write_all(&out);
    recv_response(&mut s, &mut BytesMut::new())
}

fn reconnect(name: &str) -> Request {
    Request::Reconnect {
        name: FieldString::new(name).unwrap(),
    }
}

fn packet(file: &str) -> Request {
    Request::SendFile(FilePacket {
        content_size: 16,
        original_size: 10,
        packet_number: 1,
        total_packets: 1,
        file_name: FieldString::new(file).unwrap(),
        content: vec![0x41; 16].into(),
    })
}

fn refused(r: Option<SecureResponse>) -> Refusal {
    match r {
        Some(SecureResponse::Refused { reason, .. }) => reason,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_stranger_who_knows_the_id_reaches_nothing_after_the_first_secure_session() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), 0, &[]);
    let port = server.port;
    // The victim registered in the legacy protocol, then went secure (its legacy
    // key signed the first session and was replaced by secure.key).
    let victim = folder(tmp.path(), "victor", &server.addr(), "v.bin");
    std::fs::write(victim.join("v.bin"), data(30_000, 1)).unwrap();
    ok(
        &client(&victim, &["--legacy", "v.bin"]),
        "legacy registration",
    );
    let id = ClientId::from_hex(&common::client_id(&victim)).unwrap();
    // Before: a legacy reconnect with its id and name is served.
    assert!(matches!(
        legacy(port, id, &reconnect("victor")),
        Some(Response::Reconnected { .. })
    ));
    ok(&client(&victim, &["put", "v.bin"]), "first secure session");
    assert!(victim.join("secure.key").exists());

    // (a) The legacy requests a stranger can forge with the id alone.
    let before = server.log().matches(LOCKED).count();
    assert!(matches!(
        legacy(port, id, &reconnect("victor")),
        Some(Response::GeneralError)
    ));
    assert!(matches!(
        legacy(port, id, &packet("v.bin")),
        Some(Response::GeneralError)
    ));
    let log = server.log();
    assert_eq!(log.matches(LOCKED).count(), before + 2, "{log}");
    // The victim's own legacy tool too (the lock is on the id).
    std::fs::write(victim.join("w.bin"), data(5_000, 2)).unwrap();
    // (1607 is all the legacy protocol can say: the client takes it for a busy
    // server and tries again until --timeout.)
    let out = client(&victim, &["--legacy", "--timeout", "2", "w.bin"]);
    fails(&out, 3, "the victim's legacy tool, locked out");
    assert!(stderr(&out).contains("1607"), "{}", said(&out));

    // (b) TLS sessions with the victim's id.
    let pin = pinned(&victim, &server.addr()).expect("pinned by the secure run");
    let addr = server.addr();
    // A fresh Ed25519 key: refused, and the session closes.
    let mut s = Raw::connect(&addr, pin);
    let mut proto = SecureClient::new(s.binding);
    let stranger = ed25519_dalek::SigningKey::generate(&mut OsRng);
    proto.sign_in(id, &stranger).unwrap();
    let mut out = BytesMut::new();
    proto.poll_transmit(&mut out);
    s.send_bytes(&out);
    assert_eq!(refused(s.recv()), Refusal::BadSignature);
    assert!(s.closed(), "the session closes after a bad signature");
    // Requests before signing in: refused (not signed in), and closed.
    let asks = [
        (ClientId::ZERO, SecureRequest::List),
        (id, SecureRequest::List),
        (
            id,
            SecureRequest::Get {
                name: "v.bin".into(),
                version: None,
                offset: 0,
                unverified_ok: true,
            },
        ),
        (
            ClientId::ZERO,
            SecureRequest::Versions {
                name: "v.bin".into(),
            },
        ),
    ];
    for (who, ask) in asks {
        let mut s = Raw::connect(&addr, pin);
        s.send(who, &ask);
        assert_eq!(refused(s.recv()), Refusal::NotSignedIn, "{ask:?}");
        assert!(s.closed(), "{ask:?}");
    }
    // A signature captured on session A, made with the victim's real key: it signs
    // in there, and is refused on session B.
    let key = secure_key(&victim);
    let mut a = Raw::connect(&addr, pin);
    let mut on_a = SecureClient::new(a.binding);
    on_a.sign_in(id, &key).unwrap();
    let mut captured = BytesMut::new();
    on_a.poll_transmit(&mut captured);
    let mut b = Raw::connect(&addr, pin);
    assert_ne!(a.binding.as_bytes(), b.binding.as_bytes());
    b.send_bytes(&captured);
    assert_eq!(refused(b.recv()), Refusal::BadSignature);
    assert!(b.closed());
    a.send_bytes(&captured);
    assert!(matches!(a.recv(), Some(SecureResponse::SignedIn { .. })));
    // The same frame by hand: the victim's key over A's binding, sent on a fresh B.
    let signature = key
        .sign(&protocol_core::secure::keys::sign_in_message(
            &id, &a.binding,
        ))
        .unwrap();
    let mut b = Raw::connect(&addr, pin);
    b.send(
        id,
        &SecureRequest::SignIn {
            kind: KeyKind::Ed25519,
            signature: signature.into(),
        },
    );
    assert_eq!(refused(b.recv()), Refusal::BadSignature);
    // Nothing of the stranger's became the victim's.
    a.send(id, &SecureRequest::List);
    let mut names = Vec::new();
    loop {
        match a.recv() {
            Some(SecureResponse::FileEntry(f)) => names.push(f.name),
            Some(SecureResponse::ListEnd { .. }) => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(names, vec!["v.bin".to_string()]);
    drop(a);

    // (c) --keep-legacy: the victim's legacy tool is served again.
    let out = client(&victim, &["--keep-legacy", "list"]);
    ok(&out, "--keep-legacy");
    assert!(server.log().contains("kept open"), "{}", server.log());
    let w = data(7_000, 3);
    std::fs::write(victim.join("w.bin"), &w).unwrap();
    let out = client(&victim, &["--legacy", "--timeout", "10", "w.bin"]);
    ok(&out, "legacy after --keep-legacy");
    ok(&client(&victim, &["get", "w.bin", "-o", "w.got"]), "get");
    assert!(same_bytes(&victim.join("w.got"), &victim.join("w.bin")));
    server.stop();
}
