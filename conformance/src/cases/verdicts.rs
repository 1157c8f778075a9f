//! Group 6, verdicts (sections 3, 7; variants 5, 6): 900, 901, 902 and their answers,
//! three resends, the names in them.

use super::{case, fail, info, pass, variant, Judged, ServerCase};
use crate::frames::{code, rcode};
use crate::model::Group;
use crate::probe::{Answer, CaseError, Ctx};
use crate::session::{data, Client, Layout, Upload};

const G: Group = Group::Verdicts;

fn small(seed: u32) -> Upload {
    Upload {
        data: data(700, seed),
        file_name: b"verdict.bin".to_vec(),
        packet_size: 1024,
        layout: Layout::default(),
    }
}

/// A client that has uploaded a one-packet file and got its 1603.
fn uploaded(ctx: &mut Ctx<'_>, tag: &str, seed: u32) -> Result<Client, CaseError> {
    let mut c = ctx.ready(tag)?;
    let got = ctx.upload(&mut c, &small(seed))?;
    if got.last().code() != Some(rcode::FILE_RECEIVED) {
        return Err(CaseError::Setup(format!(
            "the upload got {}",
            got.last().describe()
        )));
    }
    Ok(c)
}

fn ack(a: &Answer, id: [u8; 16], what: &str) -> Judged {
    match a.response() {
        Some(r) if r.code == rcode::ACK && r.payload.is_empty() => {
            variant(6, format!("{what}: 1604 with an empty payload"))
        }
        Some(r) if r.code == rcode::ACK && r.id() == Some(id) => {
            pass(format!("{what}: 1604 with the id"))
        }
        Some(r) if r.code == rcode::ACK => fail(format!("{what}: 1604 with another id")),
        _ => fail(format!("{what}: {}", a.describe())),
    }
}

