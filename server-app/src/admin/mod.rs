//! Operator commands on a data folder: listings, removing a client, deleting a file,
//! pruning unverified files, listing and restoring versions, and the folder's status. With `--database` and `--files`
//! (a fleet's PostgreSQL and object store) every command but `status` works on those.
//!
//! They never create or migrate anything: a folder without `defensive.db`, or a
//! PostgreSQL database without the servers' tables, is an error. They work
//! while a server runs on the folder: SQLite in WAL mode lets them read beside it, each
//! change is one short transaction (waiting up to 5 s for the server's), and deletions
//! follow the storage's rules (docs/STORAGE.md): the records go in one transaction, then
//! the objects no record names; a crash in between leaves only unnamed objects, which
//! the next start of the server removes.

mod format;
mod listing;
mod remove;
mod status;
mod versions;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protocol_core::ClientId;
use thiserror::Error;

use crate::app::DB_FILE;
use crate::config::{Database, Files};
use crate::storage::local::LocalContents;
#[cfg(feature = "fleet")]
use crate::storage::postgres::{schema, Pg, PostgresMetadata};
#[cfg(feature = "fleet")]
use crate::storage::s3::S3Contents;
use crate::storage::sqlite::{OpenError, SqliteMetadata};
use crate::storage::{ClientRow, Contents, Metadata, Storage};

pub use format::parse_duration;
pub use listing::{list_clients, list_files};
pub use remove::{delete_file, prune, remove_client};
pub use status::status;
pub use versions::{list_versions, restore};

/// Why an operator command did not do its work; each kind has its own exit code.
#[derive(Debug, Error)]
pub enum AdminError {
    /// Wrong folder, a damaged or newer database, a bad argument (exit 2).
    #[error("{0}")]
    Usage(String),
    /// No client or file matches, or a prefix matches several (exit 3).
    #[error("{0}")]
    NotFound(String),
    /// A change needs confirmation and none was given (exit 4).
    #[error("{0}")]
    NotConfirmed(String),
    /// The database or the contents failed (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl AdminError {
    /// The process exit code of this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            AdminError::Failed(_) => 1,
            AdminError::Usage(_) => 2,
            AdminError::NotFound(_) => 3,
            AdminError::NotConfirmed(_) => 4,
        }
    }
}

impl From<OpenError> for AdminError {
    fn from(e: OpenError) -> AdminError {
        AdminError::Usage(e.to_string())
    }
}

impl From<crate::storage::MetaError> for AdminError {
    fn from(e: crate::storage::MetaError) -> AdminError {
        AdminError::Failed(e.to_string())
    }
}

impl From<crate::storage::commit::StorageError> for AdminError {
    fn from(e: crate::storage::commit::StorageError) -> AdminError {
        AdminError::Failed(e.to_string())
    }
}

impl From<std::io::Error> for AdminError {
    fn from(e: std::io::Error) -> AdminError {
        AdminError::Failed(e.to_string())
    }
}

/// Where an operator command finds the server's stores: the data folder's, or those
/// `--database` and `--files` name, exactly as the server opens them.
#[derive(Debug, Clone)]
pub struct Stores {
    /// The data folder.
    pub dir: PathBuf,
    /// `--database`, when given.
    pub database: Option<Database>,
    /// `--files`, when given.
    pub files: Option<Files>,
    /// Where a server with the same options takes its TLS identity (`status`
    /// shows its fingerprint).
    pub identity: crate::identity::Source,
}

impl Stores {
    /// The data folder's own stores (`defensive.db`, its folders).
    pub fn folder(dir: &Path) -> Stores {
        Stores {
            dir: dir.to_path_buf(),
            database: None,
            files: None,
            identity: crate::identity::Source::Folder,
        }
    }

    /// The SQLite file, when the metadata is in one.
    fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.database {
            None => Some(self.dir.join(DB_FILE)),
            Some(Database::Sqlite(path)) => Some(path.clone()),
            Some(Database::Postgres(_)) => None,
        }
    }
}

/// The metadata, read-only where the backend allows (listings).
fn open_read(at: &Stores) -> Result<Box<dyn Metadata>, AdminError> {
    match (&at.database, at.sqlite_path()) {
        (_, Some(path)) => Ok(Box::new(SqliteMetadata::open_read_only(&path)?)),
        (Some(Database::Postgres(url)), None) => Ok(Box::new(postgres(url.expose())?)),
        (_, None) => Err(AdminError::Usage("no database".into())),
    }
}

/// Without the fleet backends, a PostgreSQL URL is a usage error.
#[cfg(not(feature = "fleet"))]
fn postgres(_url: &str) -> Result<SqliteMetadata, AdminError> {
    Err(AdminError::Usage(
        crate::config::ConfigError::NotBuilt("--database postgres://").to_string(),
    ))
}

