//! Admission: caps on connections overall and per peer address that cannot be
//! starved. When a cap is reached, a connection that has not yet shown a whole
//! request header (oldest first), else one that has been silent the longest (at
//! least [`SHED_AFTER_SILENCE`], counted from its last input or from the
//! application's last answer to it, and never while the application is answering
//! it: [`Slot::working`]), is shed to make room for the newcomer; only when
//! every connection is busy is the newcomer refused, with a 1607
//! ([`refusal_bytes`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol_core::wire::{self, Response, ResponseEncoding, REQUEST_HEADER_LEN};

/// A connection silent for this long may be shed for a newcomer even after it has
/// sent requests (one that has sent nothing whole may be shed at once).
pub const SHED_AFTER_SILENCE: Duration = Duration::from_secs(5);

/// Counts connections overall and per address; shared by every transport.
#[derive(Debug)]
pub struct ConnectionLimiter {
    state: Mutex<State>,
    idle: Condvar,
    epoch: Instant,
}

impl Default for ConnectionLimiter {
    fn default() -> Self {
        ConnectionLimiter {
            state: Mutex::default(),
            idle: Condvar::new(),
            epoch: Instant::now(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    open: usize,
    per_ip: HashMap<IpAddr, usize>,
    slots: HashMap<u64, Arc<Slot>>,
    next_id: u64,
}

type Closer = Box<dyn FnOnce() + Send>;

/// What the limiter knows of one admitted connection: how much it has sent and
/// when, and how to end it if it is shed. The transport reports reads
/// ([`note_read`](Self::note_read)) and stops when [`is_shed`](Self::is_shed).
pub struct Slot {
    ip: IpAddr,
    admitted_ms: u64,
    bytes_read: AtomicU64,
    last_read_ms: AtomicU64,
    /// The application is handling this connection's input ([`Slot::working`]).
    busy: AtomicBool,
    counted: AtomicBool,
    shed: AtomicBool,
    waker: Mutex<Option<Waker>>,
    closer: Mutex<Option<Closer>>,
    epoch: Instant,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("ip", &self.ip)
            .field("bytes_read", &self.bytes_read)
            .field("shed", &self.shed)
            .finish()
    }
}

impl Slot {
    fn ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
    /// `n` bytes arrived from the peer.
    pub fn note_read(&self, n: usize) {
        if n > 0 {
            self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
            self.last_read_ms.store(self.ms(), Ordering::Relaxed);
        }
    }
    /// The application is handling what this connection sent (looking a client up,
    /// storing a key, committing a file): until the returned guard drops, the
    /// connection is not silent however long that takes, and then its silence
    /// counts from that moment. A client waiting for a slow answer is not idle.
    pub fn working(self: &Arc<Self>) -> Working {
        self.busy.store(true, Ordering::Release);
        Working(self.clone())
    }
    /// Whether the connection was shed for a newcomer: the transport ends it.
    pub fn is_shed(&self) -> bool {
        self.shed.load(Ordering::Acquire)
    }
    /// The task to wake when the connection is shed (async transports: the
    /// reading task's waker).
    pub fn set_waker(&self, waker: &Waker) {
        let mut w = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        if !w.as_ref().is_some_and(|old| old.will_wake(waker)) {
            *w = Some(waker.clone());
        }
    }
    /// What ends the connection when it is shed (the blocking transport: shut the
    /// socket down, which ends a blocked read).
    pub fn set_closer(&self, closer: impl FnOnce() + Send + 'static) {
        *self.closer.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(closer));
    }
    fn shed(&self) {
        self.shed.store(true, Ordering::Release);
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
        let closer = self.closer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(c) = closer {
            c();
        }
    }
}

/// The application at work on a connection's input ([`Slot::working`]); ends on drop
/// (also when the work is cancelled at its deadline).
#[derive(Debug)]
pub struct Working(Arc<Slot>);

impl Drop for Working {
    fn drop(&mut self) {
        let slot = &self.0;
        slot.last_read_ms.store(slot.ms(), Ordering::Relaxed);
        slot.busy.store(false, Ordering::Release);
    }
}

/// A slot held by one connection; released on drop.
#[derive(Debug)]
pub struct ConnectionGuard {
    limiter: Arc<ConnectionLimiter>,
    id: u64,
    slot: Arc<Slot>,
}

impl ConnectionGuard {
    /// The connection's record, for the transport to report reads and to watch
    /// for being shed.
    pub fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl ConnectionLimiter {
    /// Takes a slot for `ip`, shedding an idle connection if a cap is reached, or
    /// `None` if every connection that could make room is busy.
    pub fn try_acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        max: usize,
        max_per_ip: usize,
    ) -> Option<ConnectionGuard> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let per_ip_full = st.per_ip.get(&ip).copied().unwrap_or(0) >= max_per_ip;
        let all_full = st.open >= max;
        if per_ip_full || all_full {
            let victim = pick_victim(&st, if per_ip_full { Some(ip) } else { None }, now_ms)?;
            if let Some(slot) = st.slots.remove(&victim) {
                release(&mut st, &slot);
                slot.shed();
            }
            if st.open >= max || st.per_ip.get(&ip).copied().unwrap_or(0) >= max_per_ip {
                return None;
            }
        }
        st.open += 1;
        *st.per_ip.entry(ip).or_insert(0) += 1;
        let id = st.next_id;
        st.next_id += 1;
        let slot = Arc::new(Slot {
            ip,
            admitted_ms: now_ms,
            bytes_read: AtomicU64::new(0),
            last_read_ms: AtomicU64::new(now_ms),
            busy: AtomicBool::new(false),
            counted: AtomicBool::new(true),
            shed: AtomicBool::new(false),
            waker: Mutex::new(None),
            closer: Mutex::new(None),
            epoch: self.epoch,
        });
        st.slots.insert(id, slot.clone());
        Some(ConnectionGuard {
            limiter: self.clone(),
            id,
            slot,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).open
    }

