//! The client cases: how each prepares the client's folder and the scripted
//! server, and how it judges the run.

use super::judge::{gives_up, normal_run, Observed};
use super::server::{Hostile as H, Script};
use crate::cases::{fail, info, pass, variant, Judged};
use crate::model::{CaseMeta, Group};

/// How a case prepares the client's folder and the server.
#[derive(Clone, Default)]
pub struct Setup {
    /// Size of the file to send.
    pub file_size: usize,
    /// Length of the client name (default 16).
    pub name_len: Option<usize>,
    /// The scripted server.
    pub script: Script,
    /// Write me.info: the client registered before (827).
    pub known: bool,
    /// me.info's id unknown to the server (1606).
    pub stranger: bool,
    /// The key in me.info wrapped over lines of 64 (variant 10).
    pub wrapped: bool,
}

type JudgeFn = Box<dyn Fn(&Observed<'_>) -> Judged + Send + Sync>;

/// A client case.
pub struct ClientCase {
    group: Group,
    title: String,
    section: String,
    /// How the folder and the server are prepared.
    pub(crate) setup: Setup,
    /// How the run is judged.
    pub(crate) judge: JudgeFn,
}

fn case(
    group: Group,
    title: impl Into<String>,
    section: &str,
    setup: Setup,
    judge: impl Fn(&Observed<'_>) -> Judged + Send + Sync + 'static,
) -> ClientCase {
    ClientCase {
        group,
        title: title.into(),
        section: section.into(),
        setup,
        judge: Box::new(judge),
    }
}

fn s(file_size: usize) -> Setup {
    Setup {
        file_size,
        ..Setup::default()
    }
}

fn with(script: Script) -> Setup {
    Setup {
        file_size: 3000,
        script,
        ..Setup::default()
    }
}

/// Every client case, numbered `C<group>.<nn>`.
pub fn client_cases() -> Vec<(CaseMeta, ClientCase)> {
    use Group::*;
    let mut v = vec![
        case(
            Framing,
            "every request carries version 3",
            "§2",
            s(3000),
            |o| match o.t.requests.iter().find(|r| r.version != 3) {
                Some(r) => fail(format!("{} with version {}", r.code, r.version)),
                None if o.t.requests.is_empty() => fail("no request"),
                None => pass(format!("{} requests, version 3", o.t.requests.len())),
            },
        ),
        case(
            Framing,
            "825 carries the all-zero client id",
            "§2",
            s(100),
            |o| match o.t.requests.iter().find(|r| r.code == 825) {
                Some(r) if r.id == [0; 16] => pass("zeros"),
                Some(_) => info("825 with a non-zero id (the server ignores it)"),
                None => fail("no 825"),
            },
        ),
        case(
            Framing,
            "request headers are little-endian",
            "§2, v1",
            s(100),
            |o| {
                if o.t.requests.is_empty() {
                    fail("no request")
                } else if o
                    .t
                    .requests
                    .iter()
                    .all(|r| r.order == protocol_core::ByteOrder::Big)
                {
                    variant(1, "big-endian headers")
                } else if o
                    .t
                    .requests
                    .iter()
                    .any(|r| r.order == protocol_core::ByteOrder::Big)
                {
                    fail("mixed byte orders")
                } else {
                    pass("little-endian")
                }
            },
        ),
        case(
            Framing,
            "payload sizes are those of section 3",
            "§3",
            s(3000),
            |o| {
                for r in &o.t.requests {
                    let ok = match r.code {
                        825 | 827 | 900..=902 => r.payload.len() == 255,
                        826 => r.payload.len() == 415,
                        _ => r.payload.len() >= 267,
                    };
                    if !ok {
                        return fail(format!(
                            "{} with a {}-byte payload",
                            r.code,
                            r.payload.len()
                        ));
                    }
                }
                pass("825/900 255 bytes, 826 415 bytes, 828 267 + content")
            },
        ),
        case(
            Framing,
            "the id from 1600 is in every later request",
            "§2, §7",
            s(3000),
            |o| {
                let Some(pos) = o.t.requests.iter().position(|r| r.code == 825) else {
                    return fail("no 825");
                };
                let ids: Vec<[u8; 16]> = o.t.requests[pos + 1..].iter().map(|r| r.id).collect();
                match ids.windows(2).find(|w| w[0] != w[1]) {
                    Some(_) => fail("the id changes between requests"),
                    None if ids.first() == Some(&[0; 16]) => {
                        fail("requests after 1600 carry the zero id")
                    }
                    None => pass(format!("{} requests with the issued id", ids.len())),
                }
            },
        ),
        case(
            Framing,
            "big-endian responses (a variant 1 server) are understood",
            "§2, v1",
            with(Script {
                big_endian: true,
                ..Script::default()
            }),
            normal_run,
        ),
    ];
    for len in [1usize, 20, 100] {
        v.push(case(
            Registration,
            format!("a {len}-character name travels terminated and zero-padded"),
            "§2, §3",
            Setup {
                name_len: Some(len),
                ..s(100)
            },
            move |o| match o
                .t
                .requests
                .iter()
                .find(|r| r.code == 825)
                .map(|r| r.field(0))
            {
                Some(Some((n, zeros))) if n == o.name.as_bytes() && zeros => {
                    pass(format!("{len} bytes, NUL, zeros"))
                }
                Some(Some((n, _))) if n == o.name.as_bytes() => {
                    info("the name, a NUL, then non-zero padding")
                }
                Some(Some((n, _))) => fail(format!(
                    "name field {:?}, transfer.info says {:?}",
                    String::from_utf8_lossy(&n),
                    o.name
                )),
                Some(None) => fail("the name field has no terminator"),
                None => fail("no 825"),
            },
        ));
    }
    v.push(case(
        Registration,
        "826 carries the registered name",
        "§3",
        s(100),
        |o| match o
            .t
            .requests
            .iter()
            .find(|r| r.code == 826)
            .and_then(|r| r.field(0))
        {
            Some((n, _)) if n == o.name.as_bytes() => pass("the name"),
            Some((n, _)) => fail(format!("826 names {:?}", String::from_utf8_lossy(&n))),
            None => fail("no 826 with a terminated name"),
        },
    ));
    v.push(case(
        Registration,
        "1601 to 825: no key is sent, the run fails",
        "§7",
        with(Script {
            register_answers: vec![1601; 5],
            ..Script::default()
        }),
        |o| {
            let n = o.t.count(825);
            if n > 3 {
                return fail(format!("825 sent {n} times"));
            }
            if o.t.count(826) > 0 {
                return fail("826 after 1601");
            }
            let j = gives_up(o, &format!("825 sent {n} time(s)"));
            j
        },
    ));
    v.push(case(
        Registration,
        "1607 to the first 825: sent again, the run completes",
        "§7",
        with(Script {
            register_answers: vec![1607],
            ..Script::default()
        }),
        |o| match o.t.count(825) {
            2 => normal_run(o),
            n => fail(format!("825 sent {n} time(s) ({})", o.exit_text())),
        },
    ));
    v.push(case(
        Registration,
        "1607 to every 825: at most 3 attempts, the run fails",
        "§7",
        with(Script {
            register_answers: vec![1607; 64],
            ..Script::default()
        }),
        |o| {
            // A client may try again on a new connection (another dialect): three
            // attempts per connection at most.
            let most = (0..o.t.connections)
                .map(|c| {
                    o.t.requests
                        .iter()
                        .filter(|r| r.conn == c && r.code == 825)
                        .count()
                })
                .max()
                .unwrap_or(0);
            match most {
                n if n > 3 => fail(format!("825 sent {n} times on one connection")),
                n => gives_up(
                    o,
                    &format!(
                        "825 sent at most {n} time(s) per connection, {} in all",
                        o.t.count(825)
                    ),
                ),
            }
        },
    ));
    v.push(case(
        Keys,
        "the public key is an RSA SubjectPublicKeyInfo that fits the field",
        "§5",
        s(100),
        |o| match (&o.t.key_problem, o.t.count(826)) {
            (Some(p), _) => fail(format!("826 key refused: {p}")),
            (None, 0) => fail("no 826"),
            (None, _) => pass("parses as RSA-1024 DER, zero-padded to 160 bytes"),
        },
    ));
    v.push(case(
        Keys,
        "1607 to the first 826: sent again, the run completes",
        "§7",
        with(Script {
            key_errors: 1,
            ..Script::default()
        }),
        |o| match o.t.count(826) {
            2 => normal_run(o),
            n => fail(format!("826 sent {n} time(s) ({})", o.exit_text())),
        },
    ));
    v.push(case(
        Keys,
        "a 128-bit AES key (a variant 8 server) is accepted",
        "§5, v8",
        with(Script {
            aes128: true,
            ..Script::default()
        }),
        normal_run,
    ));
    v.push(case(
        Keys,
        "a 1602 whose key does not decrypt: no upload, the run fails",
        "§5",
        with(Script {
            bad_key: true,
            ..Script::default()
        }),
        |o| {
            if o.t.count(828) > 0 {
                return fail("828 under a key that cannot have decrypted");
            }
            gives_up(o, "junk in 1602")
        },
    ));
    v.push(case(
        Reconnect,
        "with me.info: 827 with its id and name, no 825",
        "§6, §7",
        Setup {
            known: true,
            ..s(3000)
        },
        |o| match o.t.requests.first() {
            Some(r) if r.code == 827 && o.t.count(825) == 0 => normal_run(o),
            Some(r) => fail(format!("first request {}", r.code)),
            None => fail("no request"),
        },
    ));
    v.push(case(
        Reconnect,
        "827 carries the name of me.info",
        "§3",
        Setup {
            known: true,
            ..s(100)
        },
        |o| match o
            .t
            .requests
            .iter()
            .find(|r| r.code == 827)
            .and_then(|r| r.field(0))
        {
            Some((n, _)) if n == o.name.as_bytes() => pass("the name"),
            Some((n, _)) => fail(format!("827 names {:?}", String::from_utf8_lossy(&n))),
            None => fail("no 827"),
        },
    ));
    v.push(case(
        Reconnect,
        "1606: the client registers anew under its name",
        "§7",
        Setup {
            known: true,
            stranger: true,
            ..s(3000)
        },
        |o| {
            let codes = o.t.codes();
            match (codes.first(), o.t.count(825)) {
                (Some(827), 1) => normal_run(o),
                _ => fail(format!("after 1606: {codes:?} ({})", o.exit_text())),
            }
        },
    ));
    v.push(case(
        Reconnect,
        "a private key wrapped over lines in me.info (variant 10) is read",
        "§6, v10",
        Setup {
            known: true,
            wrapped: true,
            ..s(3000)
        },
        |o| match o.t.requests.first() {
            Some(r) if r.code == 827 => normal_run(o),
            _ => info(format!("no 827 with a wrapped key ({})", o.exit_text())),
        },
    ));
    for size in [
        0usize, 1, 15, 16, 17, 1000, 1023, 1024, 1025, 4096, 65535, 65536, 65537, 300_000,
    ] {
        v.push(case(
            Group::Upload,
            format!("a {size}-byte file arrives whole and in order"),
            "§3, §5, §7",
            s(size),
            normal_run,
        ));
    }
    v.push(
        case(
            Group::Upload,
            "a 1603 after every packet (answers counted) is handled",
            "§7, v7",
            with(Script {
                ack_every: true,
                ..Script::default()
            }),
            normal_run,
        )
        .with_size(200_000),
    );
    v.push(case(
        Group::Upload,
        "the plaintext size in 1603 (a variant 11 server) is accepted",
        "§7, v11",
        with(Script {
            plain_size: true,
            ..Script::default()
        }),
        normal_run,
    ));
    v.push(case(
        Group::Upload,
        "an empty 1604 (a variant 6 server) is accepted",
        "§4, v6",
        with(Script {
            empty_ack: true,
            ..Script::default()
        }),
        normal_run,
    ));
    v.push(case(
        Group::Upload,
        "1607 to the first upload: the file is sent again",
        "§7",
        with(Script {
            upload_errors: 1,
            ..Script::default()
        }),
        |o| match o.t.uploads.len() {
            2 => normal_run(o),
            n => fail(format!("{n} upload(s) ({})", o.exit_text())),
        },
    ));
    v.push(case(
        Verdicts,
        "a matching checksum: 900 naming the file",
        "§3, v5",
        s(3000),
        |o| match o
            .t
            .requests
            .iter()
            .find(|r| r.code == 900)
            .and_then(|r| r.field(0))
        {
            Some((n, _)) if n == o.file_name.as_bytes() => pass("900 with the file name"),
            Some((n, _)) if n == o.name.as_bytes() => variant(5, "900 with the client name"),
            Some((n, _)) => fail(format!("900 names {:?}", String::from_utf8_lossy(&n))),
            None => fail(format!("no 900 ({})", o.exit_text())),
        },
    ));
    for wrong in [1u32, 2, 3] {
        v.push(case(
            Verdicts,
            format!("{wrong} mismatch(es): 901 and the file again each time, then 900"),
            "§7",
            with(Script {
                wrong_checksums: wrong,
                ..Script::default()
            }),
            move |o| {
                let (n901, ups) = (o.t.count(901), o.t.uploads.len());
                if n901 == wrong as usize && ups == wrong as usize + 1 && o.t.count(902) == 0 {
                    normal_run(o)
                } else {
                    fail(format!(
                        "{n901} x 901, {ups} upload(s), codes {:?}",
                        o.t.codes()
                    ))
                }
            },
        ));
    }
    v.push(case(
        Verdicts,
        "four mismatches: three resends, then 902",
        "§7",
        with(Script {
            wrong_checksums: 9,
            ..Script::default()
        }),
        |o| {
            let (n901, n902, ups) = (o.t.count(901), o.t.count(902), o.t.uploads.len());
            if n901 == 3 && n902 == 1 && ups == 4 && o.t.count(900) == 0 {
                pass(format!("901 x3, 4 uploads, 902; {}", o.exit_text()))
            } else {
                fail(format!(
                    "{n901} x 901, {n902} x 902, {ups} uploads ({})",
                    o.exit_text()
                ))
            }
        },
    ));
    v.push(case(
        Verdicts,
        "a zlib CRC-32 in 1603: which checksum the client compares",
        "§5, v8",
        with(Script {
            crc32: true,
            ..Script::default()
        }),
        |o| match o
            .t
            .requests
            .iter()
            .find(|r| matches!(r.code, 900 | 901))
            .map(|r| r.code)
        {
            Some(901) => pass("901: it compares cksum (give a CRC-32 server `--checksum crc32`)"),
            Some(_) => variant(8, "900 to a CRC-32: it compares zlib CRC-32"),
            None => fail(format!("no verdict ({})", o.exit_text())),
        },
    ));
    let hostile: [(&str, H); 7] = [
        ("the server closes on accept", H::CloseOnAccept),
        ("the server never answers", H::Silent),
        ("an unknown response code", H::UnknownCode),
        ("a response cut short, then a close", H::Truncated),
        ("a response declaring 2 GiB", H::HugeSize),
        ("a 1600 with an 8-byte payload", H::ShortRegistered),
        ("64 bytes of junk instead of a response", H::Junk),
    ];
    for (what, h) in hostile {
        v.push(case(
            Hostile,
            format!("{what}: the client fails cleanly"),
            "§2, §7",
            with(Script {
                hostile: Some(h),
                ..Script::default()
            }),
            move |o| gives_up(o, what),
        ));
    }
    v.push(case(
        Connections,
        "the whole run uses one connection",
        "§7, v7",
        s(3000),
        |o| match o.t.connections {
            0 => fail("no connection"),
            1 => pass("one connection"),
            n => variant(7, format!("{n} connections (a connection per request)")),
        },
    ));
    v.push(case(
        Connections,
        "a server that closes after every answer (variant 7)",
        "§7, v7",
        with(Script {
            close_after_answer: true,
            ack_every: true,
            ..Script::default()
        }),
        |o| {
            if o.t.uploads.is_empty() {
                info(format!(
                    "stopped after {} request(s) on {} connection(s) ({}): give it per-connection",
                    o.t.requests.len(),
                    o.t.connections,
                    o.exit_text()
                ))
            } else {
                normal_run(o)
            }
        },
    ));
    let mut counts = [0usize; 9];
    v.into_iter()
        .map(|c| {
            let g = c.group as usize;
            counts[g] += 1;
            (
                CaseMeta {
                    id: format!("C{g}.{:02}", counts[g]),
                    group: c.group,
                    title: c.title.clone(),
                    section: c.section.clone(),
                    checks: vec![],
                },
                c,
            )
        })
        .collect()
}

impl ClientCase {
    fn with_size(mut self, n: usize) -> ClientCase {
        self.setup.file_size = n;
        self
    }
}
