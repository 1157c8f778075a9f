//! The PROXY protocol v2 (`--proxy-protocol`) with the real `server` binary on each
//! transport: behind a real HAProxy sending `send-proxy-v2`, clients from 127.0.0.2
//! and 127.0.0.3 (Linux routes all of 127/8 to the loopback interface) are limited
//! and logged apart; a header from an address not listed, and a listed address
//! without a good header, are refused while the server goes on serving.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::haproxy::{Backend, HaProxy, PROXY_FROM_LB};
use common::scrape::scrape;
use common::*;
use protocol_core::wire::{self, Request, RequestEncoding, Response};
use protocol_core::{ClientId, FieldString};
use transport_interface::proxy;

const TRANSPORTS: [&str; 3] = ["tokio", "std", "smol"];

/// One connection that speaks the wire by hand, from a source address of its choosing.
struct Peer {
    s: TcpStream,
    buf: BytesMut,
}

impl Peer {
    /// Connects from `source` (port chosen by the system) to 127.0.0.1:`port`.
    fn connect_from(source: &str, port: u16) -> Peer {
        use socket2::{Domain, Socket, Type};
        let source: IpAddr = source.parse().unwrap();
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::new(source, 0).into()).unwrap();
        s.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .unwrap();
        let s: TcpStream = s.into();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Peer {
            s,
            buf: BytesMut::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        // A server that closed meanwhile shows at the next `recv`.
        let _ = self.s.write_all(bytes);
    }

    /// The next answer; `None` when the server closed (or reset) the connection.
    fn recv(&mut self) -> Option<Response> {
        recv_response(&mut self.s, &mut self.buf)
    }

    fn register(&mut self, name: &str) -> Option<Response> {
        self.send(&registration(name));
        self.recv()
    }
}

fn registration(name: &str) -> Vec<u8> {
    let mut out = BytesMut::new();
    let name = FieldString::new(name).unwrap();
    let req = Request::Register { name };
    wire::encode_request(&mut out, ClientId::ZERO, &req, RequestEncoding::default());
    out.to_vec()
}

/// A request with an unknown code: a protocol violation, counted in the failure
/// bucket of the sender's address.
fn violation() -> Vec<u8> {
    let mut bytes = registration("x");
    bytes[17] = 0xff;
    bytes[18] = 0xff;
    bytes
}

