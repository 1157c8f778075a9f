//! Caps on connections, overall and per peer address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Counts connections overall and per address; shared by every transport.
#[derive(Debug, Default)]
pub struct ConnectionLimiter {
    state: Mutex<(usize, HashMap<IpAddr, usize>)>,
    idle: Condvar,
}

/// A slot held by one connection; released on drop.
#[derive(Debug)]
pub struct ConnectionGuard {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
}

impl ConnectionLimiter {
    /// Takes a slot for `ip`, or `None` if a cap is reached.
    pub fn try_acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        max: usize,
        max_per_ip: usize,
    ) -> Option<ConnectionGuard> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let per_ip = st.1.get(&ip).copied().unwrap_or(0);
        if st.0 >= max || per_ip >= max_per_ip {
            return None;
        }
        st.0 += 1;
        *st.1.entry(ip).or_insert(0) += 1;
        Some(ConnectionGuard {
            limiter: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// Waits until no connection is open, or `timeout` passes.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (st, _) = self
            .idle
            .wait_timeout_while(st, timeout, |st| st.0 > 0)
            .unwrap_or_else(|e| e.into_inner());
        st.0 == 0
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut st = self.limiter.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0 = st.0.saturating_sub(1);
        if let Some(n) = st.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                st.1.remove(&self.ip);
            }
        }
        if st.0 == 0 {
            self.limiter.idle.notify_all();
        }
    }
}
