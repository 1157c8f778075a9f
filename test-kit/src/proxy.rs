//! Proxies between a client and a server that cut, stall or flip the client's bytes
//! at an offset, or hold them at a gate: a network failing at a chosen byte.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a [`proxy`] does to the client-to-server stream at a byte offset.
#[derive(Debug, Clone, Copy)]
pub enum Tamper {
    /// Flip one bit of the byte there.
    Flip(usize),
    /// Forward nothing from there on and close both sides.
    Cut(usize),
    /// Forward nothing from there on but hold both sides open until the server goes.
    Stall(usize),
}

/// Forwards one connection to 127.0.0.1:`target`, tampering with the client's bytes;
/// returns the proxy's port and a flag raised when the offset is reached.
///
/// When the server goes away, the client's connection is closed with its unread
/// bytes in it: a reset, as a killed server's kernel sends (a FIN alone would leave
/// a client blocked on a full window waiting).
///
/// # Panics
/// If no loopback port can be bound.
pub fn proxy(target: u16, tamper: Tamper) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
    let port = listener.local_addr().expect("the proxy's port").port();
    let reached = Arc::new(AtomicBool::new(false));
    let flag = reached.clone();
    std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
            return;
        };
        let (Ok(mut c_rd), Ok(mut s_wr)) = (client.try_clone(), server.try_clone()) else {
            return;
        };
        let (mut s_rd, mut c_wr) = (server, client);
        let gone = Arc::new(AtomicBool::new(false));
        let server_gone = gone.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = s_rd.read(&mut buf) {
                if n == 0 || c_wr.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = c_wr.shutdown(Shutdown::Both);
            server_gone.store(true, Ordering::SeqCst);
        });
        let limit = match tamper {
            Tamper::Cut(at) | Tamper::Stall(at) => at,
            Tamper::Flip(_) => usize::MAX,
        };
        let mut seen = 0usize;
        let mut buf = [0u8; 65536];
        while let Ok(n) = c_rd.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Tamper::Flip(at) = tamper {
                if at >= seen && at < seen + n {
                    buf[at - seen] ^= 0x10;
                    flag.store(true, Ordering::SeqCst);
                }
            }
            let take = n.min(limit - seen);
            if s_wr.write_all(&buf[..take]).is_err() {
                break;
            }
            seen += take;
            if seen >= limit {
                flag.store(true, Ordering::SeqCst);
                if let Tamper::Cut(_) = tamper {
                    let _ = s_wr.shutdown(Shutdown::Both);
                    let _ = c_rd.shutdown(Shutdown::Both);
                } else {
                    let until = Instant::now() + Duration::from_secs(120);
                    while !gone.load(Ordering::SeqCst) && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                return;
            }
        }
        let _ = s_wr.shutdown(Shutdown::Write);
    });
    (port, reached)
}

/// Forwards every connection to 127.0.0.1:`target`. On the first, the client's
/// bytes stop after `at` of them (`reached` is raised) until `release` is raised;
/// later connections pass straight through. Returns (port, reached, release).
///
/// Its receive buffers are small (64 KiB asked), so that what the client counts as
/// sent is close to what passed the gate.
///
/// # Panics
/// If no loopback port can be bound.
pub fn gate_proxy(target: u16, at: usize) -> (u16, Arc<AtomicBool>, Arc<AtomicBool>) {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    let _ = socket.set_recv_buffer_size(64 * 1024);
    socket
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("binding the proxy");
    socket.listen(16).expect("listening");
    let listener: TcpListener = socket.into();
    let port = listener.local_addr().expect("the proxy's port").port();
    let reached = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let (reached2, release2) = (reached.clone(), release.clone());
    std::thread::spawn(move || {
        let mut first = true;
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                return;
            };
            let gate = first.then(|| (at, reached2.clone(), release2.clone()));
            first = false;
            let (Ok(c_rd), Ok(s_wr)) = (client.try_clone(), server.try_clone()) else {
                return;
            };
            std::thread::spawn(move || pipe(server, client, None));
            std::thread::spawn(move || pipe(c_rd, s_wr, gate));
        }
    });
    (port, reached, release)
}

/// Copies `from` to `to` until either side ends, holding at the gate if there is one.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    gate: Option<(usize, Arc<AtomicBool>, Arc<AtomicBool>)>,
) {
    let mut seen = 0usize;
    let mut buf = [0u8; 65536];
    loop {
        let limit = match &gate {
            Some((at, _, _)) if seen < *at => (*at - seen).min(buf.len()),
            _ => buf.len(),
        };
        let n = match from.read(&mut buf[..limit]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        seen += n;
        if let Some((at, reached, release)) = &gate {
            if seen == *at {
                reached.store(true, Ordering::SeqCst);
                let deadline = Instant::now() + Duration::from_secs(120);
                while !release.load(Ordering::SeqCst) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Waits for `flag` (at most a minute).
///
/// # Panics
/// If it is not raised by then, naming `what`.
pub fn wait_for(flag: &AtomicBool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !flag.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(10));
    }
}
