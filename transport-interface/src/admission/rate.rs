//! Rate limits per peer address: registrations, and requests that failed (a
//! connection closed for a protocol violation). Token buckets, one per address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

use protocol_core::ServerEvent;

use crate::admission::preface::address_group;
use crate::handler::asynch::{AsyncConnectionHandler, AsyncHandlerFactory};
use crate::handler::sync::{ConnectionHandler, HandlerFactory};
pub use crate::options::RateLimit;
use crate::options::ServerOptions;
use crate::Conn;

/// Addresses remembered at most; past it, buckets that have refilled are forgotten
/// (a full bucket is the same as none).
const MAX_ADDRESSES: usize = 100_000;

/// A token bucket per address (or per any other key: a client id).
#[derive(Debug)]
pub struct Buckets<K = IpAddr> {
    limit: RateLimit,
    map: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Eq + std::hash::Hash + Copy> Buckets<K> {
    /// Buckets of the shape `limit`, all full.
    pub fn new(limit: RateLimit) -> Buckets<K> {
        Buckets {
            limit,
            map: Mutex::default(),
        }
    }

    fn level(&self, entry: (f64, Instant), now: Instant) -> f64 {
        let secs = now.saturating_duration_since(entry.1).as_secs_f64();
        (entry.0 + secs * self.limit.per_second).min(self.limit.burst as f64)
    }

    /// Takes a token for `ip` at `now`; false if its bucket is empty.
    pub fn take(&self, ip: K, now: Instant) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ADDRESSES {
            let full = self.limit.burst as f64;
            map.retain(|_, e| {
                let secs = now.saturating_duration_since(e.1).as_secs_f64();
                e.0 + secs * self.limit.per_second < full
            });
        }
        let entry = map
            .get(&ip)
            .copied()
            .unwrap_or((self.limit.burst as f64, now));
        let level = self.level(entry, now);
        if level < 1.0 {
            map.insert(ip, (level, now));
            return false;
        }
        map.insert(ip, (level - 1.0, now));
        true
    }

    /// Whether `ip` has a token left (taking none).
    pub fn has_token(&self, ip: K, now: Instant) -> bool {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&ip).is_none_or(|e| self.level(*e, now) >= 1.0)
    }
}

/// The rate limits of a server, shared by its connections.
#[derive(Debug)]
pub struct AddressRates {
    /// IPv6 addresses are counted by this many leading bits (see
    /// [`address_group`]).
    pub ipv6_prefix: u8,
    /// Registrations (825) per address; over it, a registration gets a 1607.
    pub registrations: Buckets,
    /// Connections closed for a protocol violation per address; over it, new
    /// connections from the address are refused (1607) until the bucket refills.
    pub failures: Buckets,
}

impl AddressRates {
    /// Buckets for `registrations` and `failures`, IPv6 addresses counted by /64.
    pub fn new(registrations: RateLimit, failures: RateLimit) -> Arc<AddressRates> {
        Arc::new(AddressRates {
            ipv6_prefix: 64,
            registrations: Buckets::new(registrations),
            failures: Buckets::new(failures),
        })
    }

    /// The buckets `options` describe.
    pub fn from_options(options: &ServerOptions) -> Arc<AddressRates> {
        Arc::new(AddressRates {
            ipv6_prefix: options.ipv6_prefix,
            registrations: Buckets::new(options.registrations),
            failures: Buckets::new(options.failures),
        })
    }

    /// The key of `ip`'s buckets.
    pub fn group(&self, ip: IpAddr) -> IpAddr {
        address_group(ip, self.ipv6_prefix)
    }

    /// Whether a new connection from `ip` is admitted (its failures are within the limit).
    pub fn admits(&self, ip: IpAddr, now: Instant) -> bool {
        self.failures.has_token(self.group(ip), now)
    }
}

/// A handler factory whose handlers apply [`AddressRates`] before the
/// application sees an event: a registration over the limit is answered with a
/// 1607 without reaching the application, and a connection that ends in a protocol
/// violation spends a token of its address's failure bucket.
#[derive(Debug)]
pub struct RateLimited<F> {
    inner: Arc<F>,
    rates: Arc<AddressRates>,
}

