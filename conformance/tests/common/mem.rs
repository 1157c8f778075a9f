//! The in-memory server application the fixture servers answer the core with: the
//! workspace's one in-memory store, `transport_interface::memory::MemoryStore`.

#[allow(unused_imports)]
pub use transport_interface::memory::MemoryStore as MemStore;
