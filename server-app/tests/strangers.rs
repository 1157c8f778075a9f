//! A stranger who knows a client id (it travels in clear in every legacy request)
//! against the real `server` binary, with default settings: each attack of
//! docs/SECURITY.md ("What a stranger who knows a client id can do") tried with a
//! small hostile client, and what it may no longer do.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use protocol_core::crypto::{cksum, AesKey, CbcEncryptor, PrivateKey};
use protocol_core::rand_core::OsRng;
use protocol_core::wire::{self, FilePacket, Request, RequestEncoding, Response};
use protocol_core::{ClientId, FieldString};

/// One connection that speaks the wire by hand.
struct Peer {
    s: TcpStream,
    buf: BytesMut,
}

impl Peer {
    fn connect(port: u16) -> Peer {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Peer {
            s,
            buf: BytesMut::new(),
        }
    }

    fn send(&mut self, id: ClientId, req: &Request) {
        let mut out = BytesMut::new();
        wire::encode_request(&mut out, id, req, RequestEncoding::default());
        // A server that closed meanwhile shows at the next `recv`.
        let _ = self.s.write_all(&out);
    }

    /// The next answer; `None` when the server closed (or reset) the connection.
    fn recv(&mut self) -> Option<Response> {
        recv_response(&mut self.s, &mut self.buf)
    }

    fn ask(&mut self, id: ClientId, req: &Request) -> Option<Response> {
        self.send(id, req);
        self.recv()
    }
}

fn name(s: &str) -> FieldString {
    FieldString::new(s).unwrap()
}

/// A whole file in one packet.
fn packet(file: &str, content: &[u8], original: usize) -> Request {
    Request::SendFile(FilePacket {
        content_size: content.len() as u32,
        original_size: original as u32,
        packet_number: 1,
        total_packets: 1,
        file_name: name(file),
        content: content.to_vec().into(),
    })
}

fn encrypt(key: &AesKey, data: &[u8]) -> Vec<u8> {
    let mut e = CbcEncryptor::new(key);
    let mut out = BytesMut::new();
    e.update(data, &mut out);
    e.finish(&mut out);
    out.to_vec()
}

/// The victim: registered (825, 826) on `peer`, with the key issued to it.
struct Victim {
    id: ClientId,
    key: AesKey,
    peer: Peer,
}

fn register(port: u16, who: &str) -> Victim {
    let mut peer = Peer::connect(port);
    let Some(Response::Registered { client_id: id }) =
        peer.ask(ClientId::ZERO, &Request::Register { name: name(who) })
    else {
        panic!("registration refused");
    };
    let private = PrivateKey::generate(&mut OsRng).unwrap();
    let field = private.public_key().to_field().unwrap();
    let answer = peer.ask(
        id,
        &Request::SendPublicKey {
            name: name(who),
            public_key: field.to_vec().into(),
        },
    );
    let Some(Response::AesKey { encrypted_key, .. }) = answer else {
        panic!("no AES key: {answer:?}");
    };
    let key = private.decrypt_aes_key(&encrypted_key).unwrap();
    Victim { id, key, peer }
}

impl Victim {
    /// Sends `data` as `file` on its own connection: the checksum in the 1603.
    fn upload(&mut self, file: &str, data: &[u8]) -> u32 {
        let ct = encrypt(&self.key, data);
        match self.peer.ask(self.id, &packet(file, &ct, data.len())) {
            Some(Response::FileReceived { checksum, .. }) => checksum,
            other => panic!("upload not received: {other:?}"),
        }
    }

    fn verdict(&mut self, verified: bool, file: &str) -> Option<Response> {
        let file_name = name(file);
        let req = if verified {
            Request::CrcOk { file_name }
        } else {
            Request::CrcAbort { file_name }
        };
        self.peer.ask(self.id, &req)
    }
}

/// The bytes the record of `id`'s `file` names, and whether it is verified.
fn stored(server: &Path, id: ClientId, file: &str) -> Option<(Vec<u8>, bool)> {
    let r = records(server)
        .into_iter()
        .find(|r| r.client == id && r.file_name == file)?;
    Some((std::fs::read(server.join(&r.object)).unwrap(), r.verified))
}

fn start(tmp: &Path) -> Server {
    Server::start(&tmp.join("server"), 0, &["--metrics", "127.0.0.1:0"])
}

