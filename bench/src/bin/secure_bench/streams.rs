//! The two references of the secure rows, measured in this process over loopback:
//! raw TCP, and a bare TLS 1.3 stream (rustls with aws-lc-rs, the client
//! configuration the real client uses, the server offering only
//! TLS13_AES_256_GCM_SHA384), each a sender thread and a receiver thread.
//!
//! The sender sends `total` bytes from a 4 MiB buffer in memory (what it holds
//! does not change the cost of either), writing 1 MiB at a time as the real client
//! does; the receiver reads into a 1 MiB buffer and drops what it read.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use transport_interface::tls::client::PinnedConfig;

use crate::threads::{read_task, Times};

const WRITE: usize = 1 << 20;

/// What one stream did: wall seconds, the sender's and the receiver's CPU.
pub struct StreamRun {
    pub seconds: f64,
    pub sender: Times,
    pub receiver: Times,
    /// The cipher suite (TLS only).
    pub suite: Option<String>,
}

fn own_times() -> Times {
    read_task("/proc/thread-self").map_or(Times::default(), |(_, t)| t)
}

fn minus(a: Times, b: Times) -> Times {
    Times {
        user: a.user - b.user,
        system: a.system - b.system,
        waiting: a.waiting - b.waiting,
    }
}

fn pattern() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..4 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn send_all(w: &mut impl Write, total: u64, data: &[u8]) -> std::io::Result<()> {
    let mut sent = 0u64;
    let mut at = 0usize;
    while sent < total {
        let n = (total - sent).min(WRITE as u64) as usize;
        if at + n > data.len() {
            at = 0;
        }
        w.write_all(&data[at..at + n])?;
        at += n;
        sent += n as u64;
    }
    w.flush()
}

fn receive_all(r: &mut impl Read, total: u64) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    while got < total {
        match r.read(&mut buf)? {
            0 => break,
            n => got += n as u64,
        }
    }
    Ok(got)
}

/// `total` bytes over loopback TCP.
pub fn raw_tcp(total: u64) -> anyhow::Result<StreamRun> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let data = pattern();
    let t = Instant::now();
    let receiver = std::thread::spawn(move || -> anyhow::Result<Times> {
        let (mut s, _) = listener.accept()?;
        let before = own_times();
        let got = receive_all(&mut s, total)?;
        anyhow::ensure!(got == total, "received {got} of {total} bytes");
        Ok(minus(own_times(), before))
    });
    let before = own_times();
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    send_all(&mut s, total, &data)?;
    let sender = minus(own_times(), before);
    let receiver = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the receiver panicked"))??;
    Ok(StreamRun {
        seconds: t.elapsed().as_secs_f64(),
        sender,
        receiver,
        suite: None,
    })
}

/// A server configuration offering only TLS13_AES_256_GCM_SHA384, with a fresh
/// self-signed certificate.
fn server_config() -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .cipher_suites
        .retain(|s| s.suite() == rustls::CipherSuite::TLS13_AES_256_GCM_SHA384);
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// `total` bytes through a TLS 1.3 session over loopback TCP.
pub fn bare_tls(total: u64) -> anyhow::Result<StreamRun> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let config = server_config()?;
    let data = pattern();
    let receiver = std::thread::spawn(move || -> anyhow::Result<Times> {
        let (s, _) = listener.accept()?;
        let conn = rustls::ServerConnection::new(config)?;
        let mut tls = rustls::StreamOwned::new(conn, s);
        // The handshake first (the timed part is the stream).
        let mut one = [0u8; 1];
        tls.read_exact(&mut one)?;
        let before = own_times();
        let got = 1 + receive_all(&mut tls, total - 1)?;
        anyhow::ensure!(got == total, "received {got} of {total} bytes");
        Ok(minus(own_times(), before))
    });
    let pinned = PinnedConfig::new(None)?;
    let conn = rustls::ClientConnection::new(pinned.config(), ServerName::try_from("localhost")?)?;
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut tls = rustls::StreamOwned::new(conn, s);
    tls.write_all(&data[..1])?;
    tls.flush()?;
    let suite = tls
        .conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()));
    let t = Instant::now();
    let before = own_times();
    send_all(&mut tls, total - 1, &data[1..])?;
    let sender = minus(own_times(), before);
    let receiver = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the receiver panicked"))??;
    let seconds = t.elapsed().as_secs_f64();
    Ok(StreamRun {
        seconds,
        sender,
        receiver,
        suite,
    })
}
