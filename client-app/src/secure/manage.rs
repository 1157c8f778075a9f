//! `client list`, `versions`, `rm` and `restore`: the client's own files, as the
//! server lists them. Names from the server are printed escaped, never used as paths.

use protocol_core::secure::frame::{Described, FileEntry, VersionEntry};
use protocol_core::secure::SecureClientEvent;

use super::{expect_done, hex, open_required, refused, unexpected, Broken, Session, Target};
use crate::exit::{Exit, Failure};
use crate::out::Out;
use crate::summary::json_string;

fn lost(b: Broken) -> Failure {
    match b {
        Broken::Failed(f) => f,
        Broken::Lost(why) => Failure::new(
            Exit::ConnectionLost,
            format!("the connection was lost: {why}"),
        ),
    }
}

/// Printable: control characters escaped (a hostile name cannot move the cursor).
fn shown(name: &str) -> String {
    name.chars().flat_map(char::escape_default).collect()
}

fn described_json(d: &Described) -> String {
    format!(
        "\"size\":{},\"verified\":{},\"sha256\":{},\"cksum\":{},\"updated\":{}",
        d.size,
        d.verified,
        d.sha256
            .map(|s| json_string(&hex(&s)))
            .unwrap_or_else(|| "null".into()),
        d.cksum
            .map(|c| c.to_string())
            .unwrap_or_else(|| "null".into()),
        json_string(&d.updated)
    )
}

fn short_hash(d: &Described) -> String {
    match (d.sha256, d.cksum) {
        (Some(s), _) => format!("sha256:{}", &hex(&s)[..16]),
        (None, Some(c)) => format!("cksum:{c}"),
        (None, None) => "-".into(),
    }
}

fn entries<T>(
    s: &mut Session,
    pick: impl Fn(SecureClientEvent) -> Result<T, SecureClientEvent>,
) -> Result<Vec<T>, Failure> {
    let mut all = Vec::new();
    loop {
        match s.next().map_err(lost)? {
            SecureClientEvent::ListEnd { .. } => return Ok(all),
            SecureClientEvent::Refused { message, .. } => return Err(refused(&message)),
            ev => match pick(ev) {
                Ok(x) => all.push(x),
                Err(other) => return Err(lost(unexpected(other))),
            },
        }
    }
}

/// `client list [--json]`.
pub fn list(t: &Target<'_>, out: &Out, json: bool) -> Result<(), Failure> {
    let mut s = open_required(t, out, "list")?;
    s.proto()
        .list()
        .map_err(|e| Failure::new(Exit::Internal, e.to_string()))?;
    let files: Vec<FileEntry> = entries(&mut s, |ev| match ev {
        SecureClientEvent::File(f) => Ok(f),
        other => Err(other),
    })?;
    s.close();
    if json {
        let items: Vec<String> = files
            .iter()
            .map(|f| {
                format!(
                    "{{\"name\":{},{},\"versions\":{}}}",
                    json_string(&f.name),
                    described_json(&f.content),
                    f.versions
                )
            })
            .collect();
        println!("[{}]", items.join(","));
        return Ok(());
    }
    if files.is_empty() {
        out.say("no files");
        return Ok(());
    }
    println!(
        "{:<32} {:>14} {:<10} {:<24} {:>8}  updated",
        "name", "bytes", "state", "hash", "versions"
    );
    for f in &files {
        println!(
            "{:<32} {:>14} {:<10} {:<24} {:>8}  {}",
            shown(&f.name),
            f.content.size,
            if f.content.verified {
                "verified"
            } else {
                "UNVERIFIED"
            },
            short_hash(&f.content),
            f.versions,
            shown(&f.content.updated)
        );
    }
    Ok(())
}

/// `client versions NAME [--json]`.
pub fn versions(t: &Target<'_>, out: &Out, name: &str, json: bool) -> Result<(), Failure> {
    let mut s = open_required(t, out, "versions")?;
    s.proto()
        .versions(name)
        .map_err(|e| Failure::new(Exit::Internal, e.to_string()))?;
    let versions: Vec<VersionEntry> = entries(&mut s, |ev| match ev {
        SecureClientEvent::Version(v) => Ok(v),
        other => Err(other),
    })?;
    s.close();
    if json {
        let items: Vec<String> = versions
            .iter()
            .map(|v| {
                format!(
                    "{{\"version\":{},{},\"superseded\":{}}}",
                    v.id,
                    described_json(&v.content),
                    json_string(&v.superseded)
                )
            })
            .collect();
        println!("[{}]", items.join(","));
        return Ok(());
    }
    if versions.is_empty() {
        out.say(&format!("no kept versions of {}", shown(name)));
        return Ok(());
    }
    println!(
        "{:>8} {:>14} {:<10} {:<24}  superseded",
        "version", "bytes", "state", "hash"
    );
    for v in &versions {
        println!(
            "{:>8} {:>14} {:<10} {:<24}  {}",
            v.id,
            v.content.size,
            if v.content.verified {
                "verified"
            } else {
                "UNVERIFIED"
            },
            short_hash(&v.content),
            shown(&v.superseded)
        );
    }
    Ok(())
}

/// `client rm NAME`.
pub fn remove(t: &Target<'_>, out: &Out, name: &str) -> Result<(), Failure> {
    let mut s = open_required(t, out, "rm")?;
    s.proto()
        .remove(name)
        .map_err(|e| Failure::new(Exit::Internal, e.to_string()))?;
    expect_done(&mut s).map_err(lost)?;
    s.close();
    out.say(&format!(
        "removed {} (kept as a version: `client versions {0}` lists it, `client restore` brings it back)",
        shown(name)
    ));
    Ok(())
}

/// `client restore NAME VERSION`.
pub fn restore(t: &Target<'_>, out: &Out, name: &str, version: u64) -> Result<(), Failure> {
    let mut s = open_required(t, out, "restore")?;
    s.proto()
        .restore(name, version)
        .map_err(|e| Failure::new(Exit::Internal, e.to_string()))?;
    expect_done(&mut s).map_err(lost)?;
    s.close();
    out.say(&format!(
        "restored version {version} of {} as its current content",
        shown(name)
    ));
    Ok(())
}
