//! Log lines every transport shares: one form for client ids, and the level of a
//! closed connection by who was at fault.

use std::net::SocketAddr;

use protocol_core::{ClientId, PeerError};
use tracing::{info, warn};

/// The first 8 hex digits of a client id ("-" for none): ids are the only
/// credential of some requests, so logs never carry them whole.
pub fn short_id(id: Option<ClientId>) -> String {
    match id {
        Some(id) => id.to_hex().chars().take(8).collect(),
        None => "-".into(),
    }
}

/// Logs why the core closed a connection: a protocol violation at WARN, with the
/// peer and the reason; a timeout or a peer that went away at INFO.
pub fn closing(peer: SocketAddr, client: Option<ClientId>, e: &PeerError) {
    let client = short_id(client);
    match e {
        PeerError::Timeout(_) | PeerError::UnexpectedEof | PeerError::KeyExpired => {
            info!(%peer, %client, "closing: {e}")
        }
        _ => warn!(%peer, %client, "protocol violation, closing: {e}"),
    }
}