    /// Waits until no connection is open, or `timeout` passes.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (st, _) = self
            .idle
            .wait_timeout_while(st, timeout, |st| st.open > 0)
            .unwrap_or_else(|e| e.into_inner());
        st.open == 0
    }
}

/// The connection to shed (of `ip` only, if given): first one without a whole
/// request header yet, the oldest; else the one silent longest, if silent for
/// [`SHED_AFTER_SILENCE`].
fn pick_victim(st: &State, ip: Option<IpAddr>, now_ms: u64) -> Option<u64> {
    // A connection the application is answering is never a victim: its peer waits
    // for us, not the other way round.
    let of_ip = |s: &&Arc<Slot>| ip.is_none_or(|ip| s.ip == ip) && !s.busy.load(Ordering::Acquire);
    let headerless = st
        .slots
        .iter()
        .filter(|(_, s)| of_ip(s))
        .filter(|(_, s)| s.bytes_read.load(Ordering::Relaxed) < REQUEST_HEADER_LEN as u64)
        .min_by_key(|(id, s)| (s.admitted_ms, **id));
    if let Some((id, _)) = headerless {
        return Some(*id);
    }
    let silence = SHED_AFTER_SILENCE.as_millis() as u64;
    st.slots
        .iter()
        .filter(|(_, s)| of_ip(s))
        .map(|(id, s)| (s.last_read_ms.load(Ordering::Relaxed), *id))
        .filter(|(last, _)| now_ms.saturating_sub(*last) >= silence)
        .min()
        .map(|(_, id)| id)
}

fn release(st: &mut State, slot: &Slot) {
    if !slot.counted.swap(false, Ordering::AcqRel) {
        return;
    }
    st.open = st.open.saturating_sub(1);
    if let Some(n) = st.per_ip.get_mut(&slot.ip) {
        *n -= 1;
        if *n == 0 {
            st.per_ip.remove(&slot.ip);
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut st = self.limiter.state.lock().unwrap_or_else(|e| e.into_inner());
        st.slots.remove(&self.id);
        release(&mut st, &self.slot);
        if st.open == 0 {
            self.limiter.idle.notify_all();
        }
    }
}

/// The bytes a refused connection is sent before it is closed: a 1607, so that a
/// client can tell the user the server is busy instead of seeing a silent close.
pub fn refusal_bytes() -> BytesMut {
    let mut out = BytesMut::new();
    wire::encode_response(
        &mut out,
        &Response::GeneralError,
        ResponseEncoding::default(),
    );
    out
}

/// Counts something that happens often under load (a refused connection, a failed
/// accept) and says when to log it: at most once per second, with the count since
/// the last log line, so that a flood cannot flood the log.
#[derive(Debug, Default)]
pub struct RateLog {
    state: Mutex<(u64, Option<Instant>)>,
}

impl RateLog {
    /// One more occurrence at `now`. `Some(n)`: log now that it happened `n` times
    /// since the last line.
    pub fn note(&self, now: Instant) -> Option<u64> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0 += 1;
        let due =
            st.1.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if !due {
            return None;
        }
        st.1 = Some(now);
        Some(std::mem::take(&mut st.0))
    }
}

