//! Group 1, framing (section 2; variants 1, 6, 13): headers, payload sizes, requests
//! cut at every boundary and coalesced with the next, both byte orders.

use protocol_core::ByteOrder;

use super::{case, fail, info, pass, variant, Judged, ServerCase};
use crate::frames::{code, header, name_field, rcode, request, RawResponse};
use crate::model::Group;
use crate::probe::{Answer, CaseError, Ctx};
use crate::session::{data, Layout, Upload};

const G: Group = Group::Framing;

/// Offsets at which a 278-byte 825 is cut: inside the id, at every field boundary
/// of the header, inside the payload, before the last byte.
const CUTS: [usize; 12] = [1, 8, 16, 17, 18, 19, 21, 22, 23, 24, 150, 277];

fn one_recv(a: &Answer, what: &str) -> Judged {
    match a.code() {
        Some(rcode::REGISTERED) => pass(format!("{what}: reassembled, 1600")),
        _ if a.is_refusal() || *a == Answer::Timeout => variant(
            13,
            format!("{what}: {} (reads a request with one recv)", a.describe()),
        ),
        _ => fail(format!("{what}: answered {}", a.describe())),
    }
}

fn register_split(ctx: &mut Ctx<'_>, cuts: &[usize], what: &str) -> Result<Judged, CaseError> {
    let name = ctx.env.fresh_name("split");
    let mut conn = ctx.connect()?;
    let r = request(
        [0; 16],
        code::REGISTER,
        &name_field(name.as_bytes()),
        ctx.env.order,
    );
    ctx.send_split(&mut conn, &r, cuts);
    let a = ctx.answer(&mut conn);
    Ok(one_recv(&a, what))
}

/// The header checks of section 2 and 4 for one response.
fn check_response(r: &RawResponse, sizes: &[usize]) -> Judged {
    if r.version != 3 {
        return fail(format!("{}: version byte {}, not 3", r.code, r.version));
    }
    if r.order == ByteOrder::Big {
        return variant(
            1,
            format!("{} written big-endian to a little-endian request", r.code),
        );
    }
    if r.code == rcode::ACK && r.payload.is_empty() {
        return variant(6, "1604 with an empty payload");
    }
    if !sizes.contains(&r.payload.len()) {
        return fail(format!(
            "{}: payload of {} bytes, section 4 says {:?}",
            r.code,
            r.payload.len(),
            sizes
        ));
    }
    pass(format!(
        "{}: version 3, little-endian, {} bytes",
        r.code,
        r.payload.len()
    ))
}

fn expect_response(a: &Answer, code: u16, sizes: &[usize]) -> Judged {
    match a.response() {
        Some(r) if r.code == code => check_response(r, sizes),
        _ => fail(format!("expected {code}, got {}", a.describe())),
    }
}

