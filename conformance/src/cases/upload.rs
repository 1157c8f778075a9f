//! Group 5, upload (sections 3, 5, 7; variants 2, 3, 4, 7, 8, 9, 11, 12): files at
//! every size and block boundary, packet layouts, the content size field, numbering,
//! the 1603 and which packet it answers.

use super::{case, fail, info, pass, variant, Judged, ServerCase};
use crate::frames::rcode;
use crate::model::{Check, Group};
use crate::probe::{CaseError, Ctx};
use crate::session::{data, Layout, Upload, Uploaded};

const G: Group = Group::Upload;

/// Judges the answers to an upload: the 1603s, which packet they answer, their
/// fields and the checksum.
pub fn judge(got: &Uploaded, id: [u8; 16], up: &Upload) -> Judged {
    let frs = got.file_received();
    let Some((last, early)) = frs.split_last() else {
        return fail(format!("no 1603: {}", got.last().describe()));
    };
    let mut seen_variant = None;
    for r in early {
        match r.file_received() {
            Some(f) if f.checksum == 0 && f.size < got.cipher_len => seen_variant = Some(7),
            _ => {
                return fail(format!(
                    "a 1603 claiming the file before its last packet ({} of {} answers)",
                    got.before_last,
                    got.answers.len()
                ))
            }
        }
    }
    let Some(f) = last.file_received() else {
        return fail(format!("a 1603 of {} bytes", last.payload.len()));
    };
    if f.id != id {
        return fail("the 1603 carries another client id");
    }
    if last.file_name().as_deref() != Some(&up.file_name[..]) {
        return fail("the 1603 does not echo the file name");
    }
    if f.size != got.cipher_len {
        if f.size as usize == up.data.len() {
            seen_variant = seen_variant.or(Some(11));
        } else {
            return fail(format!(
                "content size {} in the 1603; {} bytes were sent",
                f.size, got.cipher_len
            ));
        }
    }
    if f.checksum != got.cksum {
        if f.checksum == got.crc32 {
            return variant(8, "zlib CRC-32 instead of cksum");
        }
        return fail(format!(
            "checksum {:#010x}; the cksum of the file is {:#010x}",
            f.checksum, got.cksum
        ));
    }
    match seen_variant {
        Some(7) => variant(
            7,
            format!("a 1603 after every packet ({} packets)", got.packets),
        ),
        Some(11) => variant(11, "the plaintext size in the 1603"),
        _ => pass(format!(
            "{} packet(s), 1603 with size {} and cksum {:#010x}",
            got.packets, f.size, f.checksum
        )),
    }
}

/// When the specification's layout got no 1603, the layout of a variant that does.
fn which_variant(ctx: &mut Ctx<'_>, up: &Upload) -> Result<Option<Judged>, CaseError> {
    let tries: [(u8, Layout, usize, &str); 5] = [
        (
            9,
            Layout::default(),
            1024,
            "1 KiB packets, a write per request (9, 13)",
        ),
        (
            2,
            Layout {
                total_first: true,
                per_packet_encryption: true,
                ..Layout::default()
            },
            1024,
            "total packets first, each packet encrypted on its own (2, 4)",
        ),
        (
            12,
            Layout {
                padded: true,
                ..Layout::default()
            },
            1024,
            "a fixed 1,024-byte content field (12)",
        ),
        (
            3,
            Layout {
                per_packet_size: true,
                ..Layout::default()
            },
            1024,
            "the content size of each packet in its field (3)",
        ),
        (
            1,
            Layout {
                order: protocol_core::ByteOrder::Big,
                ..Layout::default()
            },
            1024,
            "big-endian headers and fields (1)",
        ),
    ];
    // The question is which layout the server takes at all: asked with a file
    // whose last 1 KiB packet is short, where the layouts differ.
    for (n, layout, size, what) in tries {
        let mut c = ctx.ready("alt")?;
        let alt = Upload {
            layout,
            packet_size: size,
            data: data(3000, 3),
            ..up.clone()
        };
        let got = ctx.upload_exactly(&mut c, &alt)?;
        let j = judge(&got, c.id, &alt);
        if matches!(
            j.outcome,
            crate::model::Outcome::Pass | crate::model::Outcome::Variant(_)
        ) {
            return Ok(Some(variant(
                n,
                format!("the specification's layout got no 1603; {what} did"),
            )));
        }
    }
    Ok(None)
}

fn upload_case(ctx: &mut Ctx<'_>, up: &Upload, tag: &str) -> Result<Judged, CaseError> {
    let mut c = ctx.ready(tag)?;
    let got = ctx.upload_exactly(&mut c, up)?;
    let j = judge(&got, c.id, up);
    if got.file_received().is_empty() {
        if let Some(v) = which_variant(ctx, up)? {
            return Ok(v);
        }
    }
    Ok(j)
}