impl<F> RateLimited<F> {
    /// `inner`'s handlers, limited by `rates`.
    pub fn new(inner: Arc<F>, rates: Arc<AddressRates>) -> Self {
        RateLimited { inner, rates }
    }
}

/// The handler of [`RateLimited`].
#[derive(Debug)]
pub struct RateLimitedHandler<H> {
    inner: H,
    /// The peer's address group ([`AddressRates::group`]).
    ip: IpAddr,
    rates: Arc<AddressRates>,
}

impl<H> RateLimitedHandler<H> {
    /// The event for the application, or `None` if it was answered here.
    fn filter(&self, conn: &mut Conn, event: ServerEvent) -> Option<ServerEvent> {
        match event {
            ServerEvent::Register { ticket, .. }
                if !self.rates.registrations.take(self.ip, now()) =>
            {
                let _ = conn.fail(ticket);
                None
            }
            event => Some(event),
        }
    }

    fn closed(&self, conn: &Conn) {
        // Timeouts and a spent budget are the server's choices, not the peer's
        // mistakes: a slow or idle connection from a shared address must not
        // lock that address out.
        use protocol_core::PeerError;
        let violation = conn.error().is_some_and(|e| {
            !matches!(
                e,
                PeerError::Timeout(_)
                    | PeerError::Busy
                    | PeerError::Closed
                    | PeerError::UnexpectedEof
            )
        });
        if violation {
            self.rates.failures.take(self.ip, now());
        }
    }
}

/// The clock of the rate limits (this crate is no protocol core: it may read it).
fn now() -> Instant {
    Instant::now()
}

impl<F: HandlerFactory> HandlerFactory for RateLimited<F> {
    type Handler = RateLimitedHandler<F::Handler>;
    fn connect(&self, peer: SocketAddr) -> Self::Handler {
        RateLimitedHandler {
            inner: self.inner.connect(peer),
            ip: self.rates.group(peer.ip()),
            rates: self.rates.clone(),
        }
    }
    fn refused(&self, peer: SocketAddr) {
        self.inner.refused(peer)
    }
}

impl<H: ConnectionHandler> ConnectionHandler for RateLimitedHandler<H> {
    fn on_event(&mut self, conn: &mut Conn, event: ServerEvent) {
        if let Some(event) = self.filter(conn, event) {
            self.inner.on_event(conn, event);
        }
    }
    fn on_close(&mut self, conn: &Conn) {
        self.closed(conn);
        self.inner.on_close(conn);
    }
}

/// [`RateLimited`] for an asynchronous application.
#[derive(Debug)]
pub struct AsyncRateLimited<F>(pub RateLimited<F>);

impl<F: AsyncHandlerFactory> AsyncHandlerFactory for AsyncRateLimited<F> {
    type Handler = RateLimitedHandler<F::Handler>;
    fn connect(&self, peer: SocketAddr) -> Self::Handler {
        RateLimitedHandler {
            inner: self.0.inner.connect(peer),
            ip: self.0.rates.group(peer.ip()),
            rates: self.0.rates.clone(),
        }
    }
    fn refused(&self, peer: SocketAddr) {
        self.0.inner.refused(peer)
    }
}

impl<H: AsyncConnectionHandler> AsyncConnectionHandler for RateLimitedHandler<H> {
    async fn on_event(&mut self, conn: &mut Conn, event: ServerEvent) {
        if let Some(event) = self.filter(conn, event) {
            self.inner.on_event(conn, event).await;
        }
    }
    async fn on_close(&mut self, conn: &Conn) {
        self.closed(conn);
        self.inner.on_close(conn).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_bucket_gives_its_burst_then_refills_per_address() {
        let b = Buckets::new(RateLimit {
            burst: 3,
            per_second: 2.0,
        });
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let t = Instant::now();
        assert!((0..3).all(|_| b.take(a, t)));
        assert!(!b.take(a, t));
        assert!(!b.has_token(a, t));
        assert!(b.take(other, t), "another address has its own bucket");
        assert!(b.take(a, t + Duration::from_millis(500)), "refilled");
        assert!(!b.take(a, t + Duration::from_millis(500)));
    }
}