/// Every case of the group.
pub fn cases() -> Vec<ServerCase> {
    let mut v = Vec::new();
    for cut in CUTS {
        v.push(case(
            G,
            format!("825 written in two pieces cut at byte {cut} of 278 is reassembled"),
            "§2, v13",
            move |ctx| register_split(ctx, &[cut], &format!("cut at {cut}")),
        ));
    }
    v.push(case(
        G,
        "825 header written one byte at a time, then the payload",
        "§2, v13",
        |ctx| {
            let cuts: Vec<usize> = (1..=23).collect();
            register_split(ctx, &cuts, "23 one-byte writes")
        },
    ));
    for k in [0usize, 1, 23, 140] {
        v.push(case(
            G,
            format!("two 825s coalesced in one write, the second cut at byte {k}"),
            "§2, v13",
            move |ctx| {
                let a = ctx.env.fresh_name("pair");
                let b = ctx.env.fresh_name("pair");
                let mut bytes = request(
                    [0; 16],
                    code::REGISTER,
                    &name_field(a.as_bytes()),
                    ctx.env.order,
                );
                let cut_at = bytes.len() + if k == 0 { 278 } else { k };
                bytes.extend(request(
                    [0; 16],
                    code::REGISTER,
                    &name_field(b.as_bytes()),
                    ctx.env.order,
                ));
                let mut conn = ctx.connect()?;
                ctx.send_split(&mut conn, &bytes, &[cut_at]);
                let first = ctx.answer(&mut conn);
                let second = ctx.answer(&mut conn);
                let judged = match (first.response(), second.response()) {
                    (Some(x), Some(y))
                        if x.code == rcode::REGISTERED && y.code == rcode::REGISTERED =>
                    {
                        if x.id() == y.id() {
                            fail("both registrations got the same id")
                        } else {
                            pass("two 1600s with distinct ids")
                        }
                    }
                    _ if first.code() == Some(rcode::REGISTERED) && ctx.env.per_connection => {
                        variant(
                            7,
                            format!(
                                "the second request: {} (the server closes after every answer)",
                                second.describe()
                            ),
                        )
                    }
                    _ if first.code() == Some(rcode::REGISTERED) => {
                        one_recv(&second, "the second request")
                    }
                    _ => one_recv(&first, "the first request"),
                };
                Ok(judged)
            },
        ));
    }
    v.push(case(
        G,
        "825 and an unknown client's 827 in one write: 1600 then 1606",
        "§2, §7",
        |ctx| {
            let a = ctx.env.fresh_name("pair");
            let mut bytes = request(
                [0; 16],
                code::REGISTER,
                &name_field(a.as_bytes()),
                ctx.env.order,
            );
            bytes.extend(request(
                [0x5a; 16],
                code::RECONNECT,
                &name_field(b"nobody-here"),
                ctx.env.order,
            ));
            let mut conn = ctx.connect()?;
            ctx.send(&mut conn, &bytes);
            let first = ctx.answer(&mut conn);
            let second = ctx.answer(&mut conn);
            Ok(match (first.code(), second.code()) {
                (Some(1600), Some(1606)) => pass("1600, 1606"),
                (Some(1600), _) if ctx.env.per_connection => variant(
                    7,
                    format!(
                        "second request: {} (the server closes after every answer)",
                        second.describe()
                    ),
                ),
                (Some(1600), _) if second.is_refusal() || second == Answer::Timeout => {
                    variant(13, format!("second request: {}", second.describe()))
                }
                _ => fail(format!("{} then {}", first.describe(), second.describe())),
            })
        },
    ));
    v.push(case(
        G,
        "825 with a big-endian header (variant 1) is accepted",
        "§2, v1",
        |ctx| {
            let name = ctx.env.fresh_name("be");
            let mut conn = ctx.connect()?;
            let a = ctx.ask(
                &mut conn,
                &request(
                    [0; 16],
                    code::REGISTER,
                    &name_field(name.as_bytes()),
                    ByteOrder::Big,
                ),
            );
            Ok(match a.response() {
                Some(r) if r.code == rcode::REGISTERED => pass(format!(
                    "accepted; answered {}",
                    if r.order == ByteOrder::Big {
                        "big-endian (mirrors)"
                    } else {
                        "little-endian"
                    }
                )),
                _ => info(format!("big-endian requests not served: {}", a.describe())),
            })
        },
    ));
    v.push(case(
        G,
        "826 with a big-endian header is accepted",
        "§2, v1",
        |ctx| {
            let mut c = ctx.register("be")?;
            let p = ctx.key_payload(c.name.as_bytes(), 0)?;
            let req = request(c.id, code::PUBLIC_KEY, &p, ByteOrder::Big);
            let a = ctx.request(&mut c, &req)?;
            Ok(match a.code() {
                Some(rcode::AES_KEY) => pass("1602"),
                _ => info(format!("big-endian 826 not served: {}", a.describe())),
            })
        },
    ));
    v.push(case(
        G,
        "827 with a big-endian header is accepted",
        "§2, v1",
        |ctx| {
            let mut c = ctx.ready("be")?;
            let req = request(
                c.id,
                code::RECONNECT,
                &name_field(c.name.as_bytes()),
                ByteOrder::Big,
            );
            let a = ctx.request(&mut c, &req)?;
            Ok(match a.code() {
                Some(rcode::RECONNECTED) => pass("1605"),
                _ => info(format!("big-endian 827 not served: {}", a.describe())),
            })
        },
    ));
    v.push(case(
        G,
        "828 and 900 with big-endian headers and fields are accepted",
        "§2, v1",
        |ctx| {
            let mut c = ctx.ready("be")?;
            let up = Upload {
                data: data(3000, 1),
                file_name: b"be.bin".to_vec(),
                packet_size: 1024,
                layout: Layout {
                    order: ByteOrder::Big,
                    ..Layout::default()
                },
            };
            let got = ctx.upload(&mut c, &up)?;
            let ok = got
                .last()
                .response()
                .and_then(|r| r.file_received())
                .is_some_and(|f| f.checksum == got.cksum);
            if !ok {
                return Ok(info(format!(
                    "big-endian upload not served: {}",
                    got.last().describe()
                )));
            }
            let req = request(c.id, code::CRC_OK, &name_field(b"be.bin"), ByteOrder::Big);
            let a = ctx.request(&mut c, &req)?;
            Ok(match a.code() {
                Some(rcode::ACK) => pass("1603 with the right checksum, 1604"),
                _ => info(format!("big-endian 900: {}", a.describe())),
            })
        },
    ));
    v.push(case(
        G,
        "1600: version 3, little-endian, 16-byte id",
        "§2, §4",
        |ctx| {
            let name = ctx.env.fresh_name("hdr");
            let (_, a) = ctx.register_name(name.as_bytes())?;
            Ok(expect_response(&a, rcode::REGISTERED, &[16]))
        },
    ));
    v.push(case(
        G,
        "1601: version 3, little-endian, empty payload",
        "§2, §4",
        |ctx| {
            let c = ctx.register("hdr")?;
            let (_, a) = ctx.register_name(c.name.as_bytes())?;
            Ok(expect_response(&a, rcode::REG_FAILED, &[0]))
        },
    ));
    v.push(case(
        G,
        "1602: version 3, little-endian, id and a 128-byte key",
        "§2, §4",
        |ctx| {
            let mut c = ctx.register("hdr")?;
            let a = ctx.send_key(&mut c, 0)?;
            Ok(expect_response(&a, rcode::AES_KEY, &[16 + 128]))
        },
    ));
    v.push(case(
        G,
        "1603: version 3, little-endian, 279 bytes",
        "§2, §4",
        |ctx| {
            let mut c = ctx.ready("hdr")?;
            let up = Upload {
                data: data(100, 2),
                file_name: b"h.bin".to_vec(),
                packet_size: 1024,
                layout: Layout::default(),
            };
            let got = ctx.upload(&mut c, &up)?;
            Ok(expect_response(got.last(), rcode::FILE_RECEIVED, &[279]))
        },
    ));
    v.push(case(
        G,
        "1604: version 3, little-endian, the 16-byte id",
        "§2, §4, v6",
        |ctx| {
            let mut c = ctx.ready("hdr")?;
            let up = Upload {
                data: data(100, 3),
                file_name: b"h.bin".to_vec(),
                packet_size: 1024,
                layout: Layout::default(),
            };
            ctx.upload(&mut c, &up)?;
            let a = ctx.verdict(&mut c, code::CRC_OK, b"h.bin")?;
            Ok(expect_response(&a, rcode::ACK, &[16]))
        },
    ));
    v.push(case(
        G,
        "1605: version 3, little-endian, id and a 128-byte key",
        "§2, §4",
        |ctx| {
            let mut c = ctx.ready("hdr")?;
            let req = request(
                c.id,
                code::RECONNECT,
                &name_field(c.name.as_bytes()),
                ctx.env.order,
            );
            let a = ctx.request(&mut c, &req)?;
            Ok(expect_response(&a, rcode::RECONNECTED, &[16 + 128]))
        },
    ));
    v.push(case(
        G,
        "1606: version 3, little-endian, the echoed id",
        "§2, §4",
        |ctx| {
            let mut conn = ctx.connect()?;
            let a = ctx.ask(
                &mut conn,
                &request(
                    [0x77; 16],
                    code::RECONNECT,
                    &name_field(b"nobody-at-all"),
                    ctx.env.order,
                ),
            );
            Ok(match a.response() {
                Some(r) if r.code == rcode::RECONNECT_REFUSED && r.payload.is_empty() => {
                    info("1606 with an empty payload (section 7 echoes the id)")
                }
                _ => expect_response(&a, rcode::RECONNECT_REFUSED, &[16]),
            })
        },
    ));
    v.push(case(
        G,
        "1607: version 3, little-endian, empty payload",
        "§2, §4",
        |ctx| {
            let mut conn = ctx.connect()?;
            let mut r = header([0; 16], 3, code::PUBLIC_KEY, 415, ctx.env.order);
            r.extend(vec![0u8; 415]);
            let a = ctx.ask(&mut conn, &r);
            Ok(expect_response(&a, rcode::GENERAL_ERROR, &[0]))
        },
    ));
    for version in [0u8, 1, 2, 4, 255] {
        v.push(case(
            G,
            format!("825 with version byte {version}: what the server does"),
            "§2",
            move |ctx| {
                let name = ctx.env.fresh_name("ver");
                let mut conn = ctx.connect()?;
                let mut r = header([0; 16], version, code::REGISTER, 255, ctx.env.order);
                r.extend(name_field(name.as_bytes()));
                let a = ctx.ask(&mut conn, &r);
                Ok(match a {
                    Answer::Response(_) | Answer::Closed | Answer::Reset => {
                        info(format!("version {version}: {}", a.describe()))
                    }
                    _ => fail(format!(
                        "version {version}: {} (neither answered nor closed)",
                        a.describe()
                    )),
                })
            },
        ));
    }
    v
}
