//! Hostile load, short and bounded: the real `server` (default settings except the
//! connection cap, lowered so that a few dozen connections reach it) and the real
//! `client`. Outcomes only: the real client is served, refusals get a 1607, the log
//! has no line per refused connection. The figures are the `load` program's.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use protocol_core::wire::{self, ClientId, FieldString, Request};

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// The code of the first answer on `s`, or `None` if it closed without one.
fn answer_code(s: &mut TcpStream) -> Option<u16> {
    let mut head = [0u8; 7];
    s.read_exact(&mut head).ok()?;
    Some(u16::from_le_bytes([head[1], head[2]]))
}

fn register(s: &mut TcpStream, name: &str) -> Option<u16> {
    let mut req = BytesMut::new();
    let name = FieldString::new(name).unwrap();
    wire::encode_request(
        &mut req,
        ClientId::ZERO,
        &Request::Register { name },
        Default::default(),
    );
    s.write_all(&req).ok()?;
    answer_code(s)
}

fn real_client_is_served_past(transport: &str, hostile: impl Fn(u16) -> Vec<TcpStream>) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("server"),
        0,
        &["--transport", transport, "--max-connections", "16"],
    );
    let _held = hostile(server.port);
    let c = client_dir(tmp.path(), "real", server.port, "a.txt", &data(5000, 3));
    assert_ok(&run_client(&c, &[]), "the real client past the load");
}

fn idle(port: u16) -> Vec<TcpStream> {
    (0..40).map(|_| connect(port)).collect()
}

fn slow(port: u16) -> Vec<TcpStream> {
    (0..40)
        .map(|_| {
            let mut s = connect(port);
            s.write_all(&[0u8; 5]).unwrap();
            s
        })
        .collect()
}

#[test]
fn idle_connections_at_the_cap_do_not_keep_a_real_client_out_tokio() {
    real_client_is_served_past("tokio", idle);
}

#[test]
fn idle_connections_at_the_cap_do_not_keep_a_real_client_out_std() {
    real_client_is_served_past("std", idle);
}

#[test]
fn slow_senders_at_the_cap_do_not_keep_a_real_client_out() {
    real_client_is_served_past("tokio", slow);
}

#[test]
fn partial_16_mib_frames_from_unknown_ids_are_refused_at_their_header() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), 0, &[]);
    let mut conns: Vec<TcpStream> = (0..10u8)
        .map(|i| {
            let mut s = connect(server.port);
            let mut head = vec![i; 16];
            head.push(3);
            head.extend_from_slice(&828u16.to_le_bytes());
            head.extend_from_slice(&(16u32 * 1024 * 1024 + 267).to_le_bytes());
            s.write_all(&head).unwrap();
            // Some of the payload; the server may already have refused it.
            let _ = s.write_all(&[0u8; 4096]);
            s
        })
        .collect();
    for s in conns.iter_mut() {
        assert_eq!(answer_code(s), Some(1607), "refused at the header");
    }
    let c = client_dir(tmp.path(), "real", server.port, "a.txt", &data(5000, 3));
    assert_ok(&run_client(&c, &[]), "the real client meanwhile");
}

#[test]
fn a_registration_flood_from_one_address_gets_1607_past_its_burst() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), 0, &[]);
    // Registered before the flood: it reconnects afterwards.
    let c = client_dir(tmp.path(), "real", server.port, "a.txt", &data(5000, 3));
    assert_ok(&run_client(&c, &[]), "first run");
    let codes: Vec<Option<u16>> = (0..60)
        .map(|i| register(&mut connect(server.port), &format!("flood-{i}")))
        .collect();
    assert!(codes.contains(&Some(1600)), "{codes:?}");
    assert!(
        codes.contains(&Some(1607)),
        "the flood is limited: {codes:?}"
    );
    assert_ok(&run_client(&c, &[]), "the real client after the flood");
}

#[test]
fn refused_connections_get_1607_and_no_log_line_each() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), 0, &["--max-connections", "2"]);
    // Two connections that have just been answered: busy, not shed.
    let mut busy: Vec<TcpStream> = (0..2).map(|_| connect(server.port)).collect();
    for (i, s) in busy.iter_mut().enumerate() {
        assert_eq!(register(s, &format!("busy-{i}")), Some(1600));
    }
    let refused = 30;
    for _ in 0..refused {
        let mut s = connect(server.port);
        assert_eq!(answer_code(&mut s), Some(1607));
    }
    drop(busy);
    let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap();
    let lines = log.lines().filter(|l| l.contains("refused")).count();
    assert!(lines < refused, "a log line per refusal:\n{log}");
}
