//! What the fleet tests share: the S3 environment of the servers they start, a relay
//! that slows clients down so that an upload is under way when a server is killed,
//! and a server's received-bytes counter.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use test_kit::Server;

/// The servers read the endpoint and credentials from the usual AWS variables (the
/// same values for every test of this process).
pub fn set_s3_environment(s3: &super::s3::S3Server) {
    for (k, v) in [
        ("AWS_ENDPOINT_URL", s3.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", s3.key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", s3.secret.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ] {
        std::env::set_var(k, v);
    }
}

/// A relay in front of `target` that passes each client's bytes on at about
/// `bytes_per_sec` (so that an upload is still going when its server is killed),
/// and the answers at once. Either side closing closes the other.
pub fn slow_relay(target: u16, bytes_per_sec: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || relay(client, server, Some(bytes_per_sec)));
            std::thread::spawn(move || relay(s2, c2, None));
        }
    });
    port
}

fn relay(mut from: TcpStream, mut to: TcpStream, rate: Option<usize>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(n) if n > 0 => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                if let Some(rate) = rate {
                    std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
                }
            }
            _ => break,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Bytes a server received so far (its `/metrics`).
pub fn received(server: &Server) -> f64 {
    let port = server.metrics_port().expect("a metrics listener");
    super::scrape::scrape(port).sum("fileserver_received_bytes_total", &[])
}
