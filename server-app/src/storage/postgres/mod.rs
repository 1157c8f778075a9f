//! PostgreSQL for the metadata of a fleet of servers: a connection pool
//! (`deadpool-postgres` over `tokio-postgres`) on a small tokio runtime owned by the
//! backend, and a way to run a query or a transaction on it from synchronous code.
//!
//! The rest of the server calls [`Metadata`](super::Metadata) synchronously, from
//! threads that may belong to another tokio runtime (the tokio transport runs handlers
//! on `spawn_blocking` threads; `main` may sit inside `#[tokio::main]`). Blocking on a
//! runtime from there panics, so [`Pg::run`] and [`Pg::transact`] spawn the work onto
//! the backend's own runtime and wait for its answer on a standard channel: that works
//! from any thread except one of the backend's own workers.
//!
//! Read-write work goes through [`Pg::transact`] (one SERIALIZABLE transaction,
//! retried from the start when PostgreSQL reports a serialization failure or a
//! deadlock, so each call behaves as if the servers had taken turns) or
//! [`Pg::transact_locked`] (READ COMMITTED, the closure takes row locks; what the hot
//! paths of [`PostgresMetadata`] use, since serializable transactions on small tables
//! conflict even when they touch different rows).
//!
//! Connections use TLS as the URL's `sslmode` asks ([`sslmode`], [`tls`]).

pub mod metadata;
pub mod schema;
pub mod sslmode;
pub mod tls;
pub mod uploads;

use std::future::Future;
use std::pin::Pin;
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::IsolationLevel;

use super::MetaError;

pub use deadpool_postgres::{Object, Transaction};
pub use metadata::PostgresMetadata;
pub use sslmode::{use_ca_file, SslMode, TlsSettings};
pub use tls::MakeRustlsConnect;
pub use tokio_postgres::Error as PgError;
pub use uploads::PgUploads;

/// A boxed, sendable future borrowing for `'a` (what [`Pg::transact`] closures return).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a [`Pg::transact`] closure stopped: PostgreSQL failed, or the closure refused
/// (its transaction is rolled back either way).
#[derive(Debug)]
pub enum TxError {
    /// A query failed (retried when it lost a race: [`is_conflict`]).
    Pg(PgError),
    /// The closure decided to give up: nothing it did is kept.
    Refused(MetaError),
}

impl From<PgError> for TxError {
    fn from(e: PgError) -> TxError {
        TxError::Pg(e)
    }
}

/// How many times a transaction is tried when it keeps losing races.
const ATTEMPTS: u32 = 60;

/// Connections per server process (each handler thread holds at most one at a time).
const POOL_SIZE: usize = 16;

/// A pool of PostgreSQL connections and the runtime that drives them.
pub struct Pg {
    pool: Pool,
    target: Arc<Target>,
    // `Some` until dropped: a runtime is shut down in the background, because dropping
    // it the ordinary way blocks, which panics inside another runtime.
    rt: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg")
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// The password given apart from the URL (`--database-password-file`), for every
/// connection whose URL has none.
static PASSWORD: OnceLock<String> = OnceLock::new();

/// Uses `password` for every database URL without one (`--database-password-file`):
/// a password in the arguments is readable by any local user (`ps`). Set once, before
/// connecting; a second call changes nothing (false).
pub fn use_password(password: String) -> bool {
    PASSWORD.set(password).is_ok()
}

/// The connection settings of `url`: its own password, else the one given with
/// [`use_password`], else `PGPASSWORD` from the environment (as libpq does). Errors
/// never repeat a password. TLS: see [`connector`].
pub fn connection_config(url: &str) -> Result<tokio_postgres::Config, MetaError> {
    connection_settings(url).map(|(config, _)| config)
}

/// The connection settings of `url` and the TLS connector for its `sslmode` and CA
/// file (the URL's `sslrootcert`, else [`use_ca_file`], else `PGSSLROOTCERT`):
/// `config.connect(tls)`.
pub fn connector(
    url: &str,
) -> Result<(tokio_postgres::Config, MakeRustlsConnect, TlsSettings), MetaError> {
    let (config, settings) = connection_settings(url)?;
    let tls = MakeRustlsConnect::new(&settings)
        .map_err(|e| MetaError::backend("setting up TLS to the database", e))?;
    Ok((config, tls, settings))
}

fn connection_settings(url: &str) -> Result<(tokio_postgres::Config, TlsSettings), MetaError> {
    let (url, settings) =
        sslmode::split(url).map_err(|e| MetaError::backend("reading the database URL", e))?;
    let mut config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
        MetaError::backend(
            "reading the database URL",
            crate::config::redact(&e.to_string()),
        )
    })?;
    config.ssl_mode(settings.mode.negotiation());
    if config.get_password().is_none() {
        let from_env = || std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty());
        if let Some(password) = PASSWORD.get().cloned().or_else(from_env) {
            config.password(password);
        }
    }
    Ok((config, settings))
}

