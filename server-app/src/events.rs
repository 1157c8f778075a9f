//! What the server does for each event of the protocol core.

use protocol_core::rand_core::CryptoRngCore;
use protocol_core::server::question::kind;
use protocol_core::ServerConnection;
use protocol_core::{ClientId, FieldString, RequestCode, ServerEvent, Ticket, UsageError, Verdict};
use tracing::{debug, error, info, warn};

use crate::app::{Connection, Failed, VerdictError};
use crate::client_limits::{Strain, MAX_CHECKED_PER_KEY};
use crate::metrics::{Outcome, UploadResult};
use crate::storage::uploads::Handover;
use crate::storage::{short_id, CommitOutcome, KeyOutcome, Registration};

fn text(name: &protocol_core::FieldString) -> String {
    // Names are checked printable ASCII by the core before they get here.
    String::from_utf8_lossy(name.as_bytes()).into_owned()
}

fn log_usage(r: Result<(), UsageError>) {
    if let Err(e) = r {
        error!("internal: {e}");
    }
}

/// Drops a failed upload (already logged) and has the client told, once: at once, or,
/// when its last packet was in before the failure (the core then has no upload to fail
/// and has queued its UploadFinished), in the answer to that.
fn fail_upload<R: CryptoRngCore>(c: &mut Connection, conn: &mut ServerConnection<R>) {
    c.metrics().request(828, Outcome::Error);
    c.metrics().upload(UploadResult::Failed);
    match conn.fail_upload() {
        Ok(()) => c.fail(Failed::Told),
        Err(_) => c.fail(Failed::AtFinish),
    }
}

