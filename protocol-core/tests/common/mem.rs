//! The in-memory server application these tests answer the core with: the
//! workspace's one in-memory store, `transport_interface::memory::MemoryStore`
//! (a dev-dependency), under the name the tests use.

#[allow(unused_imports)]
pub use transport_interface::memory::{ClientRow, Faults, MemoryStore as MemStore, StoredFile};