/// Where the pool connects and what it asks of TLS, for error messages.
#[derive(Debug)]
struct Target {
    host: String,
    settings: TlsSettings,
}

impl Target {
    fn of(config: &tokio_postgres::Config, settings: TlsSettings) -> Target {
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        };
        let host = match config.get_ports().first() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        Target { host, settings }
    }

    /// A failed connection as a [`MetaError`] that says what TLS had to do with it.
    fn pool_error(&self, what: &'static str, e: deadpool_postgres::PoolError) -> MetaError {
        let deadpool_postgres::PoolError::Backend(e) = e else {
            return MetaError::backend(what, e);
        };
        // tokio-postgres's own words when the server answers an SSLRequest with 'N'
        // under `require` (postgres_tls.rs fails if they change).
        let refused_tls = std::error::Error::source(&e)
            .is_some_and(|s| s.to_string() == "server does not support TLS");
        if refused_tls {
            return MetaError::backend(
                what,
                format!(
                    "the database at {} refused TLS, but {}",
                    self.host,
                    self.settings.asked()
                ),
            );
        }
        let wants_tls = e.as_db_error().is_some_and(|db| {
            *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                && db.message().ends_with("no encryption")
        });
        match pg_error(what, &e) {
            MetaError::Backend { what, detail } if wants_tls => MetaError::Backend {
                what,
                detail: format!(
                    "{detail}: the database at {} refused a connection without TLS, and {}",
                    self.host,
                    self.settings.asked()
                ),
            },
            other => other,
        }
    }
}

impl Pg {
    /// Connects to `url` (`postgres://user@host:port/db`, the libpq URL or key=value
    /// forms) and brings the schema up to date ([`schema::migrate`]), waiting for other
    /// servers migrating at the same time. Fails when the server cannot be reached.
    pub fn connect(url: &str) -> Result<Pg, MetaError> {
        let pg = Pg::open(url)?;
        pg.run("migrating the schema", |mut client| async move {
            schema::migrate(&mut client).await
        })?;
        Ok(pg)
    }

    /// The schema version of the database, `None` when it has no `schema_version`
    /// table (no server ever started on it). Reads only: what operator commands ask
    /// before they touch a database they must not create or migrate.
    pub fn schema_version(&self) -> Result<Option<i64>, MetaError> {
        self.run("reading the schema version", |client| async move {
            schema::version(&client).await
        })
    }

