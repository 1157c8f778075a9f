//! Group 3, public keys and the key exchange (sections 5, 7; variant 8): 826 and
//! the 1602, OAEP, key sizes, refusals.

use super::{case, fail, info, pass, variant, Judged, ServerCase};
use crate::frames::{code, name_field, rcode, request};
use crate::model::Group;
use crate::probe::{Answer, Ctx};

const G: Group = Group::Keys;

fn refused(a: &Answer, what: &str) -> Judged {
    match a.code() {
        Some(rcode::AES_KEY) => fail(format!("{what}: answered 1602")),
        Some(rcode::GENERAL_ERROR) => pass(format!("{what}: 1607")),
        _ if a.is_refusal() => pass(format!("{what}: refused ({})", a.describe())),
        _ => fail(format!("{what}: {}", a.describe())),
    }
}

/// 826 for a fresh registration with the key field replaced by `field`.
fn bad_key(
    ctx: &mut Ctx<'_>,
    field: Vec<u8>,
    what: &str,
) -> Result<Judged, crate::probe::CaseError> {
    let mut c = ctx.register("badkey")?;
    let mut p = name_field(c.name.as_bytes());
    p.extend(field);
    let req = request(c.id, code::PUBLIC_KEY, &p, ctx.env.order);
    let a = ctx.request(&mut c, &req)?;
    Ok(refused(&a, what))
}

