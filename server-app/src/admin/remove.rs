//! `remove-client`, `delete-file` and `prune`: records in one transaction, then the
//! objects no record names (docs/STORAGE.md, "Deleting").

use std::io::Write;
use std::time::Duration;

use protocol_core::ClientId;

use super::format::{age, bytes, short};
use super::{confirm, open_write, resolve_client, AdminError, Stores};

/// Removes a client (by id, id prefix or name): its row, its file records and their
/// contents. Frees its name. Asks first unless `yes`.
pub fn remove_client(
    at: &Stores,
    what: &str,
    yes: bool,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let storage = open_write(at)?;
    let client = resolve_client(storage.meta.as_ref(), what)?;
    confirm(
        &format!(
            "remove client {} ({}) and its {} files ({}) with their versions",
            short(&client.id),
            client.name,
            client.files,
            bytes(client.bytes)
        ),
        yes,
    )?;
    let Some(removed) = storage.remove_client(&client.id)? else {
        return Err(AdminError::NotFound(format!(
            "client {} ({}) was removed meanwhile",
            short(&client.id),
            client.name
        )));
    };
    let total: u64 = removed.files.iter().map(|f| f.size).sum();
    let version_bytes: u64 = removed.versions.iter().map(|v| v.size).sum();
    writeln!(
        out,
        "removed client {} ({}): {} files, {} ({total} bytes), {} versions ({version_bytes} \
         bytes); the name is free",
        short(&client.id),
        client.name,
        removed.files.len(),
        bytes(total),
        removed.versions.len()
    )?;
    Ok(())
}

/// Deletes one file of a client: its record, its versions and their contents (an
/// operator deletes to free the content, all of it; `restore` is the way back to an
/// earlier version). Asks first unless `yes`.
pub fn delete_file(
    at: &Stores,
    client: &str,
    file: &str,
    yes: bool,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let storage = open_write(at)?;
    let owner = resolve_client(storage.meta.as_ref(), client)?;
    let record = storage.meta.file(&owner.id, file)?;
    let versions = storage.meta.versions(Some(&owner.id), Some(file))?;
    let current = match &record {
        Some(r) => format!(
            "{} bytes, {}",
            r.size,
            if r.verified { "verified" } else { "unverified" }
        ),
        None if !versions.is_empty() => "no current content".into(),
        None => return Err(no_such_file(&owner.id, &owner.name, file)),
    };
    let version_bytes: u64 = versions.iter().map(|v| v.size).sum();
    let and_versions = match versions.len() {
        0 => String::new(),
        n => format!(" and its {n} earlier versions ({})", bytes(version_bytes)),
    };
    confirm(
        &format!(
            "delete {file:?} ({current}){and_versions} of client {} ({})",
            short(&owner.id),
            owner.name
        ),
        yes,
    )?;
    let Some(removed) = storage.delete_file(&owner.id, file)? else {
        return Err(AdminError::NotFound(format!(
            "{file:?} of client {} was deleted meanwhile",
            short(&owner.id)
        )));
    };
    let total: u64 = removed.files.iter().map(|f| f.size).sum::<u64>()
        + removed.versions.iter().map(|v| v.size).sum::<u64>();
    writeln!(
        out,
        "deleted {file:?} of client {} ({}): {} bytes, {} versions; {total} bytes in all",
        short(&owner.id),
        owner.name,
        removed.files.iter().map(|f| f.size).sum::<u64>(),
        removed.versions.len(),
    )?;
    Ok(())
}

fn no_such_file(id: &ClientId, name: &str, file: &str) -> AdminError {
    AdminError::NotFound(format!(
        "client {} ({name}) has no file named {file:?} (list-files --client {} shows its files)",
        short(id),
        short(id)
    ))
}

/// Deletes every unverified file (a 902, or a record of an upload that never got its
/// verdict) not written for `older_than`. A file verified meanwhile stays. Asks first
/// unless `yes`.
pub fn prune(
    at: &Stores,
    older_than: Duration,
    yes: bool,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let storage = open_write(at)?;
    confirm(
        &format!(
            "delete every unverified file older than {}",
            age(older_than.as_secs())
        ),
        yes,
    )?;
    let removed = storage.prune_unverified(older_than)?;
    for f in &removed.files {
        writeln!(
            out,
            "deleted {:?} of client {} ({} bytes, unverified since {})",
            f.file_name,
            short(&f.client),
            f.size,
            if f.updated.is_empty() {
                "before schema 3"
            } else {
                &f.updated
            }
        )?;
    }
    let total: u64 = removed.files.iter().map(|f| f.size).sum();
    writeln!(
        out,
        "{} unverified files deleted, {} ({total} bytes) freed",
        removed.files.len(),
        bytes(total)
    )?;
    Ok(())
}
