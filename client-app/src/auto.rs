//! `--dialect auto`: which preset to try next, from how an upload failed.
//!
//! The deployed servers of docs/PROTOCOL.md section 8 each fail our spec client in a
//! way of their own, always after the key exchange worked and the file began:
//!
//! | server | with the spec client | preset |
//! |---|---|---|
//! | A, C (one `recv` per request) | the connection is reset (C: after a 1607) | one-recv |
//! | B (total first, per-packet encryption) | 1607 to every send of the file | total-first-per-packet |
//! | D (fixed 1,291-byte 828) | no answer at all, the connection stays open | padded |
//!
//! A failure before the file began (refused name, unknown client, busy server) says
//! nothing about the dialect and is never retried here. What may change between tries
//! is only the shape of the requests: the server, the identity, the checksum and the
//! key size stay as they were, and only a verified checksum ends a run as a success.

use std::time::Duration;

use protocol_core::wire::RequestCode;
use protocol_core::{ClientFailure, PeerError};
use transport_std::ClientError;

use crate::dialect_presets::Preset;
use crate::explain::Seen;

/// How long a try under a dialect not yet known to work with this server waits for
/// an answer or a write before it counts as "no answer" (server D), plus
/// [`PROBE_PER_MIB`] per MiB of the file: a slow server's checksum of a big file must
/// not look like silence.
pub const PROBE: Duration = Duration::from_secs(5);

/// What [`PROBE`] adds per MiB of the file.
pub const PROBE_PER_MIB: Duration = Duration::from_secs(2);

/// The wait of a probing try for a file of `size` bytes, never above `timeout`.
pub fn probe_timeout(size: u64, timeout: Duration) -> Duration {
    let mib = u32::try_from(size >> 20).unwrap_or(u32::MAX);
    PROBE
        .saturating_add(PROBE_PER_MIB.saturating_mul(mib))
        .min(timeout)
}

/// The preset a failure points to, and the failure in words; `None` when the failure
/// is not one a dialect explains.
pub fn symptom(err: &ClientError, seen: &Seen) -> Option<(Preset, &'static str)> {
    // Before the key exchange nothing of the file's shape was sent; after a checksum
    // mismatch the server read the whole file.
    if seen.key_at.is_none() || !seen.uploading || seen.mismatches > 0 {
        return None;
    }
    match err {
        ClientError::Timeout(_) => Some((
            Preset::Padded,
            "the server gave no answer to the file and kept the connection open",
        )),
        ClientError::Failure(ClientFailure::ServerRefused {
            request: RequestCode::SendFile,
            ..
        }) => Some((
            Preset::TotalFirstPerPacket,
            "the server refused every send of the file (1607)",
        )),
        ClientError::Io(_)
        | ClientError::Failure(ClientFailure::Peer(PeerError::UnexpectedEof)) => Some((
            Preset::OneRecv,
            "the server closed or reset the connection during the upload",
        )),
        _ => None,
    }
}

/// The next preset to try after `err`, with the failure in words: the one the
/// failure points to, if not yet tried. `None` when the failure is not a dialect's,
/// or its preset was tried already: a network cut or a full disk looks like a
/// dialect once, and then the run ends with the failure as it is (a run makes at most
/// one try per preset, so at most four in all).
pub fn next(err: &ClientError, seen: &Seen, tried: &[Preset]) -> Option<(Preset, &'static str)> {
    let (pointed, why) = symptom(err, seen)?;
    (!tried.contains(&pointed)).then_some((pointed, why))
}

/// The presets to name when auto found none that works.
pub fn presets_to_try(tried: &[Preset]) -> String {
    let names: Vec<&str> = tried.iter().map(|p| p.name()).collect();
    format!(
        "--dialect auto tried {}; if this server is one of the deployed variants, try \
         --dialect one-recv, total-first-per-packet, padded or per-connection, or the \
         single dialect options of `client --help` (docs/PROTOCOL.md section 8)",
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn uploading() -> Seen {
        Seen {
            key_at: Some(Instant::now()),
            uploading: true,
            ..Seen::default()
        }
    }

    #[test]
    fn each_deployed_failure_points_to_its_preset_and_tries_are_bounded() {
        let timeout = ClientError::Timeout(Duration::from_secs(5));
        let reset = ClientError::Io(std::io::ErrorKind::ConnectionReset.into());
        let refused = ClientError::Failure(ClientFailure::ServerRefused {
            request: RequestCode::SendFile,
            last: protocol_core::wire::ResponseCode::GeneralError,
            attempts: 3,
        });
        let seen = uploading();
        let spec = [Preset::Spec];
        assert_eq!(
            next(&timeout, &seen, &spec).map(|n| n.0),
            Some(Preset::Padded)
        );
        assert_eq!(
            next(&reset, &seen, &spec).map(|n| n.0),
            Some(Preset::OneRecv)
        );
        assert_eq!(
            next(&refused, &seen, &spec).map(|n| n.0),
            Some(Preset::TotalFirstPerPacket)
        );
        // Before the file began, nothing points to a dialect.
        assert!(next(&reset, &Seen::default(), &spec).is_none());
        // Each preset at most once.
        assert!(next(&reset, &seen, &[Preset::Spec, Preset::OneRecv]).is_none());
    }

    #[test]
    fn the_probe_grows_with_the_file_and_stays_within_the_timeout() {
        let long = Duration::from_secs(600);
        assert_eq!(probe_timeout(0, long), PROBE);
        assert!(probe_timeout(50 << 20, long) > PROBE);
        assert_eq!(
            probe_timeout(0, Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }
}
