//! How a server runs its connections, and the flag that stops it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use protocol_core::{InputBudget, ServerConfig, DEFAULT_FREE_PER_CONNECTION, DEFAULT_INPUT_BUDGET};

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
    /// Connections from one IP address at once. Default 1024, the same as
    /// `max_connections`: hundreds of real clients behind one address (a NAT, a
    /// test machine) are served at once; what keeps one address from holding the
    /// server with idle or slow connections is shedding, not this cap.
    pub max_connections_per_ip: usize,
    /// How long a shutdown waits for uploads in progress. Default 30 s.
    pub shutdown_grace: Duration,
    /// Bytes of request input all connections together may hold buffered
    /// ([`protocol_core::InputBudget`]), beyond what each may hold on its own
    /// (`input_free_per_connection`). Default 64 MiB.
    pub input_budget: usize,
    /// Bytes of input each connection may hold outside `input_budget`. Default
    /// 512 KiB ([`protocol_core::DEFAULT_FREE_PER_CONNECTION`]): a client sending
    /// packets of the usual 64 KiB is never refused for the budget.
    pub input_free_per_connection: usize,
    /// Registrations (825) per peer address. Default a burst of 1024, then 100 a
    /// second: a thousand clients registering at once from one address (a test
    /// suite, a benchmark, a NAT) are all served, while a flood of tens of
    /// thousands a second is mostly refused.
    pub registrations: RateLimit,
    /// Connections closed for a protocol violation per peer address, before new
    /// connections from it are refused. Default a burst of 1024, then 100 a second
    /// (an honest client never violates the protocol; this stops floods).
    pub failures: RateLimit,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            config: ServerConfig::default(),
            max_connections: 1024,
            max_connections_per_ip: 1024,
            shutdown_grace: Duration::from_secs(30),
            input_budget: DEFAULT_INPUT_BUDGET,
            input_free_per_connection: DEFAULT_FREE_PER_CONNECTION,
            registrations: RateLimit {
                burst: 1024,
                per_second: 100.0,
            },
            failures: RateLimit {
                burst: 1024,
                per_second: 100.0,
            },
        }
    }
}

impl ServerOptions {
    /// The input budget these options describe, to share among a server's connections.
    pub fn new_input_budget(&self) -> InputBudget {
        InputBudget::new(self.input_budget).with_free_per_connection(self.input_free_per_connection)
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