/// `fileserver_client_strain_total` for this client and reason, from /metrics.
fn strain(server: &Server, id: ClientId, reason: &str) -> u64 {
    let prefix = &id.to_hex()[..8];
    let (_, body) = server.http_get("/metrics");
    let series =
        format!("fileserver_client_strain_total{{client=\"{prefix}\",reason=\"{reason}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[test]
fn a_verdict_from_another_connection_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let sdir = server.dir.clone();
    let mut victim = register(server.port, "victim");
    let original = b"the thesis, as its author confirmed it\n".repeat(30);
    let sum = victim.upload("thesis.pdf", &original);
    assert_eq!(sum, cksum(&original));
    assert!(matches!(
        victim.verdict(true, "thesis.pdf"),
        Some(Response::Ack { .. })
    ));

    // A second version arrives; its author has not decided yet. A stranger with only
    // the id, on a connection of its own, tries both verdicts first.
    let second = b"a draft the author will reject\n".repeat(20);
    victim.upload("thesis.pdf", &second);
    for verified in [true, false] {
        let mut stranger = Peer::connect(server.port);
        let file_name = name("thesis.pdf");
        let req = if verified {
            Request::CrcOk { file_name }
        } else {
            Request::CrcAbort { file_name }
        };
        let answer = stranger.ask(victim.id, &req);
        assert_eq!(answer, Some(Response::GeneralError), "hijack answered");
    }
    assert_eq!(
        stored(&sdir, victim.id, "thesis.pdf"),
        Some((original.clone(), true))
    );
    // The victim's own verdict still decides its upload.
    assert!(matches!(
        victim.verdict(false, "thesis.pdf"),
        Some(Response::Ack { .. })
    ));
    assert_eq!(
        stored(&sdir, victim.id, "thesis.pdf"),
        Some((original.clone(), true))
    );

    // After the victim's connection dies, its finished upload is no one's to decide.
    victim.upload("thesis.pdf", &second);
    drop(victim.peer);
    std::thread::sleep(Duration::from_millis(200));
    let mut stranger = Peer::connect(server.port);
    let answer = stranger.ask(
        victim.id,
        &Request::CrcOk {
            file_name: name("thesis.pdf"),
        },
    );
    assert_eq!(answer, Some(Response::GeneralError));
    assert_eq!(
        stored(&sdir, victim.id, "thesis.pdf"),
        Some((original, true))
    );
    assert!(strain(&server, victim.id, "verdict_elsewhere") >= 3);
    let log = std::fs::read_to_string(sdir.join("server.log")).unwrap();
    assert!(
        log.contains("refused: no upload of this connection awaits a verdict"),
        "{log}"
    );
    server.stop();
}

#[test]
fn one_issued_key_gets_at_most_four_whole_file_checksums() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let mut victim = register(server.port, "victim");
    // 40 bytes: three blocks, the last one padded.
    let secret = b"password=correct horse battery staple!!!".to_vec();
    assert_eq!(secret.len(), 40);
    let ct = encrypt(&victim.key, &secret);
    victim.upload("secret.txt", &secret);
    assert!(matches!(
        victim.verdict(true, "secret.txt"),
        Some(Response::Ack { .. })
    ));
    // The stranger replays the victim's last two blocks behind a block of its choice:
    // the padding stays valid, and each 1603 would carry a CRC of D(X).
    let mut checksums = 0;
    for i in 0..10u8 {
        let mut forged = vec![i; 16];
        forged.extend_from_slice(&ct[16..]);
        let mut stranger = Peer::connect(server.port);
        if let Some(Response::FileReceived { .. }) =
            stranger.ask(victim.id, &packet("secret.txt", &forged, 40))
        {
            checksums += 1;
            stranger.send(
                victim.id,
                &Request::CrcRetry {
                    file_name: name("secret.txt"),
                },
            );
        }
    }
    // The victim's own upload had the first of the key's four.
    assert_eq!(checksums, 3, "the oracle answers at most 4 times per key");
    // A re-key (the stranger's own 827) starts a new count for the new key only: a
    // connection that still holds the old key gets no more checksums under it.
    let mut holder = Peer::connect(server.port);
    let mut forged = vec![0xee; 16];
    forged.extend_from_slice(&ct[16..]);
    let answer = holder.ask(victim.id, &packet("secret.txt", &forged, 40));
    assert_eq!(answer, Some(Response::GeneralError), "the fifth is refused");
    let mut rekey = Peer::connect(server.port);
    assert!(matches!(
        rekey.ask(
            victim.id,
            &Request::Reconnect {
                name: name("victim")
            }
        ),
        Some(Response::Reconnected { .. })
    ));
    let answer = holder.ask(victim.id, &packet("secret.txt", &forged, 40));
    assert_eq!(answer, Some(Response::GeneralError), "the old key is spent");
    assert!(strain(&server, victim.id, "checked_uploads") >= 1);
    // The victim's file is untouched, and a re-key (827) opens a new allowance.
    assert_eq!(
        stored(&server.dir, victim.id, "secret.txt"),
        Some((secret, true))
    );
    server.stop();
}

#[test]
fn a_strangers_junk_under_a_client_id_does_not_revoke_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let mut victim = register(server.port, "victim");
    let mut stranger = Peer::connect(server.port);
    stranger.send(victim.id, &packet("thesis.pdf", &[0x5a; 16], 15));
    // A 1607 and a close, or (one time in 256) a 1603 for 15 bytes of garbage.
    let _ = stranger.recv();
    drop(stranger);
    // The victim's key still works, on its own connection and looked up by id on a
    // new one (a client with a connection per request).
    let data = b"still mine\n".repeat(10);
    assert_eq!(victim.upload("notes.txt", &data), cksum(&data));
    assert!(matches!(
        victim.verdict(true, "notes.txt"),
        Some(Response::Ack { .. })
    ));
    let mut again = Peer::connect(server.port);
    let ct = encrypt(&victim.key, &data);
    assert!(matches!(
        again.ask(victim.id, &packet("notes2.txt", &ct, data.len())),
        Some(Response::FileReceived { .. })
    ));
    assert_eq!(strain(&server, victim.id, "decryption_failure"), 1);
    // A connection that awaits a verdict holds a graceful stop: close both first.
    drop((victim, again));
    server.stop();
}