/// Acts on one event; every question is answered before returning.
pub(crate) fn handle<R: CryptoRngCore>(
    c: &mut Connection,
    conn: &mut ServerConnection<R>,
    event: ServerEvent,
) {
    let peer = c.peer();
    match event {
        ServerEvent::Seen { client_id, code } => {
            let now = std::time::Instant::now();
            let due = c.touch_due(client_id, now);
            if code != RequestCode::SendFile {
                info!(%peer, client = %short_id(&client_id), code = code as u16, "request");
            } else if due {
                // Upload progress: each second at DEBUG, every 10 s at INFO.
                if c.progress_log.due(now) {
                    info!(%peer, client = %short_id(&client_id), code = code as u16, "request");
                } else {
                    debug!(%peer, client = %short_id(&client_id), code = code as u16, "request");
                }
            }
            if due {
                if let Err(e) = c.storage().meta.touch(&client_id) {
                    warn!("{e}");
                }
            }
        }
        ServerEvent::Register {
            ticket,
            client_id,
            name,
        } => {
            let name = text(&name);
            let hold = c.policy().name_hold;
            let answer = match c.storage().meta.register(&client_id, &name, hold) {
                Ok(Registration::Registered) => {
                    info!(%peer, client = %short_id(&client_id), name, "825 registered");
                    c.metrics().request(825, Outcome::Ok);
                    conn.accept_registration(ticket)
                }
                Ok(Registration::NameTaken) => {
                    info!(%peer, name, "825 refused: name taken (or held for its registration)");
                    c.metrics().request(825, Outcome::Refused);
                    conn.refuse_registration(ticket)
                }
                Err(e) => {
                    error!(%peer, name, "825 failed: {e}");
                    c.metrics().request(825, Outcome::Error);
                    conn.fail(ticket)
                }
            };
            log_usage(answer);
        }
        ServerEvent::StorePublicKey {
            ticket,
            client_id,
            name,
            public_key,
            aes_key,
        } => {
            let stored = c.storage().meta.set_keys(
                &client_id,
                &text(&name),
                &public_key,
                aes_key.as_bytes(),
            );
            let client = short_id(&client_id);
            let answer = match stored {
                Ok(KeyOutcome::Stored) => {
                    info!(%peer, %client, "826 key stored");
                    c.metrics().request(826, Outcome::Ok);
                    conn.succeed(ticket)
                }
                Ok(KeyOutcome::DifferentKeyOnFile) => {
                    warn!(%peer, %client, "826 refused: this client has a different public key on file");
                    c.metrics().request(826, Outcome::Refused);
                    conn.fail(ticket)
                }
                Ok(KeyOutcome::Unknown) => {
                    info!(%peer, %client, "826 refused: unknown id or name");
                    c.metrics().request(826, Outcome::Refused);
                    conn.fail(ticket)
                }
                Err(e) => {
                    error!(%peer, "826 failed: {e}");
                    c.metrics().request(826, Outcome::Error);
                    conn.fail(ticket)
                }
            };
            log_usage(answer);
        }
        ServerEvent::Reconnect {
            ticket,
            client_id,
            name,
        } => {
            if !c.limits().rekey(client_id, std::time::Instant::now()) {
                c.strain(
                    client_id,
                    Strain::Rekey,
                    "827 refused: too many re-keys for this client id",
                );
                c.metrics().request(827, Outcome::Refused);
                log_usage(conn.fail(ticket));
                return;
            }
            let key = match c.storage().meta.public_key(&client_id, &text(&name)) {
                Ok(k) => k,
                Err(e) => {
                    error!(%peer, "827 failed: {e}");
                    c.metrics().request(827, Outcome::Error);
                    log_usage(conn.fail(ticket));
                    return;
                }
            };
            if key.is_none() {
                info!(%peer, client = %short_id(&client_id), "827 refused: unknown, or no key on file");
                c.metrics().request(827, Outcome::Refused);
            }
            log_usage(conn.reconnect_lookup(ticket, key.as_deref()));
        }
        ServerEvent::StoreAesKey {
            ticket,
            client_id,
            aes_key,
        } => {
            let answer = match c.storage().meta.set_aes_key(&client_id, aes_key.as_bytes()) {
                Ok(true) => {
                    info!(%peer, client = %short_id(&client_id), "827 reconnected");
                    c.metrics().request(827, Outcome::Ok);
                    conn.succeed(ticket)
                }
                Ok(false) => {
                    c.metrics().request(827, Outcome::Refused);
                    conn.fail(ticket)
                }
                Err(e) => {
                    error!(%peer, "827 failed: {e}");
                    c.metrics().request(827, Outcome::Error);
                    conn.fail(ticket)
                }
            };
            log_usage(answer);
        }
        ServerEvent::LookupClient { ticket, client_id } => {
            if !c
                .limits()
                .lookups_allowed(client_id, std::time::Instant::now())
            {
                c.strain(
                    client_id,
                    Strain::LockedOut,
                    "828 refused: too many decryption failures under this client id's key",
                );
                c.metrics().request(828, Outcome::Refused);
                log_usage(conn.client_lookup(ticket, None));
                return;
            }
            let record = c.lookup_client(client_id);
            log_usage(conn.client_lookup(ticket, record));
        }
        ServerEvent::UploadStarted {
            client_id,
            file_name,
            original_size,
            total_packets,
        } => match c.start_upload(client_id, text(&file_name), conn.requests_seen() == 1) {
            Ok(()) => {
                info!(%peer, client = %short_id(&client_id), file = %file_name.display(),
                      size = original_size, packets = total_packets, "828 upload started");
            }
            Err(e) => {
                error!(%peer, client = %short_id(&client_id), "cannot store an upload: {e}");
                fail_upload(c, conn);
            }
        },
        ServerEvent::UploadData { client_id, data } => {
            let n = data.len();
            if c.failed().is_some() {
                // Queued before the failure, which is logged once.
            } else if let Err(e) = c.data(&data) {
                error!(%peer, client = %short_id(&client_id), "writing an upload failed: {e}");
                fail_upload(c, conn);
            } else {
                c.metrics().received(n);
                log_usage(conn.data_written(n));
            }
        }
        // The upload failed on data queued before this: already logged. The core asks
        // still when its last packet was in before the failure; otherwise it dropped
        // the question (and sent 1607) at `fail_upload`.
        ServerEvent::UploadFinished { ticket, .. } if c.failed().is_some() => {
            if c.failed() == Some(Failed::AtFinish) {
                log_usage(conn.fail(ticket));
            }
        }
        ServerEvent::UploadFinished {
            ticket,
            client_id,
            file_name,
            size,
            checksum,
        } => upload_finished(c, conn, ticket, client_id, &file_name, size, checksum),
        ServerEvent::UploadAborted { client_id, reason } => {
            info!(%peer, client = %short_id(&client_id), "upload abandoned: {reason}");
            c.abort();
        }
        ServerEvent::UploadSuspended { client_id, upload } => {
            if let Err(e) = c.suspend(upload) {
                error!(%peer, client = %short_id(&client_id), "writing a suspended upload failed: {e}");
            }
            c.enforce_upload_quota(&client_id);
        }
        ServerEvent::Confirm {
            ticket,
            client_id,
            verdict,
            ..
        } => {
            let client = short_id(&client_id);
            let (code, result) = match verdict {
                Verdict::Verified => (900, UploadResult::Verified),
                Verdict::GaveUp => (902, UploadResult::Unverified),
            };
            let fresh = conn.requests_seen() == 1;
            match c.verdict(&client_id, verdict, fresh) {
                Ok(CommitOutcome::Committed) => {
                    info!(%peer, %client, ?verdict, "upload committed");
                    c.metrics().request(code, Outcome::Ok);
                    c.metrics().upload(result);
                    log_usage(conn.succeed(ticket));
                }
                Ok(CommitOutcome::KeptVerified) => {
                    info!(%peer, %client, ?verdict, "unconfirmed upload dropped: the verified file stays");
                    c.metrics().request(code, Outcome::Ok);
                    c.metrics().upload(result);
                    log_usage(conn.succeed(ticket));
                }
                Err(VerdictError::NothingToDecide) => {
                    c.strain(
                        client_id,
                        Strain::VerdictElsewhere,
                        &format!(
                            "{code} refused: no upload of this connection awaits a verdict \
                             (a verdict belongs to the connection that received the 1603)"
                        ),
                    );
                    c.metrics().request(code, Outcome::Refused);
                    log_usage(conn.fail(ticket));
                }
                Err(VerdictError::Failed(e)) => {
                    error!(%peer, %client, "confirming an upload failed: {e}");
                    c.metrics().request(code, Outcome::Error);
                    c.metrics().upload(UploadResult::Failed);
                    log_usage(conn.fail(ticket));
                }
            }
        }
        ServerEvent::DecryptionFailed { client_id } => {
            c.limits()
                .decryption_failed(client_id, std::time::Instant::now());
            c.strain(
                client_id,
                Strain::DecryptionFailure,
                "828 failed to decrypt under this client id's key (sent by a connection that \
                 did not obtain the key: the key stays)",
            );
        }
        ServerEvent::RevokeKey { client_id } => {
            c.limits()
                .decryption_failed(client_id, std::time::Instant::now());
            c.metrics()
                .client_strain(&short_id(&client_id), Strain::DecryptionFailure.label());
            warn!(%peer, client = %short_id(&client_id), "AES key revoked after a decryption failure");
            if let Err(e) = c.storage().meta.revoke_aes_key(&client_id) {
                error!(%peer, "{e}");
            }
        }
        ServerEvent::RetryAnnounced { client_id, .. } => {
            info!(%peer, client = %short_id(&client_id), "901 checksum mismatch, file follows again");
            let fresh = conn.requests_seen() == 1;
            if c.retry_announced(&client_id, fresh) {
                c.metrics().request(901, Outcome::Ok);
            } else {
                c.strain(
                    client_id,
                    Strain::VerdictElsewhere,
                    "901 ignored: no upload of this connection awaits a verdict",
                );
                c.metrics().request(901, Outcome::Refused);
            }
        }
    }
}

