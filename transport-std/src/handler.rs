//! The application interface lives in `protocol-handler`, shared by every
//! transport; re-exported here so that code written against `transport-std` keeps
//! compiling.

pub use protocol_handler::{
    pump, pump_with, Conn, ConnectionHandler, HandlerFactory, ServerOptions, Shutdown,
};