#[test]
fn re_keys_and_decryption_failures_under_one_client_id_are_limited() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let victim = register(server.port, "victim");
    // The first step of the blind-replacement loop: 827 with the victim's id and
    // name mints a fresh key each time.
    let mut rekeys = 0;
    for _ in 0..40 {
        let mut stranger = Peer::connect(server.port);
        if let Some(Response::Reconnected { .. }) = stranger.ask(
            victim.id,
            &Request::Reconnect {
                name: name("victim"),
            },
        ) {
            rekeys += 1;
        }
    }
    // 20 at once, and one more every 30 s while the loop ran.
    assert!((20..=22).contains(&rekeys), "{rekeys} re-keys");
    assert!(strain(&server, victim.id, "rekeys") >= 18);
    // Without a key of its own, junk under the key on file: each try is a guess.
    for _ in 0..15 {
        let mut stranger = Peer::connect(server.port);
        stranger.send(victim.id, &packet("thesis.pdf", &[0x33; 16], 15));
        let _ = stranger.recv();
    }
    let failures = strain(&server, victim.id, "decryption_failure");
    let locked = strain(&server, victim.id, "decryption_failures_locked");
    assert!((10..=11).contains(&failures), "{failures} decryption tries");
    assert!(locked >= 4, "{locked} refused before decryption");
    let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap();
    let prefix = &victim.id.to_hex()[..8];
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(prefix) && l.contains("827 refused")),
        "{log}"
    );
    assert!(
        !log.contains(&victim.id.to_hex()),
        "whole ids are never logged"
    );
    server.stop();
}

#[test]
fn a_blind_replacement_loop_leaves_the_victims_bytes_current_or_a_version() {
    use server_app::storage::Metadata;
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let mut victim = register(server.port, "victim");
    let original = b"%PDF-1.7 the thesis\n".repeat(50);
    victim.upload("thesis.pdf", &original);
    assert!(matches!(
        victim.verdict(true, "thesis.pdf"),
        Some(Response::Ack { .. })
    ));
    drop(victim.peer);
    // The loop of the attack, bounded: a re-key when the server allows one, then 16
    // random bytes declaring 15 under the victim's file name, and a 900 whenever a
    // 1603 comes back (about one try in 256).
    let (mut tries, mut replaced) = (0, 0);
    for i in 0..300u32 {
        let mut stranger = Peer::connect(server.port);
        let rekeyed = matches!(
            stranger.ask(
                victim.id,
                &Request::Reconnect {
                    name: name("victim")
                }
            ),
            Some(Response::Reconnected { .. })
        );
        if !rekeyed {
            stranger = Peer::connect(server.port);
        }
        let mut junk = [0u8; 16];
        junk[..4].copy_from_slice(&i.to_le_bytes());
        junk[4..].copy_from_slice(&[0x77; 12]);
        match stranger.ask(victim.id, &packet("thesis.pdf", &junk, 15)) {
            Some(Response::FileReceived { .. }) => {
                tries += 1;
                if let Some(Response::Ack { .. }) = stranger.ask(
                    victim.id,
                    &Request::CrcOk {
                        file_name: name("thesis.pdf"),
                    },
                ) {
                    replaced += 1;
                }
            }
            Some(Response::GeneralError) | None => tries += 1,
            other => panic!("{other:?}"),
        }
    }
    let rejected_early = strain(&server, victim.id, "decryption_failures_locked")
        + strain(&server, victim.id, "rekeys");
    let decrypted = strain(&server, victim.id, "decryption_failure");
    // 20 re-keys and 10 failures at once, and the refills of a loop that ran a few
    // seconds: the rest never reached a decryption.
    assert!(decrypted <= 35, "{decrypted} tries decrypted of {tries}");
    assert!(rejected_early >= 250, "{rejected_early} refused early");
    // Whatever luck the stranger had, the victim's bytes are current or kept.
    let meta = server_app::storage::sqlite::SqliteMetadata::open_read_only(
        &server.dir.join("defensive.db"),
    )
    .unwrap();
    let current = stored(&server.dir, victim.id, "thesis.pdf");
    let versions: Vec<Vec<u8>> = meta
        .versions(Some(&victim.id), Some("thesis.pdf"))
        .unwrap()
        .iter()
        .filter(|v| v.verified)
        .map(|v| std::fs::read(server.dir.join(&v.object)).unwrap())
        .collect();
    assert!(
        current == Some((original.clone(), true)) || versions.contains(&original),
        "replaced {replaced} times; the victim's bytes are lost"
    );
    eprintln!(
        "blind replacement: {tries} tries, {decrypted} decrypted, {rejected_early} refused \
         before decryption, {replaced} replacements"
    );
    server.stop();
}
