//! The server's TLS identity: the certificate and key secure mode serves.
//!
//! By default it lives in the data folder, `tls/identity.crt` and
//! `tls/identity.key` (PEM), made at the first start: an ECDSA P-256 key and a
//! self-signed certificate for `localhost` and the host's name. Clients pin its
//! [`Fingerprint`] (what `openssl x509 -noout -fingerprint -sha256` prints), so a
//! self-signed certificate needs no CA and its dates do not matter. `--tls-cert`
//! and `--tls-key` serve CA-issued files instead (a fleet's servers share one
//! identity); `--no-tls` serves the legacy protocol only.
//!
//! The key is never readable by anyone but the server's user: it is created with
//! mode 0600 (never wider, not even for an instant), written to a temporary file
//! in the same folder, fsynced, renamed into place and the folder fsynced, so a
//! crash leaves either no key or a whole one. A key file whose mode lets its group
//! or others read it is refused, with the `chmod` that fixes it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use thiserror::Error;
use transport_interface::tls::server::{server_config_from_pem, ServerConfigError};
use transport_interface::tls::{rustls, Fingerprint};

/// The folder of the identity, in the data folder.
pub const TLS_DIR: &str = "tls";
/// The certificate (PEM), in [`TLS_DIR`].
pub const CERT_FILE: &str = "identity.crt";
/// The private key (PEM, PKCS#8), in [`TLS_DIR`].
pub const KEY_FILE: &str = "identity.key";

/// Where the identity comes from (`--tls-cert`/`--tls-key`, `--no-tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `tls/identity.crt` and `tls/identity.key` in the data folder, made if absent.
    Folder,
    /// Files the operator gave (a CA-issued certificate, its chain, and its key).
    Given {
        /// The certificate chain, end-entity first.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// No TLS: legacy only.
    Off,
}

/// The identity a server serves.
pub struct Identity {
    /// The configuration for [`ServerOptions::tls`](transport_interface::ServerOptions::tls).
    pub config: Arc<rustls::ServerConfig>,
    /// The end-entity certificate's fingerprint.
    pub fingerprint: Fingerprint,
    /// The certificate file.
    pub cert: PathBuf,
    /// Whether this start made it.
    pub created: bool,
}

/// Why the identity could not be used.
#[derive(Debug, Error)]
pub enum IdentityError {
    /// A file could not be read, created or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key file's mode lets others than its owner read it.
    #[error(
        "{path} has mode {mode:04o}: a private key must be readable by the server's user \
         alone. Run `chmod 600 {path}` (and make a new identity if others may have read it)"
    )]
    LoosePermissions {
        /// The key file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// One of the pair is there and the other is not.
    #[error(
        "{present} exists but {missing} does not: restore {missing}, or remove {present} \
         to make a new identity (clients that pinned the old one must then pin the new)"
    )]
    Half {
        /// The file found.
        present: String,
        /// The file missing.
        missing: String,
    },
    /// The certificate and key do not make a TLS configuration.
    #[error("{cert} and {key}: {source}")]
    Unusable {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// Why.
        source: ServerConfigError,
    },
    /// rcgen could not make a key or a certificate.
    #[error("cannot make a TLS identity: {0}")]
    Generate(#[from] rcgen::Error),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The identity `source` names, for a server on the data folder `dir`: `None`
/// with [`Source::Off`]. The folder's own is made when neither file exists.
pub fn load_or_create(dir: &Path, source: &Source) -> Result<Option<Identity>, IdentityError> {
    match source {
        Source::Off => Ok(None),
        Source::Given { cert, key } => load(cert, key, false).map(Some),
        Source::Folder => {
            // Whole paths in the log and in errors, whatever the working folder.
            let tls = std::fs::canonicalize(dir)
                .unwrap_or_else(|_| dir.to_path_buf())
                .join(TLS_DIR);
            let (cert, key) = (tls.join(CERT_FILE), tls.join(KEY_FILE));
            match (cert.exists(), key.exists()) {
                (true, true) => load(&cert, &key, false).map(Some),
                (false, false) => {
                    create(&tls)?;
                    load(&cert, &key, true).map(Some)
                }
                (true, false) => Err(half(&cert, &key)),
                (false, true) => Err(half(&key, &cert)),
            }
        }
    }
}

fn half(present: &Path, missing: &Path) -> IdentityError {
    IdentityError::Half {
        present: present.display().to_string(),
        missing: missing.display().to_string(),
    }
}

/// The fingerprint of the end-entity certificate (the first) in the PEM file `cert`.
pub fn fingerprint_of(cert: &Path) -> Result<Fingerprint, IdentityError> {
    let pem = std::fs::read(cert).map_err(io_error(cert))?;
    end_entity(&pem)
        .map(|der| Fingerprint::of_certificate(&der))
        .ok_or_else(|| IdentityError::Unusable {
            cert: cert.display().to_string(),
            key: "-".into(),
            source: ServerConfigError::NoCertificate,
        })
}

fn end_entity(pem: &[u8]) -> Option<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem).next()?.ok()
}

