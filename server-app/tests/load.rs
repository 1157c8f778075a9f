//! Hostile load, short and bounded: the real `server` (default settings except the
//! connection cap or the registration burst, lowered so that a few dozen
//! connections reach them) and the real `client`. Outcomes only: the real client is
//! served, honest bursts are served with the defaults, refusals get a 1607, the log
//! has no line per refused connection. The figures are the `load` program's.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

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
    // A --timeout shorter than the server's 10 s deadline for a first header: the
    // client's retries of a busy server cannot outwait the hostile connections, so
    // only shedding them lets it in.
    assert_ok(
        &run_client(&c, &["--timeout", "4"]),
        "the real client past the load",
    );
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
    let server = Server::start(
        &tmp.path().join("server"),
        0,
        &[
            "--registrations-burst",
            "20",
            "--registrations-per-second",
            "1",
        ],
    );
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

/// The server with nothing but its address and port given: every default, including
/// the per-address connection cap the shared helper raises. Killed on drop.
struct DefaultServer(std::process::Child, u16);

impl DefaultServer {
    fn start(dir: &std::path::Path) -> DefaultServer {
        std::fs::create_dir_all(dir).unwrap();
        let log = dir.join("server.log");
        for _ in 0..5 {
            let port = free_port();
            let mut child = std::process::Command::new(server_bin())
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .env("RUST_LOG", "info")
                .current_dir(dir)
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let ours = format!("listening on 127.0.0.1:{port} ");
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains(&ours) {
                    return DefaultServer(child, port);
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile: another one
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("the server did not start");
    }
}

impl Drop for DefaultServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_hundred_real_clients_at_once_from_one_address_are_all_served_with_the_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let server = DefaultServer::start(&tmp.path().join("server"));
    let dirs: Vec<_> = (0..100u8)
        .map(|i| {
            let name = format!("c{i}");
            client_dir(tmp.path(), &name, server.1, "f.bin", &data(100_000, i))
        })
        .collect();
    for (i, out) in run_clients_at_once(&dirs).iter().enumerate() {
        assert_ok(out, &format!("client {i} of 100"));
    }
}

#[test]
fn a_burst_of_registrations_from_one_address_is_served_with_the_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let server = DefaultServer::start(&tmp.path().join("server"));
    // More than the old burst of 20, well within the default of 1024; each on a
    // connection of its own, as fast as the server answers.
    for i in 0..300 {
        let code = register(&mut connect(server.1), &format!("honest-{i}"));
        assert_eq!(code, Some(1600), "registration {i}");
    }
}
