//! Group 8, connection patterns (section 7; variant 7): one connection, a connection
//! per request, which answers close the connection, concurrent clients.

use std::time::Duration;

use super::{case, fail, info, pass, variant, Judged, ServerCase};
use crate::frames::{code, name_field, rcode, request};
use crate::model::{Check, Group};
use crate::probe::{CaseError, Ctx};
use crate::session::{data, Layout, Upload};

const G: Group = Group::Connections;

fn upload_of(seed: u32) -> Upload {
    Upload {
        data: data(2500, seed),
        file_name: b"conn.bin".to_vec(),
        packet_size: 1024,
        layout: Layout::default(),
    }
}

/// A whole exchange (825, 826, 828, 900) for one client: the 1604 or why not.
fn exchange(ctx: &mut Ctx<'_>, tag: &str, seed: u32) -> Result<Judged, CaseError> {
    let mut c = ctx.ready(tag)?;
    let up = upload_of(seed);
    let got = ctx.upload(&mut c, &up)?;
    match got.last().response().and_then(|r| r.file_received()) {
        Some(f) if f.checksum == got.cksum || f.checksum == got.crc32 => {}
        Some(_) => return Ok(fail("wrong checksum")),
        None => return Ok(fail(format!("upload: {}", got.last().describe()))),
    }
    let a = ctx.verdict(&mut c, code::CRC_OK, b"conn.bin")?;
    Ok(match a.code() {
        Some(rcode::ACK) => pass("825, 826, 828 x3, 900: 1604"),
        _ => fail(format!("900: {}", a.describe())),
    })
}

/// Whether the connection is still open a moment after an answer.
fn open_after(ctx: &mut Ctx<'_>, conn: &crate::probe::Conn, what: &str, needed: bool) -> Judged {
    std::thread::sleep(Duration::from_millis(200));
    if !conn.is_closed() {
        return pass(format!("open after {what}"));
    }
    ctx.ev.note(format!("closed after {what}"));
    if ctx.env.per_connection {
        variant(7, format!("closed after {what}: a connection per request"))
    } else if needed {
        fail(format!(
            "closed after {what}, though it closes after no other answer"
        ))
    } else {
        info(format!("closed after {what}"))
    }
}

fn concurrent(ctx: &mut Ctx<'_>, n: u32) -> Result<Judged, CaseError> {
    let env = ctx.env;
    let results: Vec<Result<Judged, CaseError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| s.spawn(move || exchange(&mut Ctx::new(env), "conc", 100 + i)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(CaseError::Setup("a thread panicked".into())))
            })
            .collect()
    });
    let mut passed = 0;
    for r in results {
        match r {
            Ok(j) if j.outcome == crate::model::Outcome::Pass => passed += 1,
            Ok(j) => ctx.ev.note(j.detail),
            Err(e) => ctx.ev.note(e.to_string()),
        }
    }
    ctx.ev.note(format!("{passed} of {n} clients verified"));
    Ok(if passed == n {
        pass(format!("{n} clients at once, each verified"))
    } else {
        fail(format!("{passed} of {n} concurrent clients verified"))
    })
}

