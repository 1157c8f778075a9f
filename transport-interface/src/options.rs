//! How a server runs its connections, and the flag that stops it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use protocol_core::{InputBudget, ServerConfig, DEFAULT_FREE_PER_CONNECTION, DEFAULT_INPUT_BUDGET};

use crate::admission::preface::ProxyFrom;

/// A token bucket's shape: `burst` at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens when full: this many at once after a quiet spell.
    pub burst: u32,
    /// Tokens added per second.
    pub per_second: f64,
}

/// How a server runs its connections (every transport takes the same options).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Protocol configuration and limits for every connection.
    pub config: ServerConfig,
    /// Connections served at once. At the cap a newcomer sheds an idle connection
    /// (see [`ConnectionLimiter`](crate::ConnectionLimiter)), or is refused with a
    /// 1607 if none is idle. Default 1024.
    pub max_connections: usize,
    /// Connections from one address group at once (an IPv4 address, or an IPv6
    /// network of `ipv6_prefix` bits). Default 256, a quarter of `max_connections`:
    /// hundreds of real clients behind one address (a NAT, a test machine) are
    /// served at once, yet no single address can take more than a quarter of the
    /// server; at least four must be busy to fill it. Shedding (idle connections
    /// go first) applies within the cap as within the overall one.
    pub max_connections_per_ip: usize,
    /// IPv6 addresses are counted by their first this many bits by the
    /// per-address cap and rate buckets. Default 64: a host is usually given a
    /// whole /64 and can pick a new address in it for every connection.
    pub ipv6_prefix: u8,
    /// Balancers whose connections start with a PROXY v2 header naming the
    /// client. Default none: the PROXY protocol is off and connections are taken as
    /// they come.
    pub proxy_from: ProxyFrom,
    /// How long a listed balancer's connection may take to send its whole PROXY
    /// header before it is closed. Default 5 s.
    pub proxy_header_timeout: Duration,
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
    /// Secure mode: TLS 1.3 on the same port as the legacy protocol, with this
    /// configuration ([`tls::server::server_config`](crate::tls::server::server_config)).
    /// A connection whose first two bytes begin like a TLS record is served inside
    /// TLS; any other is served as before. Default none: legacy only (a ClientHello
    /// is read as a malformed request, as it always was).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            config: ServerConfig::default(),
            max_connections: 1024,
            max_connections_per_ip: 256,
            ipv6_prefix: 64,
            proxy_from: ProxyFrom::default(),
            proxy_header_timeout: Duration::from_secs(5),
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
            tls: None,
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