/// The last packet is in and decrypted: checks the key's allowance of checksums,
/// makes the upload durable, and answers 1603, or 1607.
fn upload_finished<R: CryptoRngCore>(
    c: &mut Connection,
    conn: &mut ServerConnection<R>,
    ticket: Ticket<kind::UploadFinished>,
    client_id: ClientId,
    file_name: &FieldString,
    size: u64,
    checksum: u32,
) {
    let peer = c.peer();
    // The checksum is a statement about bytes decrypted under the client's
    // key: a stranger who sends chosen ciphertext under its id learns 32 bits
    // of plaintext from each. An issued key gets as many as the protocol's
    // attempts need, then the client re-keys (827).
    let key = conn.session_key().map(|k| k.as_bytes().to_vec());
    let counted = key.map_or(Ok(None), |key| {
        c.storage().meta.count_checked_upload(&client_id, &key)
    });
    match counted {
        Ok(Some(n)) if n <= MAX_CHECKED_PER_KEY => {}
        // The key was replaced or revoked on file (or the client removed)
        // since this connection got it. A key issued on this connection is
        // its client's own: the upload goes on (a removed client learns so at
        // its verdict). A looked-up one may be a stranger's session: refused.
        Ok(None) if conn.key_issued_here() => {}
        Ok(n) => {
            let why = match n {
                Some(n) => format!(
                    "{n} whole uploads checked under this key (at most {MAX_CHECKED_PER_KEY})"
                ),
                None => "this connection's key is no longer the client's key on file \
                         (re-keyed or revoked since)"
                    .into(),
            };
            c.strain(
                client_id,
                Strain::CheckedUploads,
                &format!("828 refused: {why}; the client must reconnect (827) for a new key"),
            );
            c.metrics().request(828, Outcome::Refused);
            c.metrics().upload(UploadResult::Failed);
            c.fail(Failed::Told);
            log_usage(conn.fail(ticket));
            return;
        }
        Err(e) => return finish_failed(c, conn, ticket, client_id, &e),
    }
    // A last packet that is the first request of its connection comes from a
    // client with a connection per request: its verdict will come on another.
    let handover = if conn.requests_seen() == 1 {
        Handover::AnyConnection
    } else {
        Handover::OwnConnection
    };
    match c.finished(size, checksum, handover) {
        Ok(()) => {
            info!(%peer, client = %short_id(&client_id), file = %file_name.display(), size, checksum,
                  "828 upload received");
            c.enforce_upload_quota(&client_id);
            c.metrics().request(828, Outcome::Ok);
            if let Err(e) = conn.succeed(ticket) {
                // The core refuses a checksum for bytes never reported written.
                error!(%peer, client = %short_id(&client_id), "internal: {e}");
                c.fail(Failed::Told);
            }
        }
        Err(e) => finish_failed(c, conn, ticket, client_id, &e),
    }
}

/// Finishing an upload failed in the store: logged, counted, 1607.
fn finish_failed<R: CryptoRngCore>(
    c: &mut Connection,
    conn: &mut ServerConnection<R>,
    ticket: Ticket<kind::UploadFinished>,
    client_id: ClientId,
    e: &dyn std::fmt::Display,
) {
    let peer = c.peer();
    error!(%peer, client = %short_id(&client_id), "finishing an upload failed: {e}");
    c.metrics().request(828, Outcome::Error);
    c.metrics().upload(UploadResult::Failed);
    c.fail(Failed::Told);
    log_usage(conn.fail(ticket));
}
