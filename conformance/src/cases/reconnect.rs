//! Group 4, reconnect (sections 3, 7): 827 for known, unknown and wrong clients.

use super::{case, fail, info, pass, Judged, ServerCase};
use crate::frames::{code, name_field, rcode, request};
use crate::model::{Check, Group};
use crate::probe::{Answer, CaseError, Ctx};
use crate::session::Client;

const G: Group = Group::Reconnect;

fn reconnect(
    ctx: &mut Ctx<'_>,
    c: &mut Client,
    id: [u8; 16],
    name: &[u8],
) -> Result<Answer, CaseError> {
    ctx.request(
        c,
        &request(id, code::RECONNECT, &name_field(name), ctx.env.order),
    )
}

fn refused_1606(a: &Answer, id: [u8; 16], what: &str) -> Judged {
    match a.response() {
        Some(r) if r.code == rcode::RECONNECT_REFUSED => {
            if r.payload.is_empty() || r.id() == Some(id) {
                pass(format!("{what}: 1606"))
            } else {
                fail(format!("{what}: 1606 with another id"))
            }
        }
        Some(r) if r.code == rcode::RECONNECTED => fail(format!("{what}: reconnected (1605)")),
        _ if a.is_refusal() => info(format!("{what}: {} rather than 1606", a.describe())),
        _ => fail(format!("{what}: {}", a.describe())),
    }
}

