//! Group 2, registration (sections 3, 7): names at every length, the terminator,
//! taken and invalid names, the ids issued.

use super::{case, fail, info, pass, Judged, ServerCase};
use crate::frames::{code, header, name_field, rcode, request};
use crate::model::Group;
use crate::probe::Answer;

const G: Group = Group::Registration;

fn accepted(a: &Answer, what: &str) -> Judged {
    match a.response() {
        Some(r) if r.code == rcode::REGISTERED && r.id().is_some() => pass(format!("{what}: 1600")),
        _ => fail(format!("{what}: {}, not 1600", a.describe())),
    }
}

fn refused(a: &Answer, what: &str) -> Judged {
    match a.code() {
        Some(rcode::REG_FAILED) => pass(format!("{what}: 1601")),
        Some(rcode::REGISTERED) => fail(format!("{what}: registered (1600)")),
        _ if a.is_refusal() => info(format!(
            "{what}: refused with {} rather than 1601",
            a.describe()
        )),
        _ => fail(format!("{what}: {}", a.describe())),
    }
}

/// Every case of the group.
pub fn cases() -> Vec<ServerCase> {
    let mut v = Vec::new();
    for len in [1usize, 2, 12, 32, 64, 99, 100, 101, 128, 200, 253, 254] {
        v.push(case(
            G,
            format!("a name of {len} bytes is registered"),
            "§3",
            move |ctx| {
                let name = if len < 12 {
                    // Short names cannot carry the run's suffix: a random letter run.
                    let n = ctx.env.name_of_len(12);
                    n[12 - len..].to_string()
                } else {
                    ctx.env.name_of_len(len)
                };
                if len < 12 {
                    ctx.env.record_name(&name);
                }
                let (_, a) = ctx.register_name(name.as_bytes())?;
                if len < 12 && a.code() == Some(rcode::REG_FAILED) {
                    return Ok(info(format!(
                        "{len}-byte name {name:?} refused (taken by an earlier run?)"
                    )));
                }
                Ok(accepted(&a, &format!("{len} bytes")))
            },
        ));
    }
    v.push(case(
        G,
        "255 name bytes with no terminator are refused",
        "§2, §3",
        |ctx| {
            let name = ctx.env.name_of_len(255);
            let (_, a) = ctx.register_name(name.as_bytes())?;
            Ok(refused(&a, "no NUL in the field"))
        },
    ));
    v.push(case(
        G,
        "bytes after the terminator are padding and ignored",
        "§2",
        |ctx| {
            let name = ctx.env.fresh_name("pad");
            let mut f = name_field(name.as_bytes());
            for b in f.iter_mut().skip(name.len() + 1) {
                *b = b'Z';
            }
            let mut conn = ctx.connect()?;
            let a = ctx.ask(
                &mut conn,
                &request([0; 16], code::REGISTER, &f, ctx.env.order),
            );
            Ok(accepted(&a, "non-zero padding after the NUL"))
        },
    ));
    let invalid: [(&str, &[u8]); 8] = [
        ("an empty name", b""),
        ("a name of spaces only", b"     "),
        ("a name with a tab", b"tab\there-x"),
        ("a name with a newline", b"line\nbreak"),
        ("a name with a DEL byte", b"del\x7fbyte"),
        ("a name with a byte above 127", b"caf\xe9-name"),
        ("a name with a control byte", b"ctl\x01byte"),
        ("a name with an escape sequence", b"\x1b[31mred"),
    ];
    for (what, name) in invalid {
        v.push(case(
            G,
            format!("{what} is refused"),
            "§3, §7",
            move |ctx| {
                let (_, a) = ctx.register_name(name)?;
                Ok(refused(&a, what))
            },
        ));
    }
    v.push(case(
        G,
        "a taken name is refused (new connection)",
        "§7",
        |ctx| {
            let c = ctx.ready("taken")?;
            let (_, a) = ctx.register_name(c.name.as_bytes())?;
            Ok(refused(&a, "second 825 for the name"))
        },
    ));
    v.push(case(
        G,
        "a taken name is refused (same connection)",
        "§7",
        |ctx| {
            let mut c = ctx.register("taken")?;
            let req = request(
                [0; 16],
                code::REGISTER,
                &name_field(c.name.as_bytes()),
                ctx.env.order,
            );
            let a = ctx.request(&mut c, &req)?;
            Ok(refused(&a, "825 again on the same connection"))
        },
    ));
    v.push(case(
        G,
        "a name held by a registration without a key is refused",
        "§7",
        |ctx| {
            let c = ctx.register("held")?;
            let (_, a) = ctx.register_name(c.name.as_bytes())?;
            Ok(refused(&a, "name registered, no 826 yet"))
        },
    ));
    v.push(case(
        G,
        "names differing in case: what the server does",
        "§7",
        |ctx| {
            let c = ctx.ready("Case")?;
            let upper = c.name.to_uppercase();
            ctx.env.record_name(&upper);
            let (_, a) = ctx.register_name(upper.as_bytes())?;
            Ok(info(format!(
                "{upper:?} after {:?}: {}",
                c.name,
                a.describe()
            )))
        },
    ));
    v.push(case(
        G,
        "a non-zero client id in 825 is ignored",
        "§2, §3",
        |ctx| {
            let name = ctx.env.fresh_name("id");
            let mut conn = ctx.connect()?;
            let a = ctx.ask(
                &mut conn,
                &request(
                    [0xab; 16],
                    code::REGISTER,
                    &name_field(name.as_bytes()),
                    ctx.env.order,
                ),
            );
            Ok(match a.response() {
                Some(r) if r.code == rcode::REGISTERED && r.id() == Some([0xab; 16]) => {
                    fail("1600 echoed the id of the request instead of issuing one")
                }
                _ => accepted(&a, "id abab..ab in the header"),
            })
        },
    ));
    v.push(case(
        G,
        "ids issued are distinct and version 4 UUIDs",
        "§7",
        |ctx| {
            let a = ctx.register("uuid")?;
            let b = ctx.register("uuid")?;
            if a.id == b.id {
                return Ok(fail("two registrations got the same id"));
            }
            let v4 = |id: &[u8; 16]| id[6] >> 4 == 4 && (id[8] & 0xc0) == 0x80;
            Ok(if v4(&a.id) && v4(&b.id) {
                pass("distinct version 4 UUIDs")
            } else {
                info("distinct ids, not version 4 UUIDs")
            })
        },
    ));
    v.push(case(
        G,
        "825 with a short payload (254 bytes) is refused",
        "§3",
        |ctx| {
            let mut conn = ctx.connect()?;
            let mut r = header([0; 16], 3, code::REGISTER, 254, ctx.env.order);
            r.extend(vec![b'a'; 10]);
            r.extend(vec![0; 244]);
            let a = ctx.ask(&mut conn, &r);
            Ok(match a.code() {
                Some(rcode::REGISTERED) => fail("a 254-byte 825 was registered"),
                _ if a.is_refusal() => pass(format!("refused: {}", a.describe())),
                _ => info(format!("{} (waits for a 255th byte?)", a.describe())),
            })
        },
    ));
    v
}
