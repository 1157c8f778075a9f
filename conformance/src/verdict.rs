//! The dialect verdict: from the outcomes, the variants of section 8 the
//! implementation shows, and the options of our client (for a server under test) or
//! our server (for a client under test) that talk to it, as section 9 lists them.

use std::collections::BTreeMap;

use crate::model::{CaseResult, Outcome};

pub use crate::model::{Finding, Verdict};

/// Variant names, from PROTOCOL.md section 8.
pub fn variant_name(n: u8) -> &'static str {
    match n {
        1 => "big-endian headers",
        2 => "packet number and total swapped",
        3 => "content size per packet",
        4 => "each packet encrypted on its own",
        5 => "the client's name in 900/901/902",
        6 => "1604 with an empty payload",
        7 => "a connection per request, a 1603 after every packet",
        8 => "zlib CRC-32 / 128-bit AES key",
        9 => "a request read with a single recv",
        10 => "the private key in me.info wrapped",
        11 => "the plaintext size in 1603",
        12 => "a fixed 1,024-byte content field",
        13 => "one request per recv",
        _ => "unknown variant",
    }
}

fn findings(results: &[CaseResult]) -> Vec<Finding> {
    let mut by: BTreeMap<u8, Vec<String>> = BTreeMap::new();
    for r in results {
        if let Outcome::Variant(n) = r.outcome {
            by.entry(n).or_default().push(r.meta.id.clone());
        }
    }
    by.into_iter()
        .map(|(variant, cases)| Finding {
            variant,
            name: variant_name(variant).into(),
            cases,
        })
        .collect()
}

/// The verdict for a server under test: which of our client's options talk to it.
pub fn server_verdict(results: &[CaseResult]) -> Verdict {
    let variants = findings(results);
    let has = |n: u8| variants.iter().any(|f| f.variant == n);
    let aes128 = results
        .iter()
        .any(|r| r.outcome == Outcome::Variant(8) && r.detail.contains("128-bit"));
    let crc32 = results
        .iter()
        .any(|r| r.outcome == Outcome::Variant(8) && r.detail.contains("CRC-32"));
    let mut advice = Vec::new();
    let mut args: Vec<&str> = Vec::new();
    // The presets first (section 9): each stands for a combination.
    if has(7) {
        advice.push(
            "`--dialect per-connection`: it closes after every answer and answers every packet (7)"
                .into(),
        );
        args.extend(["--dialect", "per-connection"]);
    } else if has(12) {
        advice.push(
            "`--dialect padded`: it wants every 828 with a 1,024-byte content field (12)".into(),
        );
        args.extend(["--dialect", "padded"]);
    } else if has(9) || has(13) {
        advice.push("`--dialect one-recv`: it reads a request with one recv; small packets, a write per request (9, 13)".into());
        args.extend(["--dialect", "one-recv"]);
    } else if has(2)
        && (has(4)
            || results
                .iter()
                .any(|r| r.outcome == Outcome::Variant(2) && r.detail.contains("(2, 4)")))
    {
        advice.push("`--dialect total-first-per-packet`: total packets first, each packet encrypted on its own (2, 4)".into());
        args.extend(["--dialect", "total-first-per-packet"]);
    } else {
        if has(2) {
            advice.push("`--total-first` (2)".into());
            args.push("--total-first");
        }
        if has(4) {
            advice.push("`--per-packet-encryption` (4)".into());
            args.push("--per-packet-encryption");
        }
    }
    if has(1) {
        advice
            .push("`--big-endian`: it answers big-endian; write requests that way too (1)".into());
        args.push("--big-endian");
    }
    if has(3) {
        advice.push("`--per-packet-size` (3)".into());
        args.push("--per-packet-size");
    }
    if has(5) {
        advice.push("`--crc-client-name` (5)".into());
        args.push("--crc-client-name");
    }
    if crc32 {
        advice.push("`--checksum crc32`: its 1603 carries zlib CRC-32 (8)".into());
        args.extend(["--checksum", "crc32"]);
    }
    if aes128 {
        advice.push("128-bit AES keys (8): our client accepts them, nothing to set".into());
    }
    if has(6) {
        advice.push("1604 with an empty payload (6): our client accepts it, nothing to set".into());
    }
    if has(11) {
        advice
            .push("the plaintext size in 1603 (11): our client accepts it, nothing to set".into());
    }
    if args.is_empty() {
        advice.push(
            "`--dialect spec` (the default `auto` starts with it): no variant needs an option"
                .into(),
        );
        args.extend(["--dialect", "spec"]);
    }
    Verdict {
        command: format!("client {}", args.join(" ")),
        variants,
        advice,
    }
}

/// The verdict for a client under test: which of our server's options serve it.
pub fn client_verdict(results: &[CaseResult]) -> Verdict {
    let variants = findings(results);
    let mut advice = Vec::new();
    let mut args: Vec<&str> = Vec::new();
    for f in &variants {
        let line = match f.variant {
            1 => {
                args.extend(["--response-order", "mirror"]);
                "big-endian requests (1): our server detects them; `--response-order mirror` answers in the same order"
            }
            2 | 3 | 4 | 12 => "our server detects this layout per upload: nothing to set",
            5 => "our server accepts any name in 900/901/902: nothing to set",
            7 => "a connection per request (7): our server detects it and answers every packet (`--ack-packets every` forces it)",
            8 => {
                args.extend(["--checksum", "crc32"]);
                "zlib CRC-32 (8): `--checksum crc32` (and `--aes-bits 128` if it wants 128-bit keys)"
            }
            9 | 13 => "our server reassembles any segmentation: nothing to set",
            _ => "no option of our server concerns it",
        };
        advice.push(format!("variant {}: {line}", f.variant));
    }
    if advice.is_empty() {
        advice.push("the defaults: no variant needs an option".into());
    }
    Verdict {
        command: format!("server {}", args.join(" ")).trim_end().to_string(),
        variants,
        advice,
    }
}