/// Every case of the group.
pub fn cases() -> Vec<ServerCase> {
    let mut v = Vec::new();
    v.push(case(
        G,
        "827 from a known client gets 1605 with a fresh key",
        "§7",
        |ctx| {
            let mut c = ctx.ready("rec")?;
            let (id, name) = (c.id, c.name.clone());
            let a = reconnect(ctx, &mut c, id, name.as_bytes())?;
            let k = a
                .response()
                .and_then(|r| r.encrypted_key())
                .map(<[u8]>::to_vec);
            Ok(match (a.code(), k) {
                (Some(rcode::RECONNECTED), Some(k)) => match ctx.env.keys[0].decrypt_aes_key(&k) {
                    Ok(key)
                        if c.key
                            .as_ref()
                            .is_some_and(|old| old.as_bytes() == key.as_bytes()) =>
                    {
                        fail("1605 repeats the 1602 key")
                    }
                    Ok(_) => pass("1605, a new key that decrypts"),
                    Err(_) => fail("the 1605 key does not decrypt"),
                },
                _ => fail(format!("827 answered {}", a.describe())),
            })
        },
    ));
    v.push(case(G, "827 on a new connection gets 1605", "§7", |ctx| {
        let mut c = ctx.ready("rec")?;
        c.conn = ctx.connect()?;
        let (id, name) = (c.id, c.name.clone());
        let a = reconnect(ctx, &mut c, id, name.as_bytes())?;
        Ok(match a.code() {
            Some(rcode::RECONNECTED) => pass("1605"),
            _ => fail(format!("827 answered {}", a.describe())),
        })
    }));
    v.push(case(G, "1605 echoes the client id", "§4", |ctx| {
        let mut c = ctx.ready("rec")?;
        let (id, name) = (c.id, c.name.clone());
        let a = reconnect(ctx, &mut c, id, name.as_bytes())?;
        Ok(match a.response() {
            Some(r) if r.code == rcode::RECONNECTED && r.id() == Some(id) => pass("the id"),
            Some(r) if r.code == rcode::RECONNECTED => fail("another id"),
            _ => fail(format!("827 answered {}", a.describe())),
        })
    }));
    v.push(case(G, "827 with an unknown id gets 1606", "§7", |ctx| {
        let mut c = ctx.ready("rec")?;
        let name = c.name.clone();
        let a = reconnect(ctx, &mut c, [0x99; 16], name.as_bytes())?;
        Ok(refused_1606(&a, [0x99; 16], "unknown id, known name"))
    }));
    v.push(case(G, "827 with the zero id gets 1606", "§7", |ctx| {
        let mut c = ctx.ready("rec")?;
        let name = c.name.clone();
        let a = reconnect(ctx, &mut c, [0; 16], name.as_bytes())?;
        Ok(refused_1606(&a, [0; 16], "zero id"))
    }));
    v.push(case(
        G,
        "827 with a known id and a wrong name gets 1606",
        "§7",
        |ctx| {
            let mut c = ctx.ready("rec")?;
            let id = c.id;
            let a = reconnect(ctx, &mut c, id, b"not-the-name")?;
            Ok(refused_1606(&a, id, "wrong name"))
        },
    ));
    v.push(case(
        G,
        "827 with the name in other case gets 1606",
        "§7",
        |ctx| {
            let mut c = ctx.ready("rec")?;
            let (id, name) = (c.id, c.name.to_uppercase());
            let a = reconnect(ctx, &mut c, id, name.as_bytes())?;
            Ok(match a.code() {
                Some(rcode::RECONNECTED) => info("names compared without case"),
                _ => refused_1606(&a, id, "upper-case name"),
            })
        },
    ));
    v.push(case(
        G,
        "827 from a client that never sent a key gets 1606",
        "§7",
        |ctx| {
            let mut c = ctx.register("nokey")?;
            let (id, name) = (c.id, c.name.clone());
            let a = reconnect(ctx, &mut c, id, name.as_bytes())?;
            Ok(refused_1606(&a, id, "no key on file"))
        },
    ));
    v.push(case(
        G,
        "a refused reconnect deletes nothing",
        "§7",
        |ctx| {
            let mut c = ctx.ready("rec")?;
            let (id, name) = (c.id, c.name.clone());
            reconnect(ctx, &mut c, id, b"wrong-name-first")?;
            let a = reconnect(ctx, &mut c, id, name.as_bytes())?;
            Ok(match a.code() {
                Some(rcode::RECONNECTED) => pass("1606, then 1605 for the right name"),
                _ => fail(format!(
                    "after a refused 827 the client got {}",
                    a.describe()
                )),
            })
        },
    ));
    v.push(case(
        G,
        "two reconnects give two different keys",
        "§5",
        |ctx| {
            let mut c = ctx.ready("rec")?;
            let (id, name) = (c.id, c.name.clone());
            let a = reconnect(ctx, &mut c, id, name.as_bytes())?;
            let b = reconnect(ctx, &mut c, id, name.as_bytes())?;
            let ka = a
                .response()
                .and_then(|r| r.encrypted_key())
                .and_then(|k| ctx.env.keys[0].decrypt_aes_key(k).ok());
            let kb = b
                .response()
                .and_then(|r| r.encrypted_key())
                .and_then(|k| ctx.env.keys[0].decrypt_aes_key(k).ok());
            Ok(match (ka, kb) {
                (Some(x), Some(y)) if x.as_bytes() == y.as_bytes() => fail("the same key twice"),
                (Some(_), Some(_)) => pass("two fresh keys"),
                _ => fail(format!("827 twice: {}, {}", a.describe(), b.describe())),
            })
        },
    ));
    v.push(
        case(G, "the 1605 key decrypts the next upload", "§7", |ctx| {
            let mut c = ctx.ready("rec")?;
            let (id, name) = (c.id, c.name.clone());
            let a = reconnect(ctx, &mut c, id, name.as_bytes())?;
            let Some(key) = a
                .response()
                .and_then(|r| r.encrypted_key())
                .and_then(|k| ctx.env.keys[0].decrypt_aes_key(k).ok())
            else {
                return Ok(fail(format!("827 answered {}", a.describe())));
            };
            c.key = Some(key);
            let up = crate::session::Upload {
                data: crate::session::data(500, 4),
                file_name: b"rekeyed.bin".to_vec(),
                packet_size: 1024,
                layout: Default::default(),
            };
            let got = ctx.upload(&mut c, &up)?;
            Ok(crate::cases::upload::judge(&got, c.id, &up))
        })
        .checks(&[Check::Checksum]),
    );
    v
}
