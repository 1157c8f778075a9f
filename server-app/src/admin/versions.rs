//! `list-versions` and `restore`: the earlier verified contents of a file, kept when a
//! commit replaced them (docs/STORAGE.md, "Versions"), and making one current again.

use std::io::Write;

use super::format::{bytes, json_opt, json_str, short};
use super::{confirm, open_read, open_write, resolve_client, AdminError, Stores};
use crate::storage::{ClientRow, FileRecord, Metadata, Version};

fn no_such_file(owner: &ClientRow, file: &str) -> AdminError {
    AdminError::NotFound(format!(
        "client {} ({}) has no file named {file:?} and no version of one (list-files --client {} \
         shows its files)",
        short(&owner.id),
        owner.name,
        short(&owner.id)
    ))
}

fn checksum(c: Option<u32>) -> String {
    c.map(|c| c.to_string()).unwrap_or_else(|| "-".into())
}

fn time(t: &str) -> &str {
    if t.is_empty() {
        "-"
    } else {
        t
    }
}

/// The current record and the versions of one file; not found when it has neither.
fn file_and_versions(
    meta: &dyn Metadata,
    owner: &ClientRow,
    file: &str,
) -> Result<(Option<FileRecord>, Vec<Version>), AdminError> {
    let record = meta.file(&owner.id, file)?;
    let versions = meta.versions(Some(&owner.id), Some(file))?;
    if record.is_none() && versions.is_empty() {
        return Err(no_such_file(owner, file));
    }
    Ok((record, versions))
}

/// Lists the versions of one file of a client, newest first, under its current
/// content: version id, size, verified, checksum, upload time, when it was replaced.
/// `--json` also gives each one's object key, as `list-files --json` does.
pub fn list_versions(
    at: &Stores,
    client: &str,
    file: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let meta = open_read(at)?;
    let owner = resolve_client(meta.as_ref(), client)?;
    let (record, versions) = file_and_versions(meta.as_ref(), &owner, file)?;
    let total: u64 = versions.iter().map(|v| v.size).sum();
    if json {
        let current = match &record {
            Some(r) => format!(
                "{{\"size\":{},\"verified\":{},\"checksum\":{},\"uploaded_at\":{},\"object\":{}}}",
                r.size,
                r.verified,
                r.checksum
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "null".into()),
                json_opt(Some(r.updated.as_str()).filter(|u| !u.is_empty())),
                json_str(&r.object)
            ),
            None => "null".into(),
        };
        let rows: Vec<String> = versions
            .iter()
            .map(|v| {
                format!(
                    "{{\"version\":{},\"size\":{},\"verified\":{},\"checksum\":{},\
                     \"uploaded_at\":{},\"superseded_at\":{},\"object\":{}}}",
                    v.id,
                    v.size,
                    v.verified,
                    v.checksum
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "null".into()),
                    json_opt(Some(v.updated.as_str()).filter(|u| !u.is_empty())),
                    json_str(&v.superseded),
                    json_str(&v.object)
                )
            })
            .collect();
        writeln!(
            out,
            "{{\"client\":{},\"client_name\":{},\"file\":{},\"current\":{current},\
             \"versions\":[{}],\"total\":{{\"versions\":{},\"bytes\":{total}}}}}",
            json_str(&owner.id.to_hex()),
            json_str(&owner.name),
            json_str(file),
            rows.join(","),
            versions.len()
        )?;
        return Ok(());
    }
    match &record {
        Some(r) => writeln!(
            out,
            "{file:?} of client {} ({}): current {} bytes, {}, checksum {}, uploaded {}",
            short(&owner.id),
            owner.name,
            r.size,
            if r.verified { "verified" } else { "unverified" },
            checksum(r.checksum),
            time(&r.updated)
        )?,
        None => writeln!(
            out,
            "{file:?} of client {} ({}): no current content",
            short(&owner.id),
            owner.name
        )?,
    }
    writeln!(
        out,
        "{:>8}  {:>12}  {:<8}  {:>10}  {:<19}  {:<19}",
        "VERSION", "SIZE", "VERIFIED", "CHECKSUM", "UPLOADED (UTC)", "REPLACED (UTC)"
    )?;
    for v in &versions {
        writeln!(
            out,
            "{:>8}  {:>12}  {:<8}  {:>10}  {:<19}  {:<19}",
            v.id,
            v.size,
            if v.verified { "yes" } else { "no" },
            checksum(v.checksum),
            time(&v.updated),
            v.superseded
        )?;
    }
    writeln!(
        out,
        "{} versions, {} ({total} bytes)",
        versions.len(),
        bytes(total)
    )?;
    Ok(())
}

/// Makes version `version` of a file its current content; the current content
/// becomes a version (one transaction: nothing is copied or deleted, and it can be
/// undone by restoring that one). Asks first unless `yes`.
pub fn restore(
    at: &Stores,
    client: &str,
    file: &str,
    version: u64,
    yes: bool,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let storage = open_write(at)?;
    let owner = resolve_client(storage.meta.as_ref(), client)?;
    let (record, versions) = file_and_versions(storage.meta.as_ref(), &owner, file)?;
    let Some(chosen) = versions.iter().find(|v| v.id == version) else {
        return Err(AdminError::NotFound(format!(
            "{file:?} of client {} has no version {version} (list-versions {} {file:?} shows \
             them)",
            short(&owner.id),
            short(&owner.id)
        )));
    };
    let replaced = match &record {
        Some(r) => format!(
            "; its current content ({} bytes, {}) becomes a version",
            r.size,
            if r.verified { "verified" } else { "unverified" }
        ),
        None => String::new(),
    };
    confirm(
        &format!(
            "restore version {version} ({} bytes, {}, uploaded {}) of {file:?} of client {} \
             ({}){replaced}",
            chosen.size,
            if chosen.verified {
                "verified"
            } else {
                "unverified"
            },
            time(&chosen.updated),
            short(&owner.id),
            owner.name
        ),
        yes,
    )?;
    let Some(done) = storage.restore_version(&owner.id, file, version)? else {
        return Err(AdminError::NotFound(format!(
            "version {version} of {file:?} of client {} was removed meanwhile",
            short(&owner.id)
        )));
    };
    let kept = match &done.kept {
        Some(k) => format!("; the content it replaced is version {}", k.id),
        None => String::new(),
    };
    writeln!(
        out,
        "restored version {version} of {file:?} of client {} ({}): {} bytes{kept}",
        short(&owner.id),
        owner.name,
        done.restored.size
    )?;
    Ok(())
}
