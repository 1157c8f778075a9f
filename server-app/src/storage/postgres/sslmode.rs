//! What a database URL asks of TLS: `sslmode` and `sslrootcert`, read (and taken out
//! of the URL, since `tokio-postgres` knows neither `verify-ca`, `verify-full` nor
//! `sslrootcert`) the way libpq reads them.
//!
//! | `sslmode`     | encrypted            | certificate checked              |
//! |---------------|----------------------|----------------------------------|
//! | `disable`     | never                | -                                |
//! | `prefer`      | when the server can  | no                               |
//! | `require`     | always               | no (chain only with a CA file)   |
//! | `verify-ca`   | always               | chain, against the CA file       |
//! | `verify-full` | always               | chain and the host name          |
//!
//! Unset, the mode is `verify-full` when a CA file is given and `prefer` otherwise
//! (libpq's default). The CA file is the URL's `sslrootcert`, else the one given
//! with [`use_ca_file`] (`--database-ca-file`), else `PGSSLROOTCERT`; the mode is
//! the URL's, else `PGSSLMODE`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use thiserror::Error;

/// How a connection uses TLS (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, plain otherwise; the certificate is not checked.
    Prefer,
    /// TLS or no connection; the certificate is not checked (an attacker on the path
    /// can still pose as the database).
    Require,
    /// TLS, with a certificate issued under the CA file; any host name.
    VerifyCa,
    /// TLS, with a certificate issued under the CA file for the host connected to.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's names.
    pub fn parse(s: &str) -> Result<SslMode, TlsSettingsError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(TlsSettingsError::Mode(other.to_string())),
        })
    }

    /// libpq's name.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What `tokio-postgres` is told: it negotiates, this crate's connector verifies.
    pub fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A TLS setting that cannot be used. Never holds a password (the URL is not
/// repeated).
#[derive(Debug, Error)]
pub enum TlsSettingsError {
    /// Not one of libpq's five modes.
    #[error("sslmode={0:?}: expected disable, prefer, require, verify-ca or verify-full")]
    Mode(String),
    /// `verify-ca` or `verify-full` with nothing to verify against.
    #[error(
        "sslmode={0} checks the database's certificate, but no CA file is given: add \
         sslrootcert=PATH to the --database URL or use --database-ca-file PATH"
    )]
    NoCaFile(SslMode),
    /// A libpq TLS parameter this server does not implement.
    #[error("{0} in the database URL is not supported (client certificates and revocation lists are not implemented)")]
    Unsupported(String),
    /// `sslrootcert=system`: no system store is used.
    #[error("sslrootcert=system is not supported: give the CA file that issued the database's certificate")]
    SystemRoots,
    /// A parameter value that is not valid percent-encoded UTF-8.
    #[error("{0} in the database URL is not valid percent-encoded UTF-8")]
    Encoding(&'static str),
    /// The CA file could not be read.
    #[error("the CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The CA file given apart from the URL (`--database-ca-file`).
static CA_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Uses `path` as the CA file of every database URL without `sslrootcert`
/// (`--database-ca-file`). Set once, before connecting; a second call changes
/// nothing (false).
pub fn use_ca_file(path: PathBuf) -> bool {
    CA_FILE.set(path).is_ok()
}

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The `--database` URL.
    Url,
    /// `PGSSLMODE` in the environment.
    Environment,
    /// Not given: the default.
    Default,
}

/// What a URL asks of TLS, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The mode in force.
    pub mode: SslMode,
    /// The mode as asked (`require` with a CA file is in force as `verify-ca`).
    pub asked_mode: SslMode,
    /// Where the mode came from.
    pub origin: Origin,
    /// The CA file to check certificates against (`None`: not checked).
    pub ca_file: Option<PathBuf>,
}

impl TlsSettings {
    /// How the mode was asked for, as an error message says it.
    pub fn asked(&self) -> String {
        let asked = match self.origin {
            Origin::Url => format!("the --database URL asks sslmode={}", self.asked_mode),
            Origin::Environment => format!("PGSSLMODE asks sslmode={}", self.asked_mode),
            Origin::Default => format!("sslmode={} (the default)", self.asked_mode),
        };
        if self.mode == self.asked_mode {
            asked
        } else {
            format!("{asked} (in force: {}, with the CA file)", self.mode)
        }
    }
}

/// The TLS parameters taken out of a URL.
#[derive(Debug, Default, PartialEq, Eq)]
struct Taken {
    mode: Option<String>,
    root_cert: Option<String>,
}

/// `url` without its `sslmode` and `sslrootcert` (what `tokio-postgres` parses), and
/// the TLS settings it asks for, with the environment and `--database-ca-file`.
pub fn split(url: &str) -> Result<(String, TlsSettings), TlsSettingsError> {
    let (rest, taken) = take_params(url)?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (mode, origin) = match (taken.mode, env("PGSSLMODE")) {
        (Some(m), _) => (Some(SslMode::parse(&m)?), Origin::Url),
        (None, Some(m)) => (Some(SslMode::parse(&m)?), Origin::Environment),
        (None, None) => (None, Origin::Default),
    };
    let root_cert = match taken.root_cert {
        Some(path) => Some(PathBuf::from(path)),
        None => CA_FILE
            .get()
            .cloned()
            .or_else(|| env("PGSSLROOTCERT").map(PathBuf::from)),
    };
    if root_cert.as_deref() == Some(Path::new("system")) {
        return Err(TlsSettingsError::SystemRoots);
    }
    let settings = resolve(mode, origin, root_cert)?;
    Ok((rest, settings))
}