/// Every case of the group.
pub fn cases() -> Vec<ServerCase> {
    let mut v = Vec::new();
    v.push(case(
        G,
        "900 after the 1603 gets 1604",
        "§3, §7, v5, v6",
        |ctx| {
            let mut c = uploaded(ctx, "ok", 1)?;
            let a = ctx.verdict_exactly(&mut c, code::CRC_OK, b"verdict.bin")?;
            if a.code() != Some(rcode::ACK) {
                // Servers of variant 5 may want the client's name there.
                let mut d = uploaded(ctx, "ok", 1)?;
                let name = d.name.clone();
                let b = ctx.verdict_exactly(&mut d, code::CRC_OK, name.as_bytes())?;
                if b.code() == Some(rcode::ACK) {
                    return Ok(variant(
                        5,
                        format!(
                            "900 with the file name: {}; with the client name: 1604",
                            a.describe()
                        ),
                    ));
                }
            }
            Ok(ack(&a, c.id, "900"))
        },
    ));
    v.push(case(G, "902 after the 1603 gets 1604", "§3, §7", |ctx| {
        let mut c = uploaded(ctx, "abort", 2)?;
        let a = ctx.verdict(&mut c, code::CRC_ABORT, b"verdict.bin")?;
        Ok(ack(&a, c.id, "902"))
    }));
    v.push(case(G, "901 gets no answer", "§3, §7", |ctx| {
        let mut c = uploaded(ctx, "retry", 3)?;
        let a = ctx.verdict(&mut c, code::CRC_RETRY, b"verdict.bin")?;
        Ok(match a {
            Answer::Timeout => pass("silence"),
            Answer::Response(r) => fail(format!("901 answered {}", r.code)),
            other => fail(format!("901: {}", other.describe())),
        })
    }));
    v.push(case(
        G,
        "901 then the file again gets a second 1603, then 900 gets 1604",
        "§7",
        |ctx| {
            let mut c = uploaded(ctx, "retry", 4)?;
            ctx.verdict(&mut c, code::CRC_RETRY, b"verdict.bin")?;
            let got = ctx.upload(&mut c, &small(4))?;
            if got.last().code() != Some(rcode::FILE_RECEIVED) {
                return Ok(fail(format!("the resend got {}", got.last().describe())));
            }
            let a = ctx.verdict(&mut c, code::CRC_OK, b"verdict.bin")?;
            Ok(ack(&a, c.id, "900 after one resend"))
        },
    ));
    v.push(case(
        G,
        "three 901s and resends, then 902 gets 1604",
        "§7",
        |ctx| {
            let mut c = uploaded(ctx, "three", 5)?;
            for i in 1..=3 {
                ctx.verdict(&mut c, code::CRC_RETRY, b"verdict.bin")?;
                let got = ctx.upload(&mut c, &small(5))?;
                if got.last().code() != Some(rcode::FILE_RECEIVED) {
                    return Ok(fail(format!("resend {i} got {}", got.last().describe())));
                }
            }
            let a = ctx.verdict(&mut c, code::CRC_ABORT, b"verdict.bin")?;
            Ok(ack(&a, c.id, "902 after three resends"))
        },
    ));
    v.push(case(
        G,
        "a fifth upload under one key: what the server does",
        "§7",
        |ctx| {
            let mut c = uploaded(ctx, "fifth", 6)?;
            for _ in 0..3 {
                ctx.verdict(&mut c, code::CRC_RETRY, b"verdict.bin")?;
                ctx.upload(&mut c, &small(6))?;
            }
            ctx.verdict(&mut c, code::CRC_RETRY, b"verdict.bin")?;
            let got = ctx.upload(&mut c, &small(6))?;
            Ok(match got.last().code() {
                Some(rcode::GENERAL_ERROR) => pass("1607: at most four checksums per key"),
                other => info(format!(
                    "the fifth upload: {}",
                    other.map_or(got.last().describe(), |c| c.to_string())
                )),
            })
        },
    ));
    v.push(case(
        G,
        "900 naming the client instead of the file (variant 5) gets 1604",
        "§7, v5",
        |ctx| {
            let mut c = uploaded(ctx, "v5", 7)?;
            let name = c.name.clone();
            let a = ctx.verdict(&mut c, code::CRC_OK, name.as_bytes())?;
            Ok(match a.code() {
                Some(rcode::ACK) => pass("names in 900 are informational"),
                _ => info(format!("900 with the client name: {}", a.describe())),
            })
        },
    ));
    v.push(case(
        G,
        "902 naming the client instead of the file gets 1604",
        "§7, v5",
        |ctx| {
            let mut c = uploaded(ctx, "v5", 8)?;
            let name = c.name.clone();
            let a = ctx.verdict(&mut c, code::CRC_ABORT, name.as_bytes())?;
            Ok(match a.code() {
                Some(rcode::ACK) => pass("names in 902 are informational"),
                _ => info(format!("902 with the client name: {}", a.describe())),
            })
        },
    ));
    v.push(case(G, "900 with an empty name field", "§7", |ctx| {
        let mut c = uploaded(ctx, "empty", 9)?;
        let a = ctx.verdict(&mut c, code::CRC_OK, b"")?;
        Ok(info(format!("900 with no name: {}", a.describe())))
    }));
    v.push(case(G, "900 with no upload is refused", "§7", |ctx| {
        let mut c = ctx.ready("none")?;
        let a = ctx.verdict(&mut c, code::CRC_OK, b"nothing.bin")?;
        Ok(match a.code() {
            Some(rcode::ACK) => info("1604 with nothing uploaded"),
            _ if a.is_refusal() => pass(format!("refused: {}", a.describe())),
            _ => fail(format!("900 with no upload: {}", a.describe())),
        })
    }));
    v.push(case(
        G,
        "900 on another connection than the 1603's",
        "§7",
        |ctx| {
            let mut c = uploaded(ctx, "elsewhere", 10)?;
            if ctx.env.per_connection {
                return Ok(info(
                    "the server closes after every answer: every verdict is on another connection",
                ));
            }
            c.conn = ctx.connect()?;
            let a = ctx.verdict(&mut c, code::CRC_OK, b"verdict.bin")?;
            Ok(match a.code() {
                Some(rcode::GENERAL_ERROR) => {
                    pass("1607: a verdict belongs to the 1603's connection")
                }
                _ => info(format!("900 elsewhere: {}", a.describe())),
            })
        },
    ));
    v.push(case(G, "900 twice: the second", "§7", |ctx| {
        let mut c = uploaded(ctx, "twice", 11)?;
        ctx.verdict(&mut c, code::CRC_OK, b"verdict.bin")?;
        let a = ctx.verdict(&mut c, code::CRC_OK, b"verdict.bin")?;
        Ok(info(format!("a second 900: {}", a.describe())))
    }));
    v.push(case(
        G,
        "900 from an unknown client id is refused",
        "§7",
        |ctx| {
            let mut c = uploaded(ctx, "stranger", 12)?;
            c.id = [0x3c; 16];
            let a = ctx.verdict(&mut c, code::CRC_OK, b"verdict.bin")?;
            Ok(match a.code() {
                Some(rcode::ACK) => fail("1604 for a client id that never uploaded"),
                _ => pass(format!("refused: {}", a.describe())),
            })
        },
    ));
    v
}