    /// A pool for `url` that changes nothing in the database: no schema is created
    /// or migrated (see [`connect`](Self::connect) and
    /// [`schema_version`](Self::schema_version)). Connections are made on first use.
    pub fn open(url: &str) -> Result<Pg, MetaError> {
        let (mut config, tls, settings) = connector(url)?;
        let target = Arc::new(Target::of(&config, settings));
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("file-storage server");
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("postgres")
            .enable_all()
            .build()
            .map_err(|e| MetaError::backend("starting the database runtime", e))?;
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(15)))
            .wait_timeout(Some(Duration::from_secs(60)))
            .build()
            .map_err(|e| MetaError::backend("creating the connection pool", e))?;
        Ok(Pg {
            pool,
            target,
            rt: Some(rt),
        })
    }

    /// Runs `f` with a pooled connection on the backend's runtime and waits for its
    /// result. Never panics, whatever runtime the caller is in (but must not be called
    /// from the backend's own workers, that is from inside `f`).
    pub fn run<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, PgError>> + Send + 'static,
    {
        let pool = self.pool.clone();
        let target = self.target.clone();
        self.wait(what, async move {
            let client = pool.get().await.map_err(|e| target.pool_error(what, e))?;
            f(client).await.map_err(|e| pg_error(what, &e))
        })
    }

    /// Runs `f` inside one SERIALIZABLE transaction and commits it (rolls it back when
    /// `f` fails or returns [`TxError::Refused`]); when PostgreSQL reports a
    /// serialization failure or a deadlock (a concurrent transaction won), rolls back
    /// and runs `f` again on fresh data, up to 60 times. `f` may run more than once,
    /// so it must only act through the transaction.
    ///
    /// `f` receives the transaction and returns a boxed future:
    /// `move |tx| Box::pin(async move { tx.execute("...", &[]).await })`.
    ///
    /// PostgreSQL tracks what a serializable transaction read by index pages, so on
    /// small or hot tables unrelated transactions also conflict and retry: for work
    /// done often by many servers at once, prefer [`transact_locked`](Self::transact_locked).
    pub fn transact<T, F>(&self, what: &'static str, f: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: for<'a> Fn(&'a Transaction<'a>) -> BoxFut<'a, Result<T, TxError>>
            + Send
            + Sync
            + 'static,
    {
        self.transact_at(IsolationLevel::Serializable, what, f)
    }

    /// As [`transact`](Self::transact), at READ COMMITTED: `f` takes the row locks
    /// that make it correct (`SELECT ... FOR UPDATE` on the row that stands for what
    /// it changes) before reading what it decides on. Retried on a deadlock.
    pub fn transact_locked<T, F>(&self, what: &'static str, f: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: for<'a> Fn(&'a Transaction<'a>) -> BoxFut<'a, Result<T, TxError>>
            + Send
            + Sync
            + 'static,
    {
        self.transact_at(IsolationLevel::ReadCommitted, what, f)
    }

    fn transact_at<T, F>(
        &self,
        level: IsolationLevel,
        what: &'static str,
        f: F,
    ) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: for<'a> Fn(&'a Transaction<'a>) -> BoxFut<'a, Result<T, TxError>>
            + Send
            + Sync
            + 'static,
    {
        let pool = self.pool.clone();
        let target = self.target.clone();
        self.wait(what, async move {
            let mut client = pool.get().await.map_err(|e| target.pool_error(what, e))?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                match try_once(&mut client, level, &f).await {
                    Ok(v) => return Ok(v),
                    Err(TxError::Pg(e)) if is_conflict(&e) && attempt < ATTEMPTS => {
                        // Lost a race: a short pause, growing and jittered so that
                        // the losers do not meet again, lets the winner finish.
                        use rand_core::RngCore;
                        let jitter = u64::from(rand_core::OsRng.next_u32() % 8);
                        let ms = u64::from(attempt.min(10)) * 2 + jitter;
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    Err(TxError::Pg(e)) => return Err(pg_error(what, &e)),
                    Err(TxError::Refused(e)) => return Err(e),
                }
            }
        })
    }

    /// Spawns `fut` on the backend's runtime and waits for it on a standard channel.
    fn wait<T, Fut>(&self, what: &'static str, fut: Fut) -> Result<T, MetaError>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T, MetaError>> + Send + 'static,
    {
        let Some(rt) = &self.rt else {
            return Err(MetaError::backend(what, "the database runtime is stopped"));
        };
        let (tx, rx) = mpsc::sync_channel(1);
        rt.spawn(async move {
            // The receiver only goes away if the caller did; nothing to tell then.
            let _ = tx.send(fut.await);
        });
        // A panic in the task drops the sender: reported as an error, not re-raised.
        rx.recv()
            .unwrap_or_else(|_| Err(MetaError::backend(what, "the database task failed")))
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.pool.close();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn try_once<T, F>(client: &mut Object, level: IsolationLevel, f: &F) -> Result<T, TxError>
where
    F: for<'a> Fn(&'a Transaction<'a>) -> BoxFut<'a, Result<T, TxError>> + Sync,
{
    let tx = client
        .build_transaction()
        .isolation_level(level)
        .start()
        .await?;
    match f(&tx).await {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            // The error is what matters; a failed rollback also ends the transaction
            // (the connection is then discarded by the pool's recycling check).
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// A PostgreSQL error as a [`MetaError`], with the server's own message (the error's
/// `Display` alone says only "db error").
pub fn pg_error(what: &'static str, e: &PgError) -> MetaError {
    match e.as_db_error() {
        Some(db) => MetaError::backend(
            what,
            format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        ),
        None => match std::error::Error::source(e) {
            Some(source) => MetaError::backend(what, format!("{e}: {source}")),
            None => MetaError::backend(what, e),
        },
    }
}

/// A transaction that lost to a concurrent one and may simply be run again.
pub fn is_conflict(e: &PgError) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

#[cfg(test)]
mod password_tests {
    use super::*;

    #[test]
    fn a_password_given_apart_fills_a_url_without_one() {
        use_password("from-file".into());
        let config = connection_config("postgres://app@db/files").unwrap();
        assert_eq!(config.get_password(), Some(&b"from-file"[..]));
        let config = connection_config("postgres://app:own@db/files").unwrap();
        assert_eq!(config.get_password(), Some(&b"own"[..]));
        let bad = connection_config("postgres://app:s3cr3t@db:notaport/files")
            .unwrap_err()
            .to_string();
        assert!(!bad.contains("s3cr3t"), "{bad}");
    }
}