fn registered(r: &Option<Response>) -> bool {
    matches!(r, Some(Response::Registered { .. }))
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

/// Waits (up to 10 s) until the server's log holds `text`.
fn wait_for_log(dir: &Path, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = log(dir);
        if log.contains(text) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {text:?} in the log: {log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (up to 10 s) until the server has no connection open (each one's failure,
/// if any, is counted when it is over).
fn wait_idle(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let port = server.metrics_port().unwrap();
    while scrape(port).value("fileserver_connections_open", &[]) != Some(0.0) {
        assert!(Instant::now() < deadline, "connections still open");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn refused_total(server: &Server) -> f64 {
    scrape(server.metrics_port().unwrap()).sum("fileserver_connections_refused_total", &[])
}

#[test]
fn behind_haproxy_send_proxy_v2_each_client_address_is_limited_and_logged_apart() {
    for transport in TRANSPORTS {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let mut args = vec!["--transport", transport, "--metrics", "127.0.0.1:0"];
        args.extend(PROXY_FROM_LB);
        // Two connections per address; three violations, given back once in 1000 s.
        args.extend([
            "--max-connections-per-ip",
            "2",
            "--failures-burst",
            "3",
            "--failures-per-second",
            "0.001",
        ]);
        let server = Server::start(&root.join("s"), 0, &args);
        let lb = HaProxy::start(&root.join("lb"), &[Backend::proxied("s", &server)]);
        lb.wait_for("s", "UP");

        // The per-address cap: 127.0.0.2 holds two connections (each has sent a
        // request, so neither may be shed); its third is refused with a 1607 at once,
        // while 127.0.0.3 is served.
        let mut held = Vec::new();
        for i in 0..2 {
            let mut p = Peer::connect_from("127.0.0.2", lb.port);
            let r = p.register(&format!("two-{i}-{transport}"));
            assert!(registered(&r), "{transport}: {r:?}");
            held.push(p);
        }
        let mut third = Peer::connect_from("127.0.0.2", lb.port);
        let r = third.recv();
        assert_eq!(
            r,
            Some(Response::GeneralError),
            "{transport}: 127.0.0.2 is over its cap"
        );
        let mut other = Peer::connect_from("127.0.0.3", lb.port);
        let r = other.register(&format!("three-{transport}"));
        assert!(
            registered(&r),
            "{transport}: 127.0.0.3 has a cap of its own: {r:?}\n{}",
            log(&server.dir)
        );
        drop((held, third, other));
        wait_idle(&server);

        // The failure bucket: three violations from 127.0.0.2 empty its bucket; its
        // next connection is refused, 127.0.0.3's is not.
        for _ in 0..3 {
            let mut p = Peer::connect_from("127.0.0.2", lb.port);
            p.send(&violation());
            assert_eq!(p.recv(), Some(Response::GeneralError), "{transport}");
            drop(p);
            wait_idle(&server);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut p = Peer::connect_from("127.0.0.2", lb.port);
            // An admitted connection gets no answer before a request; a refused one
            // gets its 1607 at once.
            p.s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            if p.recv() == Some(Response::GeneralError) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{transport}: 127.0.0.2 was not refused after 3 violations: {}",
                log(&server.dir)
            );
        }
        let mut other = Peer::connect_from("127.0.0.3", lb.port);
        let r = other.register(&format!("three-again-{transport}"));
        assert!(
            registered(&r),
            "{transport}: 127.0.0.3's bucket is its own: {r:?}"
        );

        // The log names each client, never the balancer.
        let text = wait_for_log(&server.dir, "protocol violation");
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("protocol violation") || l.contains("825 registered"))
            .collect();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("protocol violation") && l.contains("127.0.0.2:")),
            "{transport}: {text}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("825 registered") && l.contains("127.0.0.3:")),
            "{transport}: {text}"
        );
        assert!(
            !lines.iter().any(|l| l.contains("127.0.0.1:")),
            "{transport}: a line names the balancer: {lines:#?}"
        );
        // A real client through the balancer is served.
        let dir = client_dir(root, "real", lb.port, "f.bin", &data(50_000, 1));
        assert_ok(&run_client(&dir, &[]), transport);
        drop(lb);
        server.stop();
    }
}

#[test]
fn a_proxy_header_from_an_address_not_listed_is_refused_and_the_server_goes_on() {
    for transport in TRANSPORTS {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let args = [
            "--transport",
            transport,
            "--metrics",
            "127.0.0.1:0",
            "--proxy-protocol",
            "10.0.0.0/8,::1",
        ];
        let server = Server::start(&root.join("s"), 0, &args);
        // 127.0.0.1 is not a listed balancer: it may not pass as 127.0.0.9.
        let mut forged = Peer::connect_from("127.0.0.1", server.port);
        let mut bytes = proxy::encode(
            "127.0.0.9:4000".parse().unwrap(),
            SocketAddr::from(([127, 0, 0, 1], server.port)),
        );
        bytes.extend(registration(&format!("forged-{transport}")));
        forged.send(&bytes);
        assert_eq!(forged.recv(), None, "{transport}: closed without an answer");
        let text = wait_for_log(&server.dir, "not listed in --proxy-protocol");
        assert!(
            text.lines()
                .any(|l| l.contains("not listed") && l.contains("127.0.0.1:")),
            "{transport}: {text}"
        );
        assert!(!text.contains("127.0.0.9"), "{transport}: {text}");
        assert_eq!(refused_total(&server), 1.0, "{transport}");

        // Clients without a header are served as before, the forger's address too.
        let mut plain = Peer::connect_from("127.0.0.1", server.port);
        let r = plain.register(&format!("plain-{transport}"));
        assert!(registered(&r), "{transport}: {r:?}");
        let dir = client_dir(root, "real", server.port, "f.bin", &data(50_000, 2));
        assert_ok(&run_client(&dir, &[]), transport);
        server.stop();
    }
}

#[test]
fn a_listed_balancer_without_a_good_header_is_refused_and_the_server_goes_on() {
    for transport in TRANSPORTS {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let mut args = vec!["--transport", transport, "--metrics", "127.0.0.1:0"];
        args.extend(PROXY_FROM_LB);
        args.extend(["--proxy-header-timeout", "1"]);
        let server = Server::start(&root.join("s"), 0, &args);
        let here = SocketAddr::from(([127, 0, 0, 1], server.port));
        let header = proxy::encode("127.0.0.7:4000".parse().unwrap(), here);
        let with = |at: usize, b: u8| {
            let mut h = header.clone();
            h[at] = b;
            h.extend(registration("bad"));
            h
        };
        let mut too_long = header.clone();
        too_long[14..16].copy_from_slice(&2000u16.to_be_bytes());
        too_long.resize(2100, 0);
        let cases: [(&str, Vec<u8>); 5] = [
            ("no header", registration("plain")),
            ("version 1", with(12, 0x11)),
            ("UDP", with(13, 0x12)),
            ("too long", too_long),
            ("text form (v1)", {
                let mut v = b"PROXY TCP4 127.0.0.7 127.0.0.1 4000 1256\r\n".to_vec();
                v.extend(registration("v1"));
                v
            }),
        ];
        for (what, bytes) in &cases {
            let mut p = Peer::connect_from("127.0.0.1", server.port);
            p.send(bytes);
            assert_eq!(
                p.recv(),
                None,
                "{transport}: {what}: closed without an answer"
            );
        }
        // Truncated, then closed; and silent: closed at the header timeout (1 s).
        // (Connecting and closing without a byte, as a TCP check does, is not
        // counted: Server::start does it.)
        let mut p = Peer::connect_from("127.0.0.1", server.port);
        p.send(&header[..20]);
        let _ = p.s.shutdown(std::net::Shutdown::Write);
        assert_eq!(p.recv(), None, "{transport}: truncated");
        let start = Instant::now();
        let mut silent = Peer::connect_from("127.0.0.1", server.port);
        assert_eq!(silent.recv(), None, "{transport}: silent");
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
            "{transport}: the silent balancer connection held {waited:?}"
        );
        let text = wait_for_log(&server.dir, "no PROXY header from a listed balancer");
        assert!(!text.contains("825 registered"), "{transport}: {text}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while refused_total(&server) < 7.0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(refused_total(&server), 7.0, "{transport}: each one counted");

        // A good header, a LOCAL one, and a real client through HAProxy: served.
        let mut good = Peer::connect_from("127.0.0.1", server.port);
        let mut bytes = header.clone();
        bytes.extend(registration(&format!("seven-{transport}")));
        good.send(&bytes);
        assert!(registered(&good.recv()), "{transport}");
        let text = wait_for_log(&server.dir, "825 registered");
        assert!(
            text.lines()
                .any(|l| l.contains("825 registered") && l.contains("127.0.0.7:4000")),
            "{transport}: {text}"
        );
        let mut local = Peer::connect_from("127.0.0.1", server.port);
        let mut bytes = proxy::encode_local();
        bytes.extend(registration(&format!("local-{transport}")));
        local.send(&bytes);
        assert!(registered(&local.recv()), "{transport}: LOCAL");
        let lb = HaProxy::start(&root.join("lb"), &[Backend::proxied("s", &server)]);
        lb.wait_for("s", "UP");
        let dir = client_dir(root, "real", lb.port, "f.bin", &data(50_000, 3));
        assert_ok(&run_client(&dir, &[]), transport);
        drop(lb);
        server.stop();
    }
}

#[test]
fn a_balancers_connections_waiting_for_their_header_are_shed_for_a_client() {
    for transport in TRANSPORTS {
        let root = tempfile::tempdir().unwrap();
        let mut args = vec!["--transport", transport, "--max-connections", "2"];
        args.extend(PROXY_FROM_LB);
        args.extend(["--proxy-header-timeout", "60"]);
        let server = Server::start(&root.path().join("s"), 0, &args);
        // Both slots held by balancer connections that send nothing.
        let mut silent: Vec<Peer> = (0..2)
            .map(|_| Peer::connect_from("127.0.0.1", server.port))
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        // A client's connection through the balancer takes the oldest one's slot.
        let mut client = Peer::connect_from("127.0.0.1", server.port);
        let here = SocketAddr::from(([127, 0, 0, 1], server.port));
        let mut bytes = proxy::encode("127.0.0.7:4000".parse().unwrap(), here);
        bytes.extend(registration(&format!("seven-{transport}")));
        client.send(&bytes);
        assert!(
            registered(&client.recv()),
            "{transport}: the client is served"
        );
        // The one shed is closed at once, not at the header timeout (60 s).
        let start = Instant::now();
        silent[0]
            .s
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(silent[0].recv(), None, "{transport}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{transport}: the shed connection was held {:?}",
            start.elapsed()
        );
        // A stop does not wait for the other one's header either (Server::stop
        // allows 10 s; the header timeout is 60 s).
        server.stop();
        assert_eq!(silent[1].recv(), None, "{transport}");
    }
}

#[test]
fn ipv6_clients_named_by_the_balancer_are_limited_by_their_64() {
    let root = tempfile::tempdir().unwrap();
    for (prefix, same_64_served) in [("64", false), ("128", true)] {
        let mut args = vec!["--max-connections-per-ip", "1", "--ipv6-prefix", prefix];
        args.extend(PROXY_FROM_LB);
        let server = Server::start(&root.path().join(prefix), 0, &args);
        let here = SocketAddr::from(([127, 0, 0, 1], server.port));
        let as_client = |client: &str, name: &str| {
            let mut p = Peer::connect_from("127.0.0.1", server.port);
            let mut bytes = proxy::encode(client.parse().unwrap(), here);
            bytes.extend(registration(name));
            p.send(&bytes);
            let r = p.recv();
            (p, r)
        };
        // One connection, busy (it has sent a request), per address group.
        let (_first, r) = as_client("[2001:db8:0:0::1]:4000", "v6-a");
        assert!(registered(&r), "/{prefix}: {r:?}");
        let (_same, r) = as_client("[2001:db8:0:0:ffff::2]:4000", "v6-b");
        assert_eq!(
            registered(&r),
            same_64_served,
            "/{prefix}: another address of the same /64: {r:?}"
        );
        if !same_64_served {
            assert_eq!(r, Some(Response::GeneralError), "/{prefix}");
        }
        let (_other, r) = as_client("[2001:db8:0:1::1]:4000", "v6-c");
        assert!(registered(&r), "/{prefix}: another /64: {r:?}");
        let text = wait_for_log(&server.dir, "v6-c");
        assert!(text.contains("peer=[2001:db8:0:1::1]:4000"), "{text}");
        server.stop();
    }
}
