//! Command-line habits of scp/rsync/croc, the progress and final lines, `--json`,
//! Ctrl-C, and `me.info` kept for the server it was made with.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn file_paths_on_the_command_line_are_relative_to_the_current_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &[]);
    let work = folder(tmp.path(), "work", "report.txt", b"in the current folder\n");
    // --dir holds transfer.info and a report.txt of its own, which must not be sent.
    let conf = folder(&work, "conf", "report.txt", b"in --dir\n");
    std::fs::write(
        conf.join("transfer.info"),
        format!("{}\nkim\nreport.txt\n", server.addr()),
    )
    .unwrap();
    let run = client(&work, &["--dir", "conf", "--file", "./report.txt"]);
    run.ok();
    assert!(run.stdout.contains("sending ./report.txt"), "{run:#?}");
    assert!(conf.join("me.info").exists(), "me.info goes to --dir");
    // The same, as a positional argument (relative to the current folder too).
    std::fs::write(work.join("other.txt"), b"positional\n").unwrap();
    let run = client(&work, &["--dir", "conf", "other.txt"]);
    run.ok();
    let listing = Command::new(server_bin())
        .args(["list-files", "--dir"])
        .arg(&server.dir)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains(" 22 ") && listing.contains("report.txt"),
        "{listing}"
    );
    assert!(listing.contains("other.txt"), "{listing}");
    // Without an argument, line 3 of transfer.info is taken relative to --dir.
    client(&work, &["--dir", "conf"]).ok();
}

#[test]
fn the_final_line_has_size_time_speed_and_the_checksum_even_without_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &[]);
    let c = folder(tmp.path(), "c", "f.bin", &data(300_000, 1));
    let run = client(&c, &["--server", &server.addr(), "--name", "lee", "f.bin"]);
    run.ok();
    let sum = cksum(&c.join("f.bin"));
    let last = run.stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("sent f.bin: 300000 bytes"), "{run:#?}");
    assert!(
        last.contains(" s, ") && last.contains("/s average"),
        "{last}"
    );
    assert!(last.contains(&format!("checksum {sum} verified")), "{last}");
    // Plain progress lines with the name and the percentage.
    assert!(
        run.stderr.contains("f.bin: 100% 300000 of 300000 bytes"),
        "{run:#?}"
    );
}

#[test]
fn quiet_prints_nothing_and_verbose_prints_more() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &[]);
    let c = folder(tmp.path(), "c", "f.bin", &data(100_000, 2));
    let run = client(
        &c,
        &["-q", "--server", &server.addr(), "--name", "max", "f.bin"],
    );
    run.ok();
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""));
    let run = client(&c, &["-v", "--server", &server.addr(), "f.bin"]);
    run.ok();
    assert!(run.stderr.contains("packets of 65536 bytes"), "{run:#?}");
    assert!(run.stderr.contains("(1605)"), "{run:#?}");
}

#[test]
fn json_prints_one_summary_object_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &[]);
    let c = folder(tmp.path(), "c", "f.bin", &data(50_000, 3));
    let run = client(
        &c,
        &[
            "--json",
            "--server",
            &server.addr(),
            "--name",
            "ned",
            "f.bin",
        ],
    );
    run.ok();
    let line = run.stdout.trim();
    assert_eq!(run.stdout.lines().count(), 1, "{run:#?}");
    assert!(line.starts_with("{\"ok\":true,\"exit_code\":0,"), "{line}");
    let id = std::fs::read_to_string(c.join("me.info")).unwrap();
    let id = id.lines().nth(1).unwrap();
    for part in [
        format!("\"client_id\":\"{id}\""),
        "\"registered\":true".to_string(),
        "\"bytes\":50000".to_string(),
        format!("\"checksum\":{}", cksum(&c.join("f.bin"))),
        "\"file_sends\":1".to_string(),
    ] {
        assert!(line.contains(&part), "{part} not in {line}");
    }
    // A failure is a summary too, with the exit code and the message.
    let run = client(&c, &["--json", "--server", "127.0.0.1:1", "f.bin"]);
    assert_eq!(run.code, 3);
    assert!(
        run.stdout
            .starts_with("{\"ok\":false,\"exit_code\":3,\"error\":\"unreachable\""),
        "{run:#?}"
    );
}

#[test]
fn ctrl_c_exits_130_and_says_how_to_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("s"), 0, &[]);
    let c = folder(tmp.path(), "c", "f.bin", &data(3_000_000, 4));
    let (port, reached) = proxy(server.port, Tamper::Stall(1_000_000));
    let via = format!("127.0.0.1:{port}");
    let child = Command::new(client_bin())
        .arg("--legacy")
        .args(["--server", &via, "--name", "olga", "f.bin"])
        .current_dir(&c)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reached.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the upload never reached 1 MB");
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let run = Run::from(child.wait_with_output().unwrap());
    run.fails(130, "interrupted");
    assert!(run.stderr.contains("run again"), "{run:#?}");
}

#[test]
fn me_info_is_not_replaced_for_another_server_unless_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Server::start(&tmp.path().join("s1"), 0, &[]);
    let other = Server::start(&tmp.path().join("s2"), 0, &[]);
    let c = folder(tmp.path(), "c", "f.bin", &data(1000, 5));
    client(&c, &["--server", &first.addr(), "--name", "pat", "f.bin"]).ok();
    let me = std::fs::read(c.join("me.info")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&me).lines().count(),
        3,
        "me.info keeps the classic three lines"
    );

    // The other server does not know pat: refused, me.info untouched.
    client(&c, &["--server", &other.addr(), "f.bin"])
        .fails(4, "does not know the client \"pat\"")
        .stderr
        .contains("--new-server")
        .then_some(())
        .expect("the message names the option");
    assert_eq!(std::fs::read(c.join("me.info")).unwrap(), me);
    // The first server still knows it.
    client(&c, &["--server", &first.addr(), "f.bin"]).ok();

    // Asked explicitly: registers with the other server and replaces me.info.
    client(&c, &["--server", &other.addr(), "--new-server", "f.bin"]).ok();
    assert_ne!(std::fs::read(c.join("me.info")).unwrap(), me);
}

#[test]
fn a_classic_me_info_from_another_client_is_read_and_follows_the_specification() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Server::start(&tmp.path().join("s1"), 0, &[]);
    let c = folder(tmp.path(), "c", "f.bin", &data(1000, 6));
    client(&c, &["--server", &first.addr(), "--name", "quinn", "f.bin"]).ok();
    // Only me.info, as other implementations leave it: the key wrapped over lines.
    let text = std::fs::read_to_string(c.join("me.info")).unwrap();
    let mut lines = text.lines();
    let (name, id, key) = (
        lines.next().unwrap(),
        lines.next().unwrap(),
        lines.next().unwrap(),
    );
    let wrapped: Vec<String> = key
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    std::fs::write(
        c.join("me.info"),
        format!("{name}\n{id}\n{}\n", wrapped.join("\n")),
    )
    .unwrap();
    for f in ["priv.key", "me.server"] {
        let _ = std::fs::remove_file(c.join(f));
    }
    client(&c, &["--server", &first.addr(), "f.bin"]).ok();
    // A server that does not know it: no record of another server, so the client
    // registers anew as the specification says (1606).
    let other = Server::start(&tmp.path().join("s2"), 0, &[]);
    let _ = std::fs::remove_file(c.join("me.server"));
    let run = client(&c, &["--server", &other.addr(), "f.bin"]);
    run.ok();
    assert!(run.stdout.contains("registering anew"), "{run:#?}");
}
