//! The client suite: the conformance program plays the server (see [`server`]),
//! one case per run of the client under test.
pub mod cases;
pub mod judge;
pub mod launch;
pub mod run;
pub mod server;
