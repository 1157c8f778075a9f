//! A secure upload survives the death of the server serving it: two real servers
//! on one PostgreSQL database and one S3 prefix (SeaweedFS) behind a real HAProxy,
//! sharing one TLS identity made with `openssl req -x509` (so the client's pin holds
//! whichever server answers). The server receiving a slow upload is SIGKILLed past
//! its first saved place; the client reconnects through the balancer by itself and
//! finishes on the other server, which resumes from the saved offset.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;
mod secure_kit;

use std::time::{Duration, Instant};

use common::fleet::{received, slow_relay};
use common::haproxy::{Backend, HaProxy, PROXY_FROM_LB};
use common::postgres::TestDatabase;
use common::{data, Server};
use secure_kit::*;

#[test]
fn a_secure_upload_continues_on_the_other_server_when_its_server_is_killed() {
    let s3 = common::s3::s3_server();
    set_s3_environment(s3);
    let files = format!(
        "s3://{}/{}",
        s3.bucket,
        common::s3::fresh_prefix("secure-fleet")
    );
    let db = TestDatabase::new();
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_identity(tmp.path());
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let args = [
        "--database",
        &db.url,
        "--files",
        &files,
        "--metrics",
        "127.0.0.1:0",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        PROXY_FROM_LB[0],
        PROXY_FROM_LB[1],
    ];
    let a = Server::start(&tmp.path().join("a"), 0, &args);
    let b = Server::start(&tmp.path().join("b"), 0, &args);
    assert_eq!(served_identity(&a.log()), served_identity(&b.log()));
    let lb = HaProxy::start(
        &tmp.path().join("lb"),
        &[Backend::proxied("a", &a), Backend::proxied("b", &b)],
    );
    lb.wait_for("a", "UP");
    lb.wait_for("b", "UP");

    // Pinned on a first small upload; the big one goes through a slow relay in
    // front of the balancer.
    let relay = slow_relay(lb.port, 6 << 20);
    let addr = format!("127.0.0.1:{relay}");
    let dir = folder(tmp.path(), "fiona", &addr, "big.bin");
    std::fs::write(dir.join("small.bin"), data(10_000, 1)).unwrap();
    ok(&client(&dir, &["put", "small.bin"]), "first use");
    assert!(pinned(&dir, &addr).is_some());
    // Past the first saved place (every 16 MiB) when the kill comes.
    let size = 40 << 20;
    std::fs::write(dir.join("big.bin"), data(size, 2)).unwrap();
    let (before_a, before_b) = (received(&a), received(&b));
    let child = spawn_client(&dir, &["put", "big.bin", "--timeout", "60"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let serving_a = loop {
        let (ga, gb) = (received(&a) - before_a, received(&b) - before_b);
        let past = f64::from(20 << 20);
        if ga > past || gb > past {
            break ga > gb;
        }
        assert!(Instant::now() < deadline, "no server received the upload");
        std::thread::sleep(Duration::from_millis(20));
    };
    let (victim, survivor) = if serving_a { (a, b) } else { (b, a) };
    victim.kill9();
    let out = child.wait_with_output().unwrap();
    ok(&out, "the client reconnecting by itself");
    assert!(stderr(&out).contains("resuming at byte"), "{}", said(&out));
    let sha = sha256sum(&dir.join("big.bin"));
    assert!(said(&out).contains(&sha), "{}", said(&out));
    let log = survivor.log();
    let offsets = logged_offsets(&log, "secure upload resumed", "big.bin");
    assert!(offsets.iter().any(|&o| o >= 16 << 20), "{offsets:?}: {log}");
    assert!(log.contains("secure upload stored, verified"), "{log}");

    ok(&client(&dir, &["get", "big.bin", "-o", "got.bin"]), "get");
    assert!(same_bytes(&dir.join("got.bin"), &dir.join("big.bin")));
    drop(lb);
    survivor.stop();
}
