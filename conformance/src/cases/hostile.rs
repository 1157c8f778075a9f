//! Group 7, hostile input (sections 2, 7): declared sizes past every limit, unknown
//! codes, bad padding, wrong ids, junk, slow senders. Every case sends a bounded
//! number of bytes, and ends by checking that the server still registers a client.

use std::time::Duration;

use super::{case, fail, info, pass, Judged, ServerCase};
use crate::frames::{code, header, name_field, rcode, request};
use crate::model::Group;
use crate::probe::{Answer, CaseError, Ctx};
use crate::session::{data, packets, Layout, Upload};

const G: Group = Group::Hostile;

/// A change made to the frames of an upload.
type Change = fn(&mut Vec<u8>);

/// Whether the server still registers a new client.
pub fn alive(ctx: &mut Ctx<'_>) -> bool {
    let name = ctx.env.fresh_name("alive");
    match ctx.register_name(name.as_bytes()) {
        Ok((_, a)) => a.code() == Some(rcode::REGISTERED),
        Err(_) => false,
    }
}

/// Judges the answer to hostile bytes: a refusal (1607, a close) passes, silence is
/// reported, anything accepted fails; then the server must still serve others.
fn refused_then_alive(ctx: &mut Ctx<'_>, a: &Answer, what: &str) -> Judged {
    let j = match a.code() {
        Some(rcode::GENERAL_ERROR) | Some(rcode::REG_FAILED) | Some(rcode::RECONNECT_REFUSED) => {
            pass(format!("{what}: {}", a.describe()))
        }
        Some(c) => fail(format!("{what}: answered {c}")),
        None if a.is_refusal() => pass(format!("{what}: {}", a.describe())),
        None => info(format!(
            "{what}: {} within the wait (the server waits for more?)",
            a.describe()
        )),
    };
    if alive(ctx) {
        j
    } else {
        fail(format!(
            "{what}: afterwards the server no longer registers clients"
        ))
    }
}

fn raw_case(ctx: &mut Ctx<'_>, bytes: &[u8], what: &str) -> Result<Judged, CaseError> {
    let mut conn = ctx.connect()?;
    ctx.send(&mut conn, bytes);
    let a = ctx.answer_within(&mut conn, Duration::from_secs(2));
    Ok(refused_then_alive(ctx, &a, what))
}