/// The fleet's database as it is: a database no server has set up, or one at another
/// schema version, is refused (exit 2), never created or migrated.
#[cfg(feature = "fleet")]
fn postgres(url: &str) -> Result<PostgresMetadata, AdminError> {
    let failed = |e: crate::storage::MetaError| AdminError::Failed(e.to_string());
    let pg = Pg::open(url).map_err(failed)?;
    let known = schema::current_version();
    match pg.schema_version().map_err(failed)? {
        None => Err(AdminError::Usage(
            "the --database has no server tables (no schema_version): not a server's \
             database, or no server has started on it yet (operator commands create nothing)"
                .into(),
        )),
        Some(v) if v > known => Err(AdminError::Usage(format!(
            "the --database has schema version {v}, newer than this server's {known}: \
             use the newer server's operator commands"
        ))),
        Some(v) if v < known => Err(AdminError::Usage(format!(
            "the --database has schema version {v}, older than {known}: start the server \
             once to upgrade it"
        ))),
        Some(_) => Ok(PostgresMetadata::new(Arc::new(pg))),
    }
}

/// The storage for changes, creating nothing.
fn open_write(at: &Stores) -> Result<Storage, AdminError> {
    let meta: Arc<dyn Metadata> = match (&at.database, at.sqlite_path()) {
        (_, Some(path)) => Arc::new(SqliteMetadata::open_existing(&path)?),
        (Some(Database::Postgres(url)), None) => Arc::new(postgres(url.expose())?),
        (_, None) => return Err(AdminError::Usage("no database".into())),
    };
    let contents: Arc<dyn Contents> = match &at.files {
        None => Arc::new(LocalContents::open_existing(&at.dir)),
        Some(Files::Dir(folder)) => Arc::new(LocalContents::open_existing(folder)),
        #[cfg(not(feature = "fleet"))]
        Some(Files::S3 { .. }) => {
            return Err(AdminError::Usage(
                crate::config::ConfigError::NotBuilt("--files s3://").to_string(),
            ))
        }
        #[cfg(feature = "fleet")]
        Some(Files::S3 { bucket, prefix }) => {
            let url = format!("s3://{bucket}/{prefix}");
            Arc::new(S3Contents::open(&url).map_err(|e| {
                AdminError::Failed(format!("cannot use the object store at {url}: {e}"))
            })?)
        }
    };
    Ok(Storage::new(meta, contents))
}

/// The one client that `what` names: a whole id, an id prefix (hex digits), or a name.
/// A prefix or name that matches several clients (a name that is also the start of
/// another client's id included) is refused with the candidates.
fn resolve_client(meta: &dyn Metadata, what: &str) -> Result<ClientRow, AdminError> {
    let clients = meta.clients()?;
    if let Some(id) = ClientId::from_hex(what) {
        return clients
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| AdminError::NotFound(format!("no client with the id {what}")));
    }
    let prefix = what.to_ascii_lowercase();
    let is_hex = !what.is_empty() && what.chars().all(|c| c.is_ascii_hexdigit());
    let mut found: Vec<ClientRow> = clients
        .into_iter()
        .filter(|c| c.name == what || (is_hex && c.id.to_hex().starts_with(&prefix)))
        .collect();
    // A name that is also the start of other clients' ids is ambiguous: picking either
    // would act on a client the operator may not have meant (removal is for good).
    if found.len() > 1 {
        if let Some(named) = found.iter().find(|c| c.name == what) {
            let ids: Vec<String> = found
                .iter()
                .filter(|c| c.id != named.id)
                .map(|c| format!("{} ({})", format::short(&c.id), c.name))
                .collect();
            return Err(AdminError::NotFound(format!(
                "{what:?} is ambiguous: the client named {what:?} (id {}) and the id of {}; \
                 give a longer id prefix or the whole id (list-clients --json shows them)",
                format::short(&named.id),
                ids.join(", ")
            )));
        }
    }
    match found.len() {
        0 => Err(AdminError::NotFound(format!(
            "no client named {what:?} or with an id starting with it (list-clients shows them)"
        ))),
        1 => Ok(found.remove(0)),
        _ => {
            let names: Vec<String> = found
                .iter()
                .map(|c| format!("{} ({})", format::short(&c.id), c.name))
                .collect();
            Err(AdminError::NotFound(format!(
                "{what:?} matches {} clients: {}; give more of the id",
                found.len(),
                names.join(", ")
            )))
        }
    }
}

/// Asks on the terminal; without one, only `--yes` confirms.
fn confirm(question: &str, yes: bool) -> Result<(), AdminError> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(AdminError::NotConfirmed(format!(
            "{question}: not confirmed (stdin is not a terminal); pass --yes to do it"
        )));
    }
    eprint!("{question}? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(AdminError::NotConfirmed(format!(
            "{question}: not confirmed; nothing changed"
        )))
    }
}