fn load(cert: &Path, key: &Path, created: bool) -> Result<Identity, IdentityError> {
    let mode = std::fs::metadata(key)
        .map_err(io_error(key))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        // The whole path, so that the chmod is right from any folder.
        let whole = std::fs::canonicalize(key).unwrap_or_else(|_| key.to_path_buf());
        return Err(IdentityError::LoosePermissions {
            path: whole.display().to_string(),
            mode: mode & 0o7777,
        });
    }
    let cert_pem = std::fs::read(cert).map_err(io_error(cert))?;
    let key_pem = std::fs::read(key).map_err(io_error(key))?;
    let unusable = |source| IdentityError::Unusable {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        source,
    };
    let config = server_config_from_pem(&cert_pem, &key_pem).map_err(unusable)?;
    let der = end_entity(&cert_pem).ok_or_else(|| unusable(ServerConfigError::NoCertificate))?;
    Ok(Identity {
        config,
        fingerprint: Fingerprint::of_certificate(&der),
        cert: cert.to_path_buf(),
        created,
    })
}

/// The names the self-signed certificate is for: `localhost`, and the host's name
/// when it is one a certificate can hold.
fn names() -> Vec<String> {
    let mut names = vec!["localhost".to_string()];
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let usable = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !host.starts_with(['-', '.']);
    if usable && !host.eq_ignore_ascii_case("localhost") {
        names.push(host);
    }
    names
}

/// Makes a key and a self-signed certificate in `tls` (the key first: a crash
/// between the two leaves a key without a certificate, which the next start
/// reports rather than silently replacing).
fn create(tls: &Path) -> Result<(), IdentityError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(tls)
        .map_err(io_error(tls))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let names = names();
    let mut params = CertificateParams::new(names.clone())?;
    let host = names.last().map_or("localhost", String::as_str);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("file server {host}"));
    let cert = params.self_signed(&key)?;
    write_durably(tls, KEY_FILE, key.serialize_pem().as_bytes(), 0o600)?;
    write_durably(tls, CERT_FILE, cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

/// Writes `name` in `dir` whole or not at all: a temporary file created with
/// `mode` (so a key is never readable by others, not even while it is written),
/// fsynced, renamed into place, and the folder fsynced so the rename survives a
/// crash.
fn write_durably(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), IdentityError> {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let path = dir.join(name);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io_error(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), &Source::Folder)
            .unwrap()
            .unwrap();
        assert!(first.created);
        let key = dir.path().join(TLS_DIR).join(KEY_FILE);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_create(dir.path(), &Source::Folder)
            .unwrap()
            .unwrap();
        assert!(!again.created);
        assert_eq!(again.fingerprint, first.fingerprint);
        assert_eq!(fingerprint_of(&first.cert).unwrap(), first.fingerprint);
        // No temporary file left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path().join(TLS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[test]
    fn a_readable_key_or_half_an_identity_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path(), &Source::Folder).unwrap();
        let key = dir.path().join(TLS_DIR).join(KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = load_or_create(dir.path(), &Source::Folder)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(&format!("chmod 600 {}", key.display())),
            "{err}"
        );
        std::fs::remove_file(dir.path().join(TLS_DIR).join(CERT_FILE)).unwrap();
        let err = load_or_create(dir.path(), &Source::Folder).err().unwrap();
        assert!(matches!(err, IdentityError::Half { .. }), "{err}");
        assert_eq!(
            load_or_create(dir.path(), &Source::Off)
                .unwrap()
                .map(|_| ()),
            None
        );
    }
}