/// Every case of the group.
pub fn cases() -> Vec<ServerCase> {
    let mut v = Vec::new();
    let sizes: [(u16, &str, u32); 14] = [
        (code::REGISTER, "825", 0),
        (code::REGISTER, "825", 254),
        (code::REGISTER, "825", 256),
        (code::REGISTER, "825", 65_536),
        (code::REGISTER, "825", u32::MAX),
        (code::PUBLIC_KEY, "826", 0),
        (code::PUBLIC_KEY, "826", 414),
        (code::PUBLIC_KEY, "826", u32::MAX),
        (code::SEND_FILE, "828", 0),
        (code::SEND_FILE, "828", 266),
        (code::SEND_FILE, "828", 16 * 1024 * 1024 + 268),
        (code::SEND_FILE, "828", u32::MAX),
        (code::CRC_OK, "900", 0),
        (code::CRC_OK, "900", 100_000),
    ];
    for (c, name, size) in sizes {
        v.push(case(
            G,
            format!("{name} declaring a {size}-byte payload is refused"),
            "§2, §3",
            move |ctx| {
                let mut bytes = header([0; 16], 3, c, size, ctx.env.order);
                bytes.extend(vec![b'q'; (size as usize).min(64)]);
                raw_case(ctx, &bytes, &format!("{name} size {size}"))
            },
        ));
    }
    for c in [0u16, 1, 824, 829, 899, 903, 1600, 1607, 65535] {
        v.push(case(
            G,
            format!("unknown request code {c} is refused"),
            "§3",
            move |ctx| {
                let bytes = request([0; 16], c, &name_field(b"whoever"), ctx.env.order);
                raw_case(ctx, &bytes, &format!("code {c}"))
            },
        ));
    }
    let junk: [(&str, Vec<u8>); 5] = [
        ("23 zero bytes", vec![0; 23]),
        ("23 random bytes", data(23, 77)),
        ("1,000 random bytes", data(1000, 78)),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: conformance\r\n\r\n".to_vec(),
        ),
        (
            "a TLS ClientHello start",
            vec![
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 0, 0, 0,
            ],
        ),
    ];
    for (what, bytes) in junk {
        v.push(case(G, format!("{what} are refused"), "§2", move |ctx| {
            raw_case(ctx, &bytes, what)
        }));
    }
    let bad_uploads: [(&str, Change); 3] = [
        ("the last block's padding broken", |f| {
            if let Some(b) = f.last_mut() {
                *b ^= 0x5a;
            }
        }),
        ("a ciphertext that is no multiple of 16", |f| {
            f.truncate(f.len() - 3);
            let n = (f.len() - 23) as u32;
            f[19..23].copy_from_slice(&n.to_le_bytes());
            let total = n - 267;
            f[23..27].copy_from_slice(&total.to_le_bytes());
        }),
        ("the content of another key", |_| {}),
    ];
    for (i, (what, change)) in bad_uploads.into_iter().enumerate() {
        v.push(case(
            G,
            format!("an upload with {what} is refused"),
            "§5, §7",
            move |ctx| {
                let mut c = ctx.ready("pad")?;
                let up = Upload {
                    data: data(100, 31),
                    file_name: b"pad.bin".to_vec(),
                    packet_size: 1024,
                    layout: Layout::default(),
                };
                let mut frames = if i == 2 {
                    let other = protocol_core::crypto::AesKey::from_slice(&[0x11; 32])
                        .ok_or_else(|| CaseError::Setup("key".into()))?;
                    packets(c.id, &other, &up)
                } else {
                    let key = c
                        .key
                        .as_ref()
                        .ok_or_else(|| CaseError::Setup("no key".into()))?;
                    packets(c.id, key, &up)
                };
                frames.iter_mut().for_each(change);
                let got = ctx.upload_frames(&mut c, &up, &frames)?;
                let last = got.last().clone();
                Ok(match last.response().and_then(|r| r.file_received()) {
                    Some(f) if f.checksum == got.cksum => {
                        fail(format!("{what}: 1603 with the file's checksum"))
                    }
                    Some(_) => fail(format!("{what}: a 1603 for bytes that do not decrypt")),
                    None => refused_then_alive(ctx, &last, what),
                })
            },
        ));
    }
    v.push(case(
        G,
        "828 for an unknown client id is refused",
        "§7",
        |ctx| {
            let key = protocol_core::crypto::AesKey::from_slice(&[0x22; 32])
                .ok_or_else(|| CaseError::Setup("key".into()))?;
            let up = Upload {
                data: data(50, 1),
                file_name: b"x.bin".to_vec(),
                packet_size: 1024,
                layout: Layout::default(),
            };
            let f = packets([0x6e; 16], &key, &up);
            let bytes = f.concat();
            raw_case(ctx, &bytes, "unknown id")
        },
    ));
    v.push(case(
        G,
        "828 from a client that sent no key is refused",
        "§7",
        |ctx| {
            let mut c = ctx.register("nokey")?;
            let up = Upload {
                data: data(50, 1),
                file_name: b"x.bin".to_vec(),
                packet_size: 1024,
                layout: Layout::default(),
            };
            let key = protocol_core::crypto::AesKey::from_slice(&[0x33; 32])
                .ok_or_else(|| CaseError::Setup("key".into()))?;
            let f = packets(c.id, &key, &up).concat();
            let a = ctx.request(&mut c, &f)?;
            Ok(refused_then_alive(ctx, &a, "no key on file"))
        },
    ));
    v.push(case(
        G,
        "a request paused 1.5 s in the middle is still served",
        "§2, §7, v13",
        |ctx| {
            let name = ctx.env.fresh_name("slow");
            let r = request(
                [0; 16],
                code::REGISTER,
                &name_field(name.as_bytes()),
                ctx.env.order,
            );
            let mut conn = ctx.connect()?;
            ctx.send(&mut conn, &r[..100]);
            std::thread::sleep(Duration::from_millis(1500));
            ctx.send(&mut conn, &r[100..]);
            let a = ctx.answer(&mut conn);
            Ok(match a.code() {
                Some(rcode::REGISTERED) => pass("1600"),
                _ if a.is_refusal() || a == Answer::Timeout => {
                    crate::cases::variant(13, format!("{} (one recv per request)", a.describe()))
                }
                _ => fail(a.describe()),
            })
        },
    ));
    v.push(case(
        G,
        "a stalled half header does not stop others being served",
        "§7",
        |ctx| {
            let mut stalled = ctx.connect()?;
            ctx.send(&mut stalled, &[0u8; 10]);
            let ok = alive(ctx);
            drop(stalled);
            Ok(if ok {
                pass("another client registered meanwhile")
            } else {
                fail("no registration while a half header waits")
            })
        },
    ));
    v.push(case(
        G,
        "twenty idle connections do not stop others being served",
        "§7",
        |ctx| {
            let mut idle = Vec::new();
            for _ in 0..20 {
                idle.push(ctx.connect()?);
            }
            let ok = alive(ctx);
            drop(idle);
            Ok(if ok {
                pass("registered with 20 idle connections open")
            } else {
                fail("no registration with 20 idle connections open")
            })
        },
    ));
    v.push(case(
        G,
        "a client that closes mid-request does not stop the server",
        "§7",
        |ctx| {
            let mut conn = ctx.connect()?;
            let r = request(
                [0; 16],
                code::REGISTER,
                &name_field(b"gone-midway"),
                ctx.env.order,
            );
            ctx.send(&mut conn, &r[..40]);
            drop(conn);
            Ok(if alive(ctx) {
                pass("still serving")
            } else {
                fail("the server stopped")
            })
        },
    ));
    v.push(case(
        G,
        "an 828 declaring 16 MiB from a client with no key is refused before its payload",
        "§2",
        |ctx| {
            // Only the header and the first bytes: the case never sends 16 MiB.
            let mut c = ctx.register("big")?;
            let mut f = header(c.id, 3, code::SEND_FILE, 16 * 1024 * 1024, ctx.env.order);
            f.extend(vec![0u8; 267]);
            ctx.reopen_if_needed(&mut c)?;
            ctx.send(&mut c.conn, &f);
            let a = ctx.answer_within(&mut c.conn, Duration::from_millis(800));
            Ok(refused_then_alive(
                ctx,
                &a,
                "16 MiB declared, 267 bytes sent",
            ))
        },
    ));
    v
}