/// Every case of the group.
pub fn cases() -> Vec<ServerCase> {
    let mut v = Vec::new();
    v.push(
        case(G, "a whole exchange on one connection", "§7", |ctx| {
            exchange(ctx, "one", 1)
        })
        .checks(&[Check::Checksum]),
    );
    v.push(case(
        G,
        "a whole exchange with a connection per request",
        "§7, v7",
        |ctx| {
            let mut c = ctx.register("per")?;
            c.conn = ctx.connect()?;
            ctx.send_key(&mut c, 0)?;
            if c.key.is_none() {
                return Ok(info("826 on a new connection got no key"));
            }
            let up = Upload {
                data: data(300, 2),
                file_name: b"per.bin".to_vec(),
                packet_size: 1024,
                layout: Layout::default(),
            };
            c.conn = ctx.connect()?;
            let got = ctx.upload(&mut c, &up)?;
            if got.last().code() != Some(rcode::FILE_RECEIVED) {
                return Ok(info(format!(
                    "828 on a new connection: {}",
                    got.last().describe()
                )));
            }
            c.conn = ctx.connect()?;
            let a = ctx.verdict(&mut c, code::CRC_OK, b"per.bin")?;
            Ok(match a.code() {
                Some(rcode::ACK) => {
                    pass("each request on its own connection: 1600, 1602, 1603, 1604")
                }
                _ => info(format!("900 on a new connection: {}", a.describe())),
            })
        },
    ));
    v.push(case(
        G,
        "the connection stays open after 1600",
        "§7, v7",
        |ctx| {
            let c = ctx.register("open")?;
            Ok(open_after(ctx, &c.conn, "1600", false))
        },
    ));
    v.push(
        case(G, "the connection stays open after 1602", "§7, v7", |ctx| {
            let mut c = ctx.register("open")?;
            let a = ctx.send_key(&mut c, 0)?;
            if a.code() != Some(rcode::AES_KEY) {
                return Err(CaseError::Setup(format!("826 answered {}", a.describe())));
            }
            Ok(open_after(ctx, &c.conn, "1602", true))
        })
        .checks(&[Check::OpenAfterKey]),
    );
    v.push(case(
        G,
        "the connection stays open after 1601",
        "§7",
        |ctx| {
            let c = ctx.ready("open")?;
            let (conn, a) = ctx.register_name(c.name.as_bytes())?;
            if a.code() != Some(rcode::REG_FAILED) {
                return Err(CaseError::Setup(format!(
                    "825 for a taken name answered {}",
                    a.describe()
                )));
            }
            Ok(open_after(ctx, &conn, "1601", false))
        },
    ));
    v.push(case(
        G,
        "the connection stays open after 1603",
        "§7, v7",
        |ctx| {
            let mut c = ctx.ready("open")?;
            ctx.upload(&mut c, &upload_of(3))?;
            Ok(open_after(ctx, &c.conn, "1603", false))
        },
    ));
    v.push(case(
        G,
        "the connection stays open after 1604",
        "§7, v7",
        |ctx| {
            let mut c = ctx.ready("open")?;
            ctx.upload(&mut c, &upload_of(4))?;
            ctx.verdict(&mut c, code::CRC_OK, b"conn.bin")?;
            Ok(open_after(ctx, &c.conn, "1604", false))
        },
    ));
    v.push(case(
        G,
        "the connection stays open after 1606",
        "§7",
        |ctx| {
            let mut conn = ctx.connect()?;
            let a = ctx.ask(
                &mut conn,
                &request(
                    [0x31; 16],
                    code::RECONNECT,
                    &name_field(b"unknown-one"),
                    ctx.env.order,
                ),
            );
            if a.code() != Some(rcode::RECONNECT_REFUSED) {
                return Ok(info(format!("827 for an unknown client: {}", a.describe())));
            }
            Ok(open_after(ctx, &conn, "1606", false))
        },
    ));
    v.push(case(
        G,
        "the connection stays open after 1607",
        "§7",
        |ctx| {
            let mut conn = ctx.connect()?;
            let a = ctx.ask(
                &mut conn,
                &request([0; 16], code::CRC_OK, &name_field(b"x"), ctx.env.order),
            );
            Ok(match a.code() {
                Some(rcode::GENERAL_ERROR) => open_after(ctx, &conn, "1607", false),
                _ => info(format!("900 from nobody: {}", a.describe())),
            })
        },
    ));
    for n in [2u32, 4, 8] {
        v.push(
            case(
                G,
                format!("{n} clients at once, each a whole exchange"),
                "§7",
                move |ctx| concurrent(ctx, n),
            )
            .checks(&[Check::Checksum]),
        );
    }
    v.push(
        case(
            G,
            "an upload cut by a dropped connection, then redone after 827",
            "§7",
            |ctx| {
                let mut c = ctx.ready("drop")?;
                let up = upload_of(5);
                let key = c
                    .key
                    .as_ref()
                    .ok_or_else(|| CaseError::Setup("no key".into()))?;
                let frames = crate::session::packets(c.id, key, &up);
                if let Some(first) = frames.first() {
                    ctx.send(&mut c.conn, first);
                }
                c.conn = ctx.connect()?;
                let r = request(
                    c.id,
                    code::RECONNECT,
                    &name_field(c.name.as_bytes()),
                    ctx.env.order,
                );
                let a = ctx.request(&mut c, &r)?;
                let Some(k) = a
                    .response()
                    .and_then(|r| r.encrypted_key())
                    .and_then(|k| ctx.env.keys[0].decrypt_aes_key(k).ok())
                else {
                    return Ok(fail(format!(
                        "827 after a dropped upload: {}",
                        a.describe()
                    )));
                };
                c.key = Some(k);
                let got = ctx.upload(&mut c, &up)?;
                Ok(crate::cases::upload::judge(&got, c.id, &up))
            },
        )
        .checks(&[Check::Checksum, Check::LastPacketOnly]),
    );
    v
}
