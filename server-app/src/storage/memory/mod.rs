//! Storage kept in the process: the table of uploads in progress of a single
//! server ([`MemoryUploads`], the default). Metadata in memory, for tests and
//! examples, is SQLite's own in-memory database behind the file backend's SQL
//! ([`SqliteMetadata::in_memory`](crate::storage::sqlite::SqliteMetadata::in_memory)):
//! one set of queries, not a second implementation to keep in step.

pub mod uploads;

pub use uploads::MemoryUploads;