/// A case that sends a changed upload and expects it refused.
fn refused_upload(
    ctx: &mut Ctx<'_>,
    size: usize,
    change: impl Fn(&mut Vec<Vec<u8>>),
    what: &str,
) -> Result<Judged, CaseError> {
    let mut c = ctx.ready("bad")?;
    let up = Upload {
        data: data(size, 21),
        file_name: b"bad.bin".to_vec(),
        packet_size: 1024,
        layout: Layout::default(),
    };
    let Some(key) = c.key.as_ref() else {
        return Err(CaseError::Setup("no key".into()));
    };
    let mut frames = crate::session::packets(c.id, key, &up);
    change(&mut frames);
    let got = ctx.upload_frames(&mut c, &up, &frames)?;
    let last = got.last();
    Ok(match last.code() {
        Some(rcode::FILE_RECEIVED) => info(format!("{what}: answered 1603 (not checked)")),
        _ if last.is_refusal() => pass(format!("{what}: refused ({})", last.describe())),
        _ => info(format!("{what}: {}", last.describe())),
    })
}

/// Sets a little-endian u16 at `at` of the 828 payload (after the 23-byte header).
fn set_u16(frame: &mut [u8], at: usize, v: u16) {
    if let Some(b) = frame.get_mut(23 + at..23 + at + 2) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

fn set_u32(frame: &mut [u8], at: usize, v: u32) {
    if let Some(b) = frame.get_mut(23 + at..23 + at + 4) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

/// File sizes and packet sizes: every block boundary, every packet boundary.
const SIZES: [(usize, usize); 24] = [
    (0, 1024),
    (1, 1024),
    (15, 1024),
    (16, 1024),
    (17, 1024),
    (31, 1024),
    (32, 1024),
    (33, 1024),
    (1000, 1024),
    (1007, 1024),
    (1008, 1024),
    (1024, 1024),
    (4095, 4096),
    (4096, 4096),
    (65535, 65536),
    (65536, 65536),
    (1, 16),
    (33, 16),
    (48, 16),
    (3000, 1024),
    (10000, 1000),
    (12345, 4096),
    (500, 7),
    (200000, 65536),
];

/// Every case of the group.
pub fn cases() -> Vec<ServerCase> {
    let mut v = Vec::new();
    for (i, (size, packet)) in SIZES.into_iter().enumerate() {
        let cipher = (size / 16 + 1) * 16;
        let n = cipher.div_ceil(packet);
        let checks: &[Check] = if n > 1 {
            &[Check::Checksum, Check::LastPacketOnly]
        } else {
            &[Check::Checksum]
        };
        v.push(
            case(
                G,
                format!("a {size}-byte file in {n} packet(s) of {packet} bytes"),
                "§3, §5, §7",
                move |ctx| {
                    let up = Upload {
                        data: data(size, i as u32),
                        file_name: format!("f{size}.bin").into_bytes(),
                        packet_size: packet,
                        layout: Layout::default(),
                    };
                    upload_case(ctx, &up, "up")
                },
            )
            .checks(checks),
        );
    }
    let layouts: [(&str, Layout, &str); 5] = [
        (
            "total packets before the packet number",
            Layout {
                total_first: true,
                ..Layout::default()
            },
            "v2",
        ),
        (
            "the content size of each packet",
            Layout {
                per_packet_size: true,
                ..Layout::default()
            },
            "v3",
        ),
        (
            "each packet encrypted on its own",
            Layout {
                per_packet_encryption: true,
                ..Layout::default()
            },
            "v4",
        ),
        (
            "total first and per-packet encryption",
            Layout {
                total_first: true,
                per_packet_encryption: true,
                ..Layout::default()
            },
            "v2, v4",
        ),
        (
            "a fixed 1,024-byte zero-filled content field",
            Layout {
                padded: true,
                ..Layout::default()
            },
            "v12",
        ),
    ];
    for (what, layout, section) in layouts {
        v.push(
            case(
                G,
                format!("an upload with {what} is understood"),
                section,
                move |ctx| {
                    let mut c = ctx.ready("lay")?;
                    let up = Upload {
                        data: data(3000, 7),
                        file_name: b"layout.bin".to_vec(),
                        packet_size: 1024,
                        layout,
                    };
                    let got = ctx.upload_exactly(&mut c, &up)?;
                    if got.file_received().is_empty() {
                        return Ok(info(format!("not accepted: {}", got.last().describe())));
                    }
                    Ok(judge(&got, c.id, &up))
                },
            )
            .checks(&[Check::Checksum, Check::LastPacketOnly]),
        );
    }
    for len in [1usize, 100, 254] {
        v.push(
            case(
                G,
                format!("a {len}-byte file name is echoed in the 1603"),
                "§3, §4",
                move |ctx| {
                    let name: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    let up = Upload {
                        data: data(100, 5),
                        file_name: name,
                        packet_size: 1024,
                        layout: Layout::default(),
                    };
                    upload_case(ctx, &up, "fname")
                },
            )
            .checks(&[Check::Checksum]),
        );
    }
    v.push(
        case(G, "two uploads in a row on one connection", "§7", |ctx| {
            let mut c = ctx.ready("twice")?;
            let a = Upload {
                data: data(2000, 8),
                file_name: b"one.bin".to_vec(),
                packet_size: 1024,
                layout: Layout::default(),
            };
            let b = Upload {
                data: data(3000, 9),
                file_name: b"two.bin".to_vec(),
                packet_size: 1024,
                layout: Layout::default(),
            };
            let ga = ctx.upload(&mut c, &a)?;
            let ja = judge(&ga, c.id, &a);
            if ja.outcome != crate::model::Outcome::Pass {
                return Ok(ja);
            }
            let gb = ctx.upload(&mut c, &b)?;
            Ok(judge(&gb, c.id, &b))
        })
        .checks(&[Check::Checksum, Check::LastPacketOnly]),
    );
    v.push(case(
        G,
        "content size field larger than the ciphertext is refused",
        "§3",
        |ctx| {
            refused_upload(
                ctx,
                3000,
                |f| f.iter_mut().for_each(|p| set_u32(p, 0, 3008 + 16)),
                "content size +16",
            )
        },
    ));
    v.push(case(
        G,
        "content size field smaller than the ciphertext is refused",
        "§3",
        |ctx| {
            refused_upload(
                ctx,
                3000,
                |f| f.iter_mut().for_each(|p| set_u32(p, 0, 1024)),
                "content size 1024 of 3008",
            )
        },
    ));
    v.push(case(
        G,
        "content size field changing between packets is refused",
        "§3",
        |ctx| {
            refused_upload(
                ctx,
                3000,
                |f| {
                    if let Some(p) = f.get_mut(1) {
                        set_u32(p, 0, 4000)
                    }
                },
                "packet 2 says 4000",
            )
        },
    ));
    v.push(case(
        G,
        "an original size that the ciphertext cannot hold is refused",
        "§3",
        |ctx| {
            refused_upload(
                ctx,
                3000,
                |f| f.iter_mut().for_each(|p| set_u32(p, 4, 5000)),
                "original size 5000 for 3008 bytes",
            )
        },
    ));
    v.push(case(G, "packet number 0 is refused", "§3", |ctx| {
        refused_upload(
            ctx,
            100,
            |f| f.iter_mut().for_each(|p| set_u16(p, 8, 0)),
            "packet 0 of 1",
        )
    }));
    v.push(case(
        G,
        "a packet number above the total is refused",
        "§3",
        |ctx| {
            refused_upload(
                ctx,
                100,
                |f| f.iter_mut().for_each(|p| set_u16(p, 8, 2)),
                "packet 2 of 1",
            )
        },
    ));
    v.push(case(G, "a total of 0 packets is refused", "§3", |ctx| {
        refused_upload(
            ctx,
            100,
            |f| f.iter_mut().for_each(|p| set_u16(p, 10, 0)),
            "packet 1 of 0",
        )
    }));
    v.push(case(G, "packets out of order are refused", "§7", |ctx| {
        refused_upload(ctx, 3000, |f| f.swap(0, 1), "packet 2 before packet 1")
    }));
    v.push(case(G, "a packet sent twice is refused", "§7", |ctx| {
        refused_upload(
            ctx,
            3000,
            |f| {
                if let Some(p) = f.first().cloned() {
                    f.insert(1, p);
                }
            },
            "packet 1 twice",
        )
    }));
    v.push(case(
        G,
        "a total changing between packets is refused",
        "§3",
        |ctx| {
            refused_upload(
                ctx,
                3000,
                |f| {
                    if let Some(p) = f.get_mut(1) {
                        set_u16(p, 10, 4)
                    }
                },
                "packet 2 says 4 in all",
            )
        },
    ));
    v.push(
        case(
            G,
            "an upload that stops before its last packet gets no 1603",
            "§7",
            |ctx| {
                let mut c = ctx.ready("stop")?;
                let up = Upload {
                    data: data(3000, 22),
                    file_name: b"stop.bin".to_vec(),
                    packet_size: 1024,
                    layout: Layout::default(),
                };
                let Some(key) = c.key.as_ref() else {
                    return Err(CaseError::Setup("no key".into()));
                };
                let mut frames = crate::session::packets(c.id, key, &up);
                frames.pop();
                for f in &frames {
                    ctx.reopen_if_needed(&mut c)?;
                    ctx.send(&mut c.conn, f);
                }
                let a = ctx.expect_silence(&mut c.conn);
                Ok(match a.response().and_then(|r| r.file_received()) {
                    Some(f) if f.checksum == 0 && !ctx.env.per_connection => {
                        variant(7, "a 1603 (checksum 0) for a packet before the last")
                    }
                    Some(_) if ctx.env.per_connection => {
                        pass("answers per packet (variant 7 server)")
                    }
                    Some(_) => fail("a 1603 with a checksum before the last packet"),
                    None => pass(format!("2 of 3 packets: {}", a.describe())),
                })
            },
        )
        .checks(&[Check::LastPacketOnly]),
    );
    v
}
