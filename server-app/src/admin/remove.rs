//! `remove-client`, `delete-file` and `prune`: records in one transaction, then the
//! objects no record names (docs/STORAGE.md, "Deleting").

use std::io::Write;
use std::time::Duration;

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
            "remove client {} ({}) and its {} files ({})",
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
    writeln!(
        out,
        "removed client {} ({}): {} files, {} ({total} bytes); the name is free",
        short(&client.id),
        client.name,
        removed.files.len(),
        bytes(total)
    )?;
    Ok(())
}

/// Deletes one file record of a client and its contents. Asks first unless `yes`.
pub fn delete_file(
    at: &Stores,
    client: &str,
    file: &str,
    yes: bool,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let storage = open_write(at)?;
    let owner = resolve_client(storage.meta.as_ref(), client)?;
    let Some(record) = storage.meta.file(&owner.id, file)? else {
        return Err(AdminError::NotFound(format!(
            "client {} ({}) has no file named {file:?} (list-files --client {} shows its files)",
            short(&owner.id),
            owner.name,
            short(&owner.id)
        )));
    };
    confirm(
        &format!(
            "delete {file:?} ({} bytes, {}) of client {} ({})",
            record.size,
            if record.verified {
                "verified"
            } else {
                "unverified"
            },
            short(&owner.id),
            owner.name
        ),
        yes,
    )?;
    if !storage.delete_file(&owner.id, file)? {
        return Err(AdminError::NotFound(format!(
            "{file:?} of client {} was deleted meanwhile",
            short(&owner.id)
        )));
    }
    writeln!(
        out,
        "deleted {file:?} of client {} ({}): {} bytes",
        short(&owner.id),
        owner.name,
        record.size
    )?;
    Ok(())
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
