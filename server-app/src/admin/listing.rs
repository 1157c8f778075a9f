//! `list-clients` and `list-files`: tables for people, `--json` for programs.

use std::collections::HashMap;
use std::io::Write;

use protocol_core::ClientId;

use super::format::{age, bytes, json_opt, json_str, short};
use super::{open_read, resolve_client, AdminError, Stores};
use crate::storage::{ClientRow, FileRecord};

/// What the "KEY AGE" column means, printed under the table.
pub const KEY_AGE_NOTE: &str = "KEY AGE: time since the client's AES session key was issued \
(a new one at each reconnect); \"no key\": registered, its public key not received yet; \
\"revoked\": dropped after a decryption failure, until the client reconnects.";

/// Which protocol the client may use: `legacy` (never signed in securely),
/// `secure` (legacy requests refused), `both` (secure, legacy kept open on request).
fn mode(c: &ClientRow) -> &'static str {
    match (c.secure.went_secure, c.secure.keep_legacy) {
        (false, _) => "legacy",
        (true, false) => "secure",
        (true, true) => "both",
    }
}

/// What the "MODE" column means, printed under the table.
pub const MODE_NOTE: &str = "MODE: legacy: has not signed in securely yet; secure: signed in \
inside TLS, its legacy requests refused; both: secure, legacy kept open (client --keep-legacy).";

fn key_age(c: &ClientRow) -> String {
    match (c.has_key, c.aes_key_age) {
        (false, _) => "no key".into(),
        (true, None) => "revoked".into(),
        (true, Some(secs)) => age(secs),
    }
}

/// Lists every client: id prefix, name, last seen, key age, files and bytes, totals.
pub fn list_clients(at: &Stores, json: bool, out: &mut dyn Write) -> Result<(), AdminError> {
    let meta = open_read(at)?;
    let clients = meta.clients()?;
    let files: u64 = clients.iter().map(|c| c.files).sum();
    let total: u64 = clients.iter().map(|c| c.bytes).sum();
    if json {
        let rows: Vec<String> = clients
            .iter()
            .map(|c| {
                format!(
                    "{{\"id\":{},\"name\":{},\"last_seen\":{},\"public_key\":{},\
                     \"aes_key_age_secs\":{},\"files\":{},\"bytes\":{},\"dialect\":{},\
                     \"mode\":{}}}",
                    json_str(&c.id.to_hex()),
                    json_str(&c.name),
                    json_str(&c.last_seen),
                    c.has_key,
                    c.aes_key_age
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "null".into()),
                    c.files,
                    c.bytes,
                    json_opt(c.dialect.as_deref()),
                    json_str(mode(c))
                )
            })
            .collect();
        writeln!(
            out,
            "{{\"clients\":[{}],\"total\":{{\"clients\":{},\"files\":{files},\"bytes\":{total}}}}}",
            rows.join(","),
            clients.len()
        )?;
        return Ok(());
    }
    let name_w = clients
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    writeln!(
        out,
        "{:<8}  {:<name_w$}  {:<19}  {:>7}  {:>5}  {:>12}  {:<6}  DIALECT (LAST SEEN)",
        "ID", "NAME", "LAST SEEN (UTC)", "KEY AGE", "FILES", "BYTES", "MODE"
    )?;
    for c in &clients {
        writeln!(
            out,
            "{:<8}  {:<name_w$}  {:<19}  {:>7}  {:>5}  {:>12}  {:<6}  {}",
            short(&c.id),
            c.name,
            c.last_seen,
            key_age(c),
            c.files,
            c.bytes,
            mode(c),
            c.dialect.as_deref().unwrap_or("-")
        )?;
    }
    writeln!(
        out,
        "{} clients, {files} files, {} ({total} bytes)",
        clients.len(),
        bytes(total)
    )?;
    writeln!(out, "{KEY_AGE_NOTE}")?;
    writeln!(out, "{MODE_NOTE}")?;
    Ok(())
}

/// Lists stored files (all, or one client's): client, name, size, verified, checksum,
/// upload time, with counts and totals.
pub fn list_files(
    at: &Stores,
    client: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let meta = open_read(at)?;
    let filter = match client {
        Some(what) => Some(resolve_client(meta.as_ref(), what)?.id),
        None => None,
    };
    let names: HashMap<ClientId, String> = meta
        .clients()?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let files = meta.files(filter.as_ref())?;
    let owner = |f: &FileRecord| names.get(&f.client).cloned().unwrap_or_default();
    let verified = files.iter().filter(|f| f.verified).count();
    let total: u64 = files.iter().map(|f| f.size).sum();
    if json {
        let rows: Vec<String> = files
            .iter()
            .map(|f| {
                format!(
                    "{{\"client\":{},\"client_name\":{},\"file\":{},\"size\":{},\
                     \"verified\":{},\"checksum\":{},\"uploaded_at\":{},\"object\":{}}}",
                    json_str(&f.client.to_hex()),
                    json_str(&owner(f)),
                    json_str(&f.file_name),
                    f.size,
                    f.verified,
                    f.checksum
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "null".into()),
                    json_opt(Some(f.updated.as_str()).filter(|u| !u.is_empty())),
                    json_str(&f.object)
                )
            })
            .collect();
        writeln!(
            out,
            "{{\"files\":[{}],\"total\":{{\"files\":{},\"verified\":{verified},\
             \"unverified\":{},\"bytes\":{total}}}}}",
            rows.join(","),
            files.len(),
            files.len() - verified
        )?;
        return Ok(());
    }
    let owners: Vec<String> = files
        .iter()
        .map(|f| format!("{} {}", short(&f.client), owner(f)))
        .collect();
    let owner_w = owners.iter().map(String::len).max().unwrap_or(0).max(6);
    let name_w = files
        .iter()
        .map(|f| f.file_name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    writeln!(
        out,
        "{:<owner_w$}  {:<name_w$}  {:>12}  {:<8}  {:>10}  {:<19}",
        "CLIENT", "FILE", "SIZE", "VERIFIED", "CHECKSUM", "UPLOADED (UTC)"
    )?;
    for (f, who) in files.iter().zip(&owners) {
        let sum = f
            .checksum
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into());
        let updated = if f.updated.is_empty() {
            "-"
        } else {
            &f.updated
        };
        writeln!(
            out,
            "{who:<owner_w$}  {:<name_w$}  {:>12}  {:<8}  {sum:>10}  {updated:<19}",
            f.file_name,
            f.size,
            if f.verified { "yes" } else { "no" },
        )?;
    }
    writeln!(
        out,
        "{} files ({verified} verified, {} unverified), {} ({total} bytes)",
        files.len(),
        files.len() - verified,
        bytes(total)
    )?;
    Ok(())
}
