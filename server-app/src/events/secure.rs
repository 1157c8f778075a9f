//! The secure session's events (docs/PROTOCOL.md, section 10): signing in, keys,
//! the legacy lock, and the requests on a client's own files. The transfers' storage
//! side is in `app/secure_io.rs`.

use protocol_core::rand_core::CryptoRngCore;
use protocol_core::secure::frame::{Described, FileEntry, Refusal, VersionEntry};
use protocol_core::secure::keys::{KeyKind, StoredKey};
use protocol_core::secure::{kind, Ask, ClientKeys, SecureEvent, SecureServer};
use protocol_core::{ClientId, ServerConnection};
use tracing::{debug, error, info, warn};

use super::log_usage;
use crate::app::secure_io::BeginError;
use crate::app::Connection;
use crate::storage::{short_id, CommitOutcome, FileRecord, Registration, SecureKey, Version};

/// Acts on one secure event; every question is answered before returning.
pub(super) fn handle<R: CryptoRngCore>(
    c: &mut Connection,
    conn: &mut ServerConnection<R>,
    event: SecureEvent,
) {
    let Some(s) = conn.secure() else {
        error!("internal: a secure event on a legacy connection");
        return;
    };
    use SecureEvent as E;
    match event {
        E::SignIn { ask, client_id } => sign_in(c, s, ask, client_id),
        E::SignedIn { client_id, key } => signed_in(c, client_id, key),
        E::Register {
            ask,
            client_id,
            name,
            key,
        } => register(c, s, ask, client_id, &name, &key),
        E::SetKey {
            ask,
            client_id,
            key,
        } => set_key(c, s, ask, client_id, &key),
        E::KeepLegacy {
            ask,
            client_id,
            keep,
        } => keep_legacy(c, s, ask, client_id, keep),
        E::PutBegin {
            ask,
            client_id,
            name,
            size,
        } => put_begin(c, s, ask, client_id, &name, size),
        E::PutData { data, .. } => put_data(c, s, &data),
        E::PutCheckpoint {
            client_id,
            offset,
            state,
            ..
        } => {
            let (storage, _) = c.storage_and_puts();
            if let Err(e) = c.secure_io.checkpoint(&storage, offset, state) {
                warn!(peer = %c.peer(), client = %short_id(&client_id), offset,
                      "could not save the upload's place (a resume starts earlier): {e}");
            }
        }
        E::PutComplete {
            ask,
            client_id,
            name,
            size,
            sha256,
            cksum,
        } => {
            let (storage, active) = c.storage_and_puts();
            let result = c.secure_io.complete(&storage, &active, sha256, cksum);
            match result {
                Ok(CommitOutcome::Committed) | Ok(CommitOutcome::KeptVerified) => {
                    info!(peer = %c.peer(), client = %short_id(&client_id), file = %name, size,
                          sha256 = %hex(&sha256), "secure upload stored, verified");
                    log_usage(s.done(ask));
                }
                Err(e) => {
                    error!(peer = %c.peer(), client = %short_id(&client_id), file = %name,
                           "secure upload could not be stored: {e}");
                    log_usage(s.refuse(
                        ask,
                        Refusal::Storage,
                        "the server could not store the file",
                    ));
                }
            }
        }
        E::PutFailed { client_id, name } => {
            warn!(peer = %c.peer(), client = %short_id(&client_id), file = %name,
                  "secure upload discarded: its SHA-256 differs from the client's");
            let (storage, active) = c.storage_and_puts();
            c.secure_io.discard_put(&storage, &active);
        }
        E::List { ask, client_id } => list(c, s, ask, client_id),
        E::Versions {
            ask,
            client_id,
            name,
        } => versions(c, s, ask, client_id, &name),
        E::Get {
            ask,
            client_id,
            name,
            version,
            offset,
            unverified_ok,
        } => get(c, s, ask, client_id, &name, version, offset, unverified_ok),
        E::GetWants { max } => {
            let data = match c.secure_io.read(max) {
                Ok(d) => d,
                Err(e) => {
                    error!(peer = %c.peer(), "reading a download failed: {e}");
                    Vec::new()
                }
            };
            if data.is_empty() {
                c.secure_io.get = None;
            }
            log_usage(s.get_data(&data));
        }
        E::Remove {
            ask,
            client_id,
            name,
        } => remove(c, s, ask, client_id, &name),
        E::Restore {
            ask,
            client_id,
            name,
            version,
        } => restore(c, s, ask, client_id, &name, version),
        other => debug!(event = ?other, "secure event not acted on"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sign_in(c: &mut Connection, s: &mut SecureServer, ask: Ask<kind::SignIn>, client_id: ClientId) {
    let meta = &c.storage().meta;
    let keys = (|| -> Result<Option<ClientKeys>, crate::storage::MetaError> {
        let Some(status) = meta.secure_status(&client_id)? else {
            return Ok(None);
        };
        let legacy = meta.legacy_key(&client_id)?;
        let strong = meta.secure_key(&client_id)?.and_then(|k| {
            Some(StoredKey {
                kind: KeyKind::from_code(k.kind)?,
                key: k.key,
            })
        });
        if legacy.is_none() && strong.is_none() {
            return Ok(None);
        }
        Ok(Some(ClientKeys {
            legacy,
            strong,
            keep_legacy: status.keep_legacy,
        }))
    })();
    match keys {
        Ok(keys) => {
            if keys.is_none() {
                info!(peer = %c.peer(), client = %short_id(&client_id), "secure sign-in refused: unknown client");
            }
            log_usage(s.sign_in_keys(ask, keys));
        }
        Err(e) => {
            error!(peer = %c.peer(), "secure sign-in failed: {e}");
            log_usage(s.refuse(
                ask,
                Refusal::Storage,
                "the server could not look the client up",
            ));
        }
    }
}

fn signed_in(c: &mut Connection, client_id: ClientId, key: KeyKind) {
    info!(peer = %c.peer(), client = %short_id(&client_id), key = ?key, "secure session signed in");
    match c.storage().meta.mark_went_secure(&client_id) {
        Ok(_) => {}
        Err(e) => error!(peer = %c.peer(), "cannot record that the client went secure: {e}"),
    }
    let _ = c.storage().meta.touch(&client_id);
}

fn register(
    c: &mut Connection,
    s: &mut SecureServer,
    ask: Ask<kind::Register>,
    client_id: ClientId,
    name: &str,
    key: &StoredKey,
) {
    let hold = c.policy().name_hold;
    let stored = SecureKey {
        kind: key.kind.code(),
        key: key.key.clone(),
    };
    match c
        .storage()
        .meta
        .register_secure(&client_id, name, &stored, hold)
    {
        Ok(Registration::Registered) => {
            info!(peer = %c.peer(), client = %short_id(&client_id), name, key = ?key.kind,
                  "secure registration");
            log_usage(s.registered(ask, true));
        }
        Ok(Registration::NameTaken) => {
            info!(peer = %c.peer(), name, "secure registration refused: name taken");
            log_usage(s.registered(ask, false));
        }
        Err(e) => {
            error!(peer = %c.peer(), name, "secure registration failed: {e}");
            log_usage(s.refuse(
                ask,
                Refusal::Storage,
                "the server could not register the client",
            ));
        }
    }
}

fn set_key(
    c: &mut Connection,
    s: &mut SecureServer,
    ask: Ask<kind::Done>,
    client_id: ClientId,
    key: &StoredKey,
) {
    let stored = SecureKey {
        kind: key.kind.code(),
        key: key.key.clone(),
    };
    match c.storage().meta.set_secure_key(&client_id, &stored) {
        Ok(true) => {
            info!(peer = %c.peer(), client = %short_id(&client_id), key = ?key.kind,
                  "stronger key registered: the legacy key no longer signs in");
            log_usage(s.done(ask));
        }
        Ok(false) => log_usage(s.refuse(ask, Refusal::UnknownClient, "no such client")),
        Err(e) => {
            error!(peer = %c.peer(), "storing a key failed: {e}");
            log_usage(s.refuse(ask, Refusal::Storage, "the server could not store the key"));
        }
    }
}

fn keep_legacy(
    c: &mut Connection,
    s: &mut SecureServer,
    ask: Ask<kind::Done>,
    client_id: ClientId,
    keep: bool,
) {
    match c.storage().meta.set_keep_legacy(&client_id, keep) {
        Ok(_) => {
            info!(peer = %c.peer(), client = %short_id(&client_id), keep,
                  "legacy requests for this client {}", if keep { "kept open" } else { "closed" });
            log_usage(s.done(ask));
        }
        Err(e) => {
            error!(peer = %c.peer(), "keep-legacy failed: {e}");
            log_usage(s.refuse(ask, Refusal::Storage, "the server could not record it"));
        }
    }
}

fn put_begin(
    c: &mut Connection,
    s: &mut SecureServer,
    ask: Ask<kind::PutBegin>,
    client_id: ClientId,
    name: &str,
    size: u64,
) {
    let (storage, active) = c.storage_and_puts();
    match c
        .secure_io
        .begin_put(&storage, &active, client_id, name, size)
    {
        Ok(resume) => {
            let offset = resume.as_ref().map_or(0, |r| r.offset);
            info!(peer = %c.peer(), client = %short_id(&client_id), file = name, size, offset,
                  "secure upload {}", if offset > 0 { "resumed" } else { "started" });
            log_usage(s.put_from(ask, resume));
        }
        Err(BeginError::Busy) => {
            info!(peer = %c.peer(), client = %short_id(&client_id), file = name,
                  "secure upload refused: the file is being uploaded on another connection");
            log_usage(s.refuse(
                ask,
                Refusal::Storage,
                "this file is being uploaded on another connection; try again shortly",
            ));
        }
        Err(BeginError::Storage(e)) => {
            error!(peer = %c.peer(), client = %short_id(&client_id), "cannot store an upload: {e}");
            log_usage(s.refuse(
                ask,
                Refusal::Storage,
                "the server could not store the upload",
            ));
        }
    }
}

fn put_data(c: &mut Connection, s: &mut SecureServer, data: &[u8]) {
    match c.secure_io.write(data) {
        Ok(()) => {
            c.metrics().received(data.len());
        }
        Err(e) => {
            // The bytes are reported written anyway: the session goes on to its
            // end, where the commit of a broken upload fails and the client is told.
            error!(peer = %c.peer(), "writing a secure upload failed: {e}");
        }
    }
    log_usage(s.data_written(data.len()));
}

fn described(
    size: u64,
    verified: bool,
    sha256: Option<[u8; 32]>,
    cksum: Option<u32>,
    updated: &str,
) -> Described {
    Described {
        size,
        verified,
        sha256,
        cksum,
        updated: updated.to_string(),
    }
}

fn file_entry(r: &FileRecord, versions: u32) -> FileEntry {
    FileEntry {
        name: r.file_name.clone(),
        content: described(r.size, r.verified, r.sha256, r.checksum, &r.updated),
        versions,
    }
}

fn version_entry(v: &Version) -> VersionEntry {
    VersionEntry {
        id: v.id,
        content: described(v.size, v.verified, v.sha256, v.checksum, &v.updated),
        superseded: v.superseded.clone(),
    }
}

fn list(c: &mut Connection, s: &mut SecureServer, ask: Ask<kind::List>, client_id: ClientId) {
    let meta = &c.storage().meta;
    let result = meta
        .files(Some(&client_id))
        .and_then(|files| Ok((files, meta.versions(Some(&client_id), None)?)));
    match result {
        Ok((files, versions)) => {
            // Counted once per version, not once per file and version.
            let mut kept: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
            for v in &versions {
                *kept.entry(v.file_name.as_str()).or_default() += 1;
            }
            let entries = files
                .iter()
                .map(|f| file_entry(f, kept.get(f.file_name.as_str()).copied().unwrap_or(0)))
                .collect();
            log_usage(s.listing(ask, entries));
        }
        Err(e) => {
            error!(peer = %c.peer(), "listing failed: {e}");
            log_usage(s.refuse(ask, Refusal::Storage, "the server could not list the files"));
        }
    }
}

fn versions(
    c: &mut Connection,
    s: &mut SecureServer,
    ask: Ask<kind::Versions>,
    client_id: ClientId,
    name: &str,
) {
    match c.storage().meta.versions(Some(&client_id), Some(name)) {
        Ok(v) => log_usage(s.version_listing(ask, v.iter().map(version_entry).collect())),
        Err(e) => {
            error!(peer = %c.peer(), "listing versions failed: {e}");
            log_usage(s.refuse(
                ask,
                Refusal::Storage,
                "the server could not list the versions",
            ));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn get(
    c: &mut Connection,
    s: &mut SecureServer,
    ask: Ask<kind::Get>,
    client_id: ClientId,
    name: &str,
    version: Option<u64>,
    offset: u64,
    unverified_ok: bool,
) {
    let meta = &c.storage().meta;
    let found = match version {
        None => meta.file(&client_id, name).map(|r| {
            r.map(|r| {
                let d = described(r.size, r.verified, r.sha256, r.checksum, &r.updated);
                (r.object, d)
            })
        }),
        Some(id) => meta.versions(Some(&client_id), Some(name)).map(|vs| {
            vs.into_iter().find(|v| v.id == id).map(|v| {
                let d = described(v.size, v.verified, v.sha256, v.checksum, &v.updated);
                (v.object, d)
            })
        }),
    };
    let (object, content) = match found {
        Ok(Some(x)) => x,
        Ok(None) => {
            log_usage(s.refuse(ask, Refusal::NotFound, "no such file or version"));
            return;
        }
        Err(e) => {
            error!(peer = %c.peer(), "download lookup failed: {e}");
            log_usage(s.refuse(
                ask,
                Refusal::Storage,
                "the server could not look the file up",
            ));
            return;
        }
    };
    if !content.verified && !unverified_ok {
        log_usage(s.refuse(
            ask,
            Refusal::Unverified,
            "the file is unverified (its upload was never confirmed); ask for it explicitly",
        ));
        return;
    }
    if offset > content.size {
        log_usage(s.get_begin(ask, version, content));
        return;
    }
    match c.storage().contents.open_object(&object, offset) {
        Ok(reader) => {
            info!(peer = %c.peer(), client = %short_id(&client_id), file = name, ?version, offset,
                  size = content.size, "download");
            c.secure_io.get = Some(reader);
            log_usage(s.get_begin(ask, version, content));
        }
        Err(e) => {
            error!(peer = %c.peer(), "opening a download failed: {e}");
            log_usage(s.refuse(ask, Refusal::Storage, "the server could not read the file"));
        }
    }
}

fn remove(
    c: &mut Connection,
    s: &mut SecureServer,
    ask: Ask<kind::Done>,
    client_id: ClientId,
    name: &str,
) {
    match c.storage().retire_file(&client_id, name) {
        Ok(Some(v)) => {
            info!(peer = %c.peer(), client = %short_id(&client_id), file = name, version = v.id,
                  "file removed by its client (kept as a version)");
            log_usage(s.done(ask));
        }
        Ok(None) => log_usage(s.refuse(ask, Refusal::NotFound, "no such file")),
        Err(e) => {
            error!(peer = %c.peer(), "remove failed: {e}");
            log_usage(s.refuse(
                ask,
                Refusal::Storage,
                "the server could not remove the file",
            ));
        }
    }
}

fn restore(
    c: &mut Connection,
    s: &mut SecureServer,
    ask: Ask<kind::Done>,
    client_id: ClientId,
    name: &str,
    version: u64,
) {
    match c.storage().restore_version(&client_id, name, version) {
        Ok(Some(_)) => {
            info!(peer = %c.peer(), client = %short_id(&client_id), file = name, version,
                  "version restored by its client");
            log_usage(s.done(ask));
        }
        Ok(None) => log_usage(s.refuse(ask, Refusal::NotFound, "no such version")),
        Err(e) => {
            error!(peer = %c.peer(), "restore failed: {e}");
            log_usage(s.refuse(
                ask,
                Refusal::Storage,
                "the server could not restore the version",
            ));
        }
    }
}
