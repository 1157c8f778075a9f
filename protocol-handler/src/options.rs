//! How a server runs its connections, and the flag that stops it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use protocol_core::{ServerConfig, DEFAULT_INPUT_BUDGET};

use crate::rate::RateLimit;

/// How a server runs its connections (every transport takes the same options).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Protocol configuration and limits for every connection.
    pub config: ServerConfig,
    /// Connections served at once. At the cap a newcomer sheds an idle connection
    /// (see [`ConnectionLimiter`](crate::ConnectionLimiter)), or is refused with a
    /// 1607 if none is idle. Default 1024.
    pub max_connections: usize,
    /// Connections from one IP address at once. Default 64.
    pub max_connections_per_ip: usize,
    /// How long a shutdown waits for uploads in progress. Default 30 s.
    pub shutdown_grace: Duration,
    /// Bytes of request input all connections together may hold buffered
    /// ([`protocol_core::InputBudget`]). Default 64 MiB.
    pub input_budget: usize,
    /// Registrations (825) per peer address. Default a burst of 20, then 2 a second.
    pub registrations: RateLimit,
    /// Connections closed for a protocol violation per peer address, before new
    /// connections from it are refused. Default a burst of 20, then 1 a second.
    pub failures: RateLimit,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            config: ServerConfig::default(),
            max_connections: 1024,
            max_connections_per_ip: 64,
            shutdown_grace: Duration::from_secs(30),
            input_budget: DEFAULT_INPUT_BUDGET,
            registrations: RateLimit {
                burst: 20,
                per_second: 2.0,
            },
            failures: RateLimit {
                burst: 20,
                per_second: 1.0,
            },
        }
    }
}

/// A flag that asks a running server to stop.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// A flag not yet raised.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }
    /// Asks the server to stop: no new connections; idle ones close; uploads in
    /// progress get [`ServerOptions::shutdown_grace`] to finish.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether [`trigger`](Self::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
