//! The application interface: what a server application implements
//! ([`ConnectionHandler`] / [`HandlerFactory`] synchronously,
//! [`AsyncConnectionHandler`] / [`AsyncHandlerFactory`] asynchronously) and the
//! [`Dispatch`] through which every transport drives it.

pub(crate) mod asynch;
pub(crate) mod sync;

pub use asynch::{AsyncConnectionHandler, AsyncDispatch, AsyncHandlerFactory, Inline};
pub use sync::{
    pump, pump_with, BlockingDispatch, ConnectionHandler, Dispatch, HandlerFactory, Offload,
};
