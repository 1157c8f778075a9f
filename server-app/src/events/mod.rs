//! What the server does for each event of the protocol core: [`handle`] passes each
//! one to a function of its own, here for the client's identity and keys (825, 826,
//! 827, the lookup before an upload), in [`upload`] for an upload and its verdict.

mod secure;
mod upload;

use protocol_core::rand_core::CryptoRngCore;
use protocol_core::server::question::kind;
use protocol_core::ServerConnection;
use protocol_core::{ClientId, FieldString, RequestCode, ServerEvent, Ticket, UsageError};
use tracing::{debug, error, info, warn};

use crate::app::Connection;
use crate::client_limits::Strain;
use crate::metrics::Outcome;
use crate::storage::{short_id, KeyOutcome, Registration};

fn text(name: &FieldString) -> String {
    // Names are checked printable ASCII by the core before they get here.
    String::from_utf8_lossy(name.as_bytes()).into_owned()
}

fn log_usage(r: Result<(), UsageError>) {
    if let Err(e) = r {
        error!("internal: {e}");
    }
}

/// Acts on one event; every question is answered before returning.
pub(crate) fn handle<R: CryptoRngCore>(
    c: &mut Connection,
    conn: &mut ServerConnection<R>,
    event: ServerEvent,
) {
    use ServerEvent as E;
    match event {
        E::Seen { client_id, code } => seen(c, client_id, code),
        E::Register {
            ticket,
            client_id,
            name,
        } => register(c, conn, ticket, client_id, &name),
        E::StorePublicKey {
            ticket,
            client_id,
            name,
            public_key,
            aes_key,
        } => store_public_key(
            c,
            conn,
            ticket,
            client_id,
            &name,
            &public_key,
            aes_key.as_bytes(),
        ),
        E::Reconnect {
            ticket,
            client_id,
            name,
        } => reconnect(c, conn, ticket, client_id, &name),
        E::StoreAesKey {
            ticket,
            client_id,
            aes_key,
        } => store_aes_key(c, conn, ticket, client_id, aes_key.as_bytes()),
        E::LookupClient { ticket, client_id } => lookup_client(c, conn, ticket, client_id),
        E::DecryptionFailed { client_id } => decryption_failed(c, client_id),
        E::RevokeKey { client_id } => revoke_key(c, client_id),
        E::UploadStarted {
            client_id,
            file_name,
            original_size,
            total_packets,
        } => upload::started(c, conn, client_id, &file_name, original_size, total_packets),
        E::UploadData { client_id, data } => upload::data(c, conn, client_id, &data),
        E::UploadFinished {
            ticket,
            client_id,
            file_name,
            size,
            checksum,
        } => upload::finished(c, conn, ticket, client_id, &file_name, size, checksum),
        E::UploadAborted { client_id, reason } => upload::aborted(c, client_id, &reason),
        E::UploadSuspended { client_id, upload } => upload::suspended(c, client_id, upload),
        E::Confirm {
            ticket,
            client_id,
            verdict,
            ..
        } => upload::confirm(c, conn, ticket, client_id, verdict),
        E::RetryAnnounced { client_id, .. } => upload::retry_announced(c, conn, client_id),
        E::Secure(event) => secure::handle(c, conn, event),
        // A notice a newer core added and this server does not act on yet.
        other => debug!(event = ?other, "event not acted on"),
    }
}

