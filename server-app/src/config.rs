//! Where a server keeps its state: `--database` and `--files`.
//!
//! With neither, the data folder holds everything (`defensive.db`, `uploads/`,
//! `objects/`), exactly as a single server always has. A fleet of servers shares a
//! PostgreSQL database (metadata and the uploads in progress) and an S3-compatible
//! store (contents).

use std::path::PathBuf;

use thiserror::Error;

/// The metadata backend (`--database`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// `sqlite:PATH`: an SQLite file (the default is `defensive.db` in the data folder).
    Sqlite(PathBuf),
    /// `postgres://...` or `postgresql://...`: a PostgreSQL server shared by a fleet.
    Postgres(DatabaseUrl),
}

/// A PostgreSQL URL that may hold a password: shown (`Display`, `Debug`, errors) with
/// the password replaced by `***`; [`expose`](Self::expose) gives it whole, to connect.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL as given, password included: for the connection only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the URL itself holds a password (then it is in the process arguments,
    /// which any local user can read).
    pub fn has_password(&self) -> bool {
        redact(&self.0) != self.0
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> DatabaseUrl {
        DatabaseUrl(url.to_string())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({:?})", redact(&self.0))
    }
}

/// `text` with any password of a URL (`scheme://user:PASSWORD@host`) or of the
/// key=value form (`password=...`) replaced by `***`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    if let Some((scheme, rest)) = text.split_once("://") {
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                out = format!("{scheme}://{}:***{}", &rest[..colon], &rest[at..]);
            }
        }
    }
    // Query parameters and key=value strings: password=... up to & or whitespace.
    let mut redacted = String::new();
    let mut rest = out.as_str();
    while let Some(i) = rest.find("password=") {
        let start = i + "password=".len();
        redacted.push_str(&rest[..start]);
        redacted.push_str("***");
        let end = rest[start..]
            .find(|c: char| c == '&' || c.is_whitespace())
            .map_or(rest.len(), |e| start + e);
        rest = &rest[end..];
    }
    redacted.push_str(rest);
    redacted
}

/// The contents backend (`--files`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Files {
    /// A local folder (the default is the data folder).
    Dir(PathBuf),
    /// `s3://bucket/prefix`: an S3-compatible store; endpoint and credentials from the
    /// usual AWS environment variables.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix inside it (may be empty).
        prefix: String,
    },
}

/// A `--database` or `--files` value that means nothing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Neither `sqlite:PATH` nor a PostgreSQL URL.
    #[error("--database {0:?}: expected sqlite:PATH or postgres://user@host:port/database")]
    Database(String),
    /// An `s3://` URL without a bucket, or another scheme.
    #[error("--files {0:?}: expected a folder or s3://bucket/prefix")]
    Files(String),
    /// A fleet backend in a server built without it.
    #[error(
        "{0} needs a server built with the fleet backends: \
         cargo install --path server-app --features fleet"
    )]
    NotBuilt(&'static str),
}

/// Refuses what this build leaves out: PostgreSQL, S3 and the metrics listener come
/// with the `fleet` cargo feature only.
pub fn fleet_built(what: &'static str) -> Result<(), ConfigError> {
    if cfg!(feature = "fleet") {
        Ok(())
    } else {
        Err(ConfigError::NotBuilt(what))
    }
}

impl Database {
    /// Parses a `--database` value.
    pub fn parse(s: &str) -> Result<Database, ConfigError> {
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(ConfigError::Database(s.to_string()));
            }
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let rest = s.split_once("://").map(|(_, r)| r).unwrap_or("");
            if rest.is_empty() || rest.starts_with('/') && rest.len() == 1 {
                return Err(ConfigError::Database(redact(s)));
            }
            return Ok(Database::Postgres(DatabaseUrl(s.to_string())));
        }
        Err(ConfigError::Database(redact(s)))
    }
}

impl Files {
    /// Parses a `--files` value.
    pub fn parse(s: &str) -> Result<Files, ConfigError> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid = !bucket.is_empty()
                && bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
            if !valid {
                return Err(ConfigError::Files(s.to_string()));
            }
            return Ok(Files::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_end_matches('/').to_string(),
            });
        }
        if s.is_empty() || s.contains("://") {
            return Err(ConfigError::Files(s.to_string()));
        }
        Ok(Files::Dir(PathBuf::from(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_values() {
        assert_eq!(
            Database::parse("sqlite:/var/lib/s/defensive.db"),
            Ok(Database::Sqlite("/var/lib/s/defensive.db".into()))
        );
        assert_eq!(
            Database::parse("sqlite:data.db"),
            Ok(Database::Sqlite("data.db".into()))
        );
        let url = "postgres://app@127.0.0.1:5432/files";
        assert_eq!(Database::parse(url), Ok(Database::Postgres(url.into())));
        for bad in ["", "sqlite:", "mysql://x", "defensive.db", "postgres://"] {
            assert!(Database::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn files_values() {
        assert_eq!(
            Files::parse("/srv/files"),
            Ok(Files::Dir("/srv/files".into()))
        );
        assert_eq!(
            Files::parse("s3://fleet/a/b/"),
            Ok(Files::S3 {
                bucket: "fleet".into(),
                prefix: "a/b".into()
            })
        );
        assert_eq!(
            Files::parse("s3://fleet"),
            Ok(Files::S3 {
                bucket: "fleet".into(),
                prefix: String::new()
            })
        );
        for bad in ["", "s3://", "s3:///x", "s3://Bad_Bucket/x", "gs://b/x"] {
            assert!(Files::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_password_never_shows() {
        for (url, shown) in [
            (
                "postgres://app:s3cr3t@db.example:5432/files",
                "postgres://app:***@db.example:5432/files",
            ),
            (
                "postgresql://app:s3cr3t@db/files?sslmode=require",
                "postgresql://app:***@db/files?sslmode=require",
            ),
            (
                "postgres://app@db/files?password=s3cr3t&sslmode=require",
                "postgres://app@db/files?password=***&sslmode=require",
            ),
            ("postgres://app@db/files", "postgres://app@db/files"),
        ] {
            let Ok(Database::Postgres(parsed)) = Database::parse(url) else {
                panic!("{url}")
            };
            assert_eq!(parsed.to_string(), shown);
            let debug = format!("{:?}", Database::Postgres(parsed.clone()));
            assert!(!debug.contains("s3cr3t"), "{debug}");
            assert_eq!(parsed.expose(), url);
            assert_eq!(parsed.has_password(), url.contains("s3cr3t"));
        }
        let bad = Database::parse("postgres://").unwrap_err().to_string();
        assert!(!bad.contains("s3cr3t"));
        assert_eq!(
            redact("host=db user=app password=s3cr3t dbname=files"),
            "host=db user=app password=*** dbname=files"
        );
    }
}