/// Every case of the group.
pub fn cases() -> Vec<ServerCase> {
    let mut v = Vec::new();
    v.push(case(
        G,
        "826 gets 1602 echoing the client id",
        "§3, §4",
        |ctx| {
            let mut c = ctx.register("key")?;
            let a = ctx.send_key(&mut c, 0)?;
            Ok(match a.response() {
                Some(r) if r.code == rcode::AES_KEY && r.id() == Some(c.id) => {
                    pass("1602 with the id")
                }
                Some(r) if r.code == rcode::AES_KEY => fail("1602 with another id"),
                _ => fail(format!("826 answered {}", a.describe())),
            })
        },
    ));
    v.push(case(
        G,
        "the 1602 key is RSA-OAEP (SHA-1) to our public key",
        "§5",
        |ctx| {
            let mut c = ctx.register("oaep")?;
            let a = ctx.send_key(&mut c, 0)?;
            Ok(match (a.code(), &c.key) {
                (Some(rcode::AES_KEY), Some(_)) => pass("decrypts with OAEP, SHA-1, MGF1-SHA-1"),
                (Some(rcode::AES_KEY), None) => {
                    fail("the encrypted key does not decrypt with OAEP-SHA-1")
                }
                _ => fail(format!("826 answered {}", a.describe())),
            })
        },
    ));
    v.push(case(G, "the AES key is 256 bits", "§5, v8", |ctx| {
        let c = ctx.ready("bits")?;
        let n = c.key.as_ref().map(|k| k.as_bytes().len()).unwrap_or(0);
        Ok(match n {
            32 => pass("32 bytes"),
            16 => variant(8, "a 128-bit AES key"),
            n => fail(format!("a {n}-byte key")),
        })
    }));
    v.push(case(
        G,
        "the encrypted key is 128 bytes (RSA-1024)",
        "§4",
        |ctx| {
            let mut c = ctx.register("len")?;
            let a = ctx.send_key(&mut c, 0)?;
            let n = a
                .response()
                .and_then(|r| r.encrypted_key())
                .map(<[u8]>::len);
            Ok(match n {
                Some(128) => pass("128 bytes"),
                Some(n) => fail(format!("{n} bytes")),
                None => fail(format!("826 answered {}", a.describe())),
            })
        },
    ));
    v.push(case(G, "two clients get different AES keys", "§5", |ctx| {
        let a = ctx.ready("fresh")?;
        let b = ctx.ready("fresh")?;
        let same = match (&a.key, &b.key) {
            (Some(x), Some(y)) => x.as_bytes() == y.as_bytes(),
            _ => true,
        };
        Ok(if same {
            fail("the same AES key twice")
        } else {
            pass("fresh keys")
        })
    }));
    v.push(case(
        G,
        "826 repeating the same key (a retry) gets 1602",
        "§7",
        |ctx| {
            let mut c = ctx.ready("again")?;
            let a = ctx.send_key(&mut c, 0)?;
            Ok(match a.code() {
                Some(rcode::AES_KEY) => pass("1602 again"),
                _ => info(format!("a repeated 826: {}", a.describe())),
            })
        },
    ));
    v.push(case(
        G,
        "826 with a different key for a client that has one",
        "§7",
        |ctx| {
            let mut c = ctx.ready("other")?;
            let a = ctx.send_key(&mut c, 1)?;
            Ok(match a.code() {
                Some(rcode::GENERAL_ERROR) => pass("1607: the key stays"),
                _ => info(format!("replacing the key: {}", a.describe())),
            })
        },
    ));
    v.push(case(
        G,
        "826 for an unknown client id is refused",
        "§7",
        |ctx| {
            let mut conn = ctx.connect()?;
            let p = ctx.key_payload(b"nobody-known", 0)?;
            let a = ctx.ask(
                &mut conn,
                &request([0x42; 16], code::PUBLIC_KEY, &p, ctx.env.order),
            );
            Ok(refused(&a, "unknown id"))
        },
    ));
    v.push(case(
        G,
        "826 with the zero id (before any 825) is refused",
        "§7",
        |ctx| {
            let mut conn = ctx.connect()?;
            let p = ctx.key_payload(b"nobody-zero", 0)?;
            let a = ctx.ask(
                &mut conn,
                &request([0; 16], code::PUBLIC_KEY, &p, ctx.env.order),
            );
            Ok(refused(&a, "zero id"))
        },
    ));
    v.push(case(
        G,
        "826 under a name other than the registered one",
        "§7",
        |ctx| {
            let mut c = ctx.register("name")?;
            let p = ctx.key_payload(b"someone-else-entirely", 0)?;
            let req = request(c.id, code::PUBLIC_KEY, &p, ctx.env.order);
            let a = ctx.request(&mut c, &req)?;
            Ok(match a.code() {
                Some(rcode::AES_KEY) => info("1602: the name is not checked"),
                _ => refused(&a, "wrong name"),
            })
        },
    ));
    v.push(case(G, "a key field of zeros is refused", "§5", |ctx| {
        bad_key(ctx, vec![0; 160], "160 zero bytes")
    }));
    v.push(case(G, "a key field of junk is refused", "§5", |ctx| {
        bad_key(ctx, crate::session::data(160, 9), "160 junk bytes")
    }));
    v.push(case(G, "a truncated DER key is refused", "§5", |ctx| {
        let mut f = ctx.key_payload(b"x", 0)?.split_off(255);
        for b in f.iter_mut().skip(100) {
            *b = 0;
        }
        bad_key(ctx, f, "DER cut at 100 bytes")
    }));
    v.push(case(
        G,
        "a DER SEQUENCE that is no RSA key is refused",
        "§5",
        |ctx| {
            let mut f = vec![0x30, 0x03, 0x02, 0x01, 0x00];
            f.resize(160, 0);
            bad_key(ctx, f, "SEQUENCE { INTEGER 0 }")
        },
    ));
    v.push(case(
        G,
        "a key whose DER claims more than the field is refused",
        "§5",
        |ctx| {
            let mut f = ctx.key_payload(b"x", 0)?.split_off(255);
            // 30 81 9d: a one-byte long-form length; 0xff claims 258 bytes in all.
            f[1] = 0x81;
            f[2] = 0xff;
            bad_key(ctx, f, "DER length 258 in a 160-byte field")
        },
    ));
    v
}