/// Any request with a client id: logged, and the client's last-seen time kept (at
/// most once a while per client: an upload's packets do not each write it).
fn seen(c: &mut Connection, client_id: ClientId, code: RequestCode) {
    let peer = c.peer();
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

/// 825: a new client row, unless the name is taken or held.
fn register<R: CryptoRngCore>(
    c: &mut Connection,
    conn: &mut ServerConnection<R>,
    ticket: Ticket<kind::Register>,
    client_id: ClientId,
    name: &FieldString,
) {
    let peer = c.peer();
    let name = text(name);
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

/// 826: the client's public key and the AES key issued for it; a different public
/// key on file is never replaced.
fn store_public_key<R: CryptoRngCore>(
    c: &mut Connection,
    conn: &mut ServerConnection<R>,
    ticket: Ticket<kind::StorePublicKey>,
    client_id: ClientId,
    name: &FieldString,
    public_key: &[u8],
    aes_key: &[u8],
) {
    let peer = c.peer();
    let stored = c
        .storage()
        .meta
        .set_keys(&client_id, &text(name), public_key, aes_key);
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

/// 827, first half: the public key on file for a re-key, within the client id's
/// allowance of re-keys.
fn reconnect<R: CryptoRngCore>(
    c: &mut Connection,
    conn: &mut ServerConnection<R>,
    ticket: Ticket<kind::Reconnect>,
    client_id: ClientId,
    name: &FieldString,
) {
    let peer = c.peer();
    if went_secure(c, client_id, 827) {
        c.metrics().request(827, Outcome::Refused);
        log_usage(conn.fail(ticket));
        return;
    }
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
    let key = match c.storage().meta.public_key(&client_id, &text(name)) {
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

/// 827, second half: the new AES key on file.
fn store_aes_key<R: CryptoRngCore>(
    c: &mut Connection,
    conn: &mut ServerConnection<R>,
    ticket: Ticket<kind::StoreAesKey>,
    client_id: ClientId,
    aes_key: &[u8],
) {
    let peer = c.peer();
    let answer = match c.storage().meta.set_aes_key(&client_id, aes_key) {
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

/// Before an upload's first packet is decrypted: the client's key on file, unless
/// the id is locked out for decryption failures.
fn lookup_client<R: CryptoRngCore>(
    c: &mut Connection,
    conn: &mut ServerConnection<R>,
    ticket: Ticket<kind::LookupClient>,
    client_id: ClientId,
) {
    if went_secure(c, client_id, 828) {
        c.metrics().request(828, Outcome::Refused);
        log_usage(conn.client_lookup(ticket, None));
        return;
    }
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

/// The legacy lock (docs/PROTOCOL.md, section 10.4): a client that signed in
/// securely once is served in the legacy protocol only if it asked to be. A store
/// that cannot tell refuses too: the lock must not open on an error.
fn went_secure(c: &mut Connection, client_id: ClientId, code: u16) -> bool {
    let refused = match c.storage().meta.secure_status(&client_id) {
        Ok(status) => status.is_some_and(|s| s.legacy_refused()),
        Err(e) => {
            error!(peer = %c.peer(), "cannot read the client's secure status: {e}");
            true
        }
    };
    if refused {
        warn!(peer = %c.peer(), client = %short_id(&client_id), code,
              "legacy request refused for a client that went secure (it signs in with its key inside TLS; `client --keep-legacy` reopens the legacy protocol)");
    }
    refused
}

/// Junk under a key this connection looked up (possibly a stranger's): counted
/// against the id, the key stays.
fn decryption_failed(c: &mut Connection, client_id: ClientId) {
    c.limits()
        .decryption_failed(client_id, std::time::Instant::now());
    c.strain(
        client_id,
        Strain::DecryptionFailure,
        "828 failed to decrypt under this client id's key (sent by a connection that \
         did not obtain the key: the key stays)",
    );
}

/// Junk under a key issued on this connection: the key is revoked.
fn revoke_key(c: &mut Connection, client_id: ClientId) {
    let peer = c.peer();
    c.limits()
        .decryption_failed(client_id, std::time::Instant::now());
    c.metrics()
        .client_strain(&short_id(&client_id), Strain::DecryptionFailure.label());
    warn!(%peer, client = %short_id(&client_id), "AES key revoked after a decryption failure");
    if let Err(e) = c.storage().meta.revoke_aes_key(&client_id) {
        error!(%peer, "{e}");
    }
}
