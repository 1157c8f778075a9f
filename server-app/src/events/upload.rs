//! The events of an upload: its start, its data, its end, and the client's verdict.

use protocol_core::rand_core::CryptoRngCore;
use protocol_core::server::question::kind;
use protocol_core::ServerConnection;
use protocol_core::{ClientId, FieldString, SuspendedUpload, Ticket, Verdict};
use tracing::{error, info};

use super::{log_usage, text};
use crate::app::{Connection, Failed, VerdictError};
use crate::client_limits::{Strain, MAX_CHECKED_PER_KEY};
use crate::metrics::{Outcome, UploadResult};
use crate::storage::uploads::Handover;
use crate::storage::{short_id, CommitOutcome};

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

/// A first packet: the upload's storage is created (or a suspended one taken over).
pub(super) fn started<R: CryptoRngCore>(
    c: &mut Connection,
    conn: &mut ServerConnection<R>,
    client_id: ClientId,
    file_name: &FieldString,
    original_size: u32,
    total_packets: u16,
) {
    let peer = c.peer();
    match c.start_upload(client_id, text(file_name), conn.requests_seen() == 1) {
        Ok(()) => {
            info!(%peer, client = %short_id(&client_id), file = %file_name.display(),
                  size = original_size, packets = total_packets, "828 upload started");
        }
        Err(e) => {
            error!(%peer, client = %short_id(&client_id), "cannot store an upload: {e}");
            fail_upload(c, conn);
        }
    }
}

/// Decrypted bytes of the upload, written in order.
pub(super) fn data<R: CryptoRngCore>(
    c: &mut Connection,
    conn: &mut ServerConnection<R>,
    client_id: ClientId,
    data: &[u8],
) {
    let peer = c.peer();
    let n = data.len();
    if c.failed().is_some() {
        // Queued before the failure, which is logged once.
    } else if let Err(e) = c.data(data) {
        error!(%peer, client = %short_id(&client_id), "writing an upload failed: {e}");
        fail_upload(c, conn);
    } else {
        c.metrics().received(n);
        log_usage(conn.data_written(n));
    }
}

/// The last packet is in: 1603 once the upload is durable, or 1607.
pub(super) fn finished<R: CryptoRngCore>(
    c: &mut Connection,
    conn: &mut ServerConnection<R>,
    ticket: Ticket<kind::UploadFinished>,
    client_id: ClientId,
    file_name: &FieldString,
    size: u64,
    checksum: u32,
) {
    match c.failed() {
        // The upload failed on data queued before this: already logged. The core
        // asks still when its last packet was in before the failure; otherwise it
        // dropped the question (and sent 1607) at `fail_upload`.
        Some(Failed::AtFinish) => log_usage(conn.fail(ticket)),
        Some(_) => {}
        None => check_and_finish(c, conn, ticket, client_id, file_name, size, checksum),
    }
}

/// The core gave the upload up (a malformed or out-of-order packet): its storage goes.
pub(super) fn aborted(c: &mut Connection, client_id: ClientId, reason: &str) {
    let peer = c.peer();
    info!(%peer, client = %short_id(&client_id), "upload abandoned: {reason}");
    c.abort();
}

/// A connection per request left its upload between packets: kept for the next.
pub(super) fn suspended(c: &mut Connection, client_id: ClientId, upload: SuspendedUpload) {
    let peer = c.peer();
    if let Err(e) = c.suspend(upload) {
        error!(%peer, client = %short_id(&client_id), "writing a suspended upload failed: {e}");
    }
    c.enforce_upload_quota(&client_id);
}

/// 900 or 902: the upload of this connection's 1603 is committed, verified or not.
pub(super) fn confirm<R: CryptoRngCore>(
    c: &mut Connection,
    conn: &mut ServerConnection<R>,
    ticket: Ticket<kind::Confirm>,
    client_id: ClientId,
    verdict: Verdict,
) {
    let peer = c.peer();
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

/// 901: the checksum did not match and the file follows again.
pub(super) fn retry_announced<R: CryptoRngCore>(
    c: &mut Connection,
    conn: &mut ServerConnection<R>,
    client_id: ClientId,
) {
    let peer = c.peer();
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

/// The last packet is in and decrypted: checks the key's allowance of checksums,
/// makes the upload durable, and answers 1603, or 1607.
fn check_and_finish<R: CryptoRngCore>(
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