/// The pause after a failed accept (out of file descriptors and the like): doubles
/// from 5 ms with each failure in a row, up to 1 s, and starts over after a success.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    /// An accept failed: how long to pause before the next.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let ms = 5u64 << self.failures.min(9).saturating_sub(1);
        Duration::from_millis(ms.min(1000))
    }
    /// An accept succeeded.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn caps_overall_and_per_address_and_releases_on_drop() {
        let limiter = Arc::new(ConnectionLimiter::default());
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let g1 = limiter.try_acquire(a, 3, 2).unwrap();
        let g2 = limiter.try_acquire(a, 3, 2).unwrap();
        g1.slot().note_read(100);
        g2.slot().note_read(100);
        assert!(limiter.try_acquire(a, 3, 2).is_none(), "per-address cap");
        let g3 = limiter.try_acquire(b, 3, 2).unwrap();
        g3.slot().note_read(100);
        assert!(limiter.try_acquire(b, 3, 2).is_none(), "overall cap");
        assert_eq!(limiter.open(), 3);
        drop(g1);
        assert!(limiter.try_acquire(a, 3, 2).is_some(), "released on drop");
    }

    #[test]
    fn a_newcomer_sheds_the_oldest_connection_without_a_header() {
        let limiter = Arc::new(ConnectionLimiter::default());
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let busy = limiter.try_acquire(a, 10, 3).unwrap();
        busy.slot().note_read(1000);
        let oldest_idle = limiter.try_acquire(a, 10, 3).unwrap();
        let idle = limiter.try_acquire(a, 10, 3).unwrap();
        let newcomer = limiter.try_acquire(a, 10, 3).expect("room is made");
        assert!(oldest_idle.slot().is_shed());
        assert!(!idle.slot().is_shed() && !busy.slot().is_shed());
        assert_eq!(limiter.open(), 3);
        drop(oldest_idle);
        assert_eq!(limiter.open(), 3, "a shed connection is not counted twice");
        newcomer.slot().note_read(1000);
        idle.slot().note_read(1000);
        assert!(limiter.try_acquire(a, 10, 3).is_none(), "all busy: refused");
    }

    #[test]
    fn a_connection_the_application_is_answering_is_never_shed_as_silent() {
        // A limiter a minute old, so that a slot can be a minute silent.
        let limiter = Arc::new(ConnectionLimiter {
            epoch: Instant::now() - Duration::from_secs(60),
            ..ConnectionLimiter::default()
        });
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let waiting = limiter.try_acquire(a, 2, 2).unwrap();
        let silent = limiter.try_acquire(a, 2, 2).unwrap();
        for g in [&waiting, &silent] {
            g.slot().note_read(1000);
            g.slot().last_read_ms.store(0, Ordering::Relaxed);
        }
        let work = waiting.slot().working();
        let newcomer = limiter
            .try_acquire(a, 2, 2)
            .expect("the silent one makes room");
        assert!(silent.slot().is_shed());
        assert!(!waiting.slot().is_shed(), "its client waits for our answer");
        newcomer.slot().note_read(1000);
        assert!(
            limiter.try_acquire(a, 2, 2).is_none(),
            "nothing else to shed"
        );
        drop(work);
        assert!(
            limiter.try_acquire(a, 2, 2).is_none(),
            "answered just now: its silence starts from the answer"
        );
        waiting.slot().last_read_ms.store(0, Ordering::Relaxed);
        assert!(limiter.try_acquire(a, 2, 2).is_some());
        assert!(waiting.slot().is_shed(), "silent again, and idle: shed");
    }

    #[test]
    fn refusals_are_logged_once_a_second_with_their_count() {
        let log = RateLog::default();
        let t = Instant::now();
        assert_eq!(log.note(t), Some(1));
        for i in 1..100 {
            assert_eq!(log.note(t + Duration::from_millis(i)), None);
        }
        assert_eq!(log.note(t + Duration::from_secs(1)), Some(100));
    }

    #[test]
    fn accept_backoff_grows_to_a_second_and_resets() {
        let mut b = AcceptBackoff::default();
        assert_eq!(b.failed(), Duration::from_millis(5));
        assert_eq!(b.failed(), Duration::from_millis(10));
        for _ in 0..20 {
            b.failed();
        }
        assert_eq!(b.failed(), Duration::from_secs(1));
        b.succeeded();
        assert_eq!(b.failed(), Duration::from_millis(5));
    }

    #[test]
    fn the_refusal_is_a_1607() {
        let mut b = refusal_bytes();
        assert_eq!(
            wire::decode_response(&mut b).unwrap(),
            Some(Response::GeneralError)
        );
    }
}