/// The mode in force and whether the CA file is used (see the module's table).
fn resolve(
    mode: Option<SslMode>,
    origin: Origin,
    root_cert: Option<PathBuf>,
) -> Result<TlsSettings, TlsSettingsError> {
    let asked_mode = match (mode, &root_cert) {
        (Some(m), _) => m,
        (None, Some(_)) => SslMode::VerifyFull,
        (None, None) => SslMode::Prefer,
    };
    let ca_file = match asked_mode {
        SslMode::Disable | SslMode::Prefer => None,
        // As libpq: with a CA file, require checks the chain (verify-ca).
        SslMode::Require => root_cert,
        SslMode::VerifyCa | SslMode::VerifyFull => {
            Some(root_cert.ok_or(TlsSettingsError::NoCaFile(asked_mode))?)
        }
    };
    let mode = match (asked_mode, &ca_file) {
        (SslMode::Require, Some(_)) => SslMode::VerifyCa,
        (m, _) => m,
    };
    Ok(TlsSettings {
        mode,
        asked_mode,
        origin,
        ca_file,
    })
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL's query or a
/// key=value string (unquoted values only); refuses libpq's other TLS parameters.
fn take_params(url: &str) -> Result<(String, Taken), TlsSettingsError> {
    const UNSUPPORTED: [&str; 5] = ["sslcert", "sslkey", "sslpassword", "sslcrl", "sslcrldir"];
    let mut taken = Taken::default();
    let mut take = |key: &str, value: String| -> Result<bool, TlsSettingsError> {
        match key {
            "sslmode" => taken.mode = Some(value),
            "sslrootcert" => taken.root_cert = Some(value),
            k if UNSUPPORTED.contains(&k) => return Err(TlsSettingsError::Unsupported(k.into())),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_string(), taken));
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = match key {
                "sslmode" => decode(value, "sslmode")?,
                "sslrootcert" => decode(value, "sslrootcert")?,
                _ => String::new(),
            };
            if !take(key, value)? {
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            if !take(key, value.to_string())? {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    Ok((rest, taken))
}

/// Percent-decodes a URL query value.
fn decode(value: &str, what: &'static str) -> Result<String, TlsSettingsError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .ok_or(TlsSettingsError::Encoding(what))?;
                let hex = std::str::from_utf8(hex).map_err(|_| TlsSettingsError::Encoding(what))?;
                let b =
                    u8::from_str_radix(hex, 16).map_err(|_| TlsSettingsError::Encoding(what))?;
                out.push(b);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| TlsSettingsError::Encoding(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: Option<SslMode>, ca: Option<&str>) -> TlsSettings {
        resolve(mode, Origin::Url, ca.map(PathBuf::from)).unwrap()
    }

    #[test]
    fn modes_and_the_ca_file() {
        let ca = Some("/etc/db-ca.pem");
        assert_eq!(settings(None, None).mode, SslMode::Prefer);
        assert_eq!(settings(None, ca).mode, SslMode::VerifyFull);
        assert_eq!(
            settings(Some(SslMode::Require), None).mode,
            SslMode::Require
        );
        let require = settings(Some(SslMode::Require), ca);
        assert_eq!(require.mode, SslMode::VerifyCa);
        assert_eq!(
            require.asked(),
            "the --database URL asks sslmode=require (in force: verify-ca, with the CA file)"
        );
        assert_eq!(settings(Some(SslMode::Prefer), ca).ca_file, None);
        assert_eq!(settings(Some(SslMode::Disable), ca).ca_file, None);
        assert_eq!(
            settings(Some(SslMode::VerifyFull), ca).ca_file,
            Some(PathBuf::from("/etc/db-ca.pem"))
        );
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let e = resolve(Some(mode), Origin::Url, None).unwrap_err();
            assert!(e.to_string().contains("--database-ca-file"), "{e}");
        }
        assert!(SslMode::parse("allow").is_err());
    }

    #[test]
    fn tls_parameters_leave_the_url() {
        let (rest, taken) = take_params(
            "postgres://app:pw@db:5432/files?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca%20file.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://app:pw@db:5432/files?application_name=x");
        assert_eq!(taken.mode.as_deref(), Some("verify-full"));
        assert_eq!(taken.root_cert.as_deref(), Some("/etc/ca file.pem"));
        let (rest, taken) = take_params("postgres://db/files?sslmode=require").unwrap();
        assert_eq!(rest, "postgres://db/files");
        assert_eq!(taken.mode.as_deref(), Some("require"));
        let (rest, taken) =
            take_params("host=db sslmode=verify-ca sslrootcert=/ca.pem dbname=files").unwrap();
        assert_eq!(rest, "host=db dbname=files");
        assert_eq!(taken.root_cert.as_deref(), Some("/ca.pem"));
        assert!(take_params("postgres://db/files?sslcert=/c.pem").is_err());
        assert!(take_params("postgres://db/files?sslrootcert=%ZZ").is_err());
        assert_eq!(
            take_params("postgres://db/f").unwrap(),
            ("postgres://db/f".to_string(), Taken::default())
        );
    }
}
