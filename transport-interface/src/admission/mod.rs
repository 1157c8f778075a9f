//! Admission: which connections are served, and for how long. The connection caps
//! ([`ConnectionLimiter`], overall and per address group), the rate buckets
//! ([`AddressRates`], wrapped around the application's factory as
//! [`RateLimited`]), the PROXY protocol header ([`proxy`], [`Preface`]) and the
//! [`Gate`] that applies them in order to each accepted socket.
//!
//! This module depends on [`crate::handler`], never the reverse.

pub(crate) mod admitted;
pub(crate) mod gate;
pub(crate) mod limiter;
pub(crate) mod preface;
pub mod proxy;
pub(crate) mod rate;

pub use admitted::AdmittedDispatch;
pub use gate::{Entry, Gate, Settled};
pub use limiter::{
    refusal_bytes, AcceptBackoff, ConnectionGuard, ConnectionLimiter, RateLog, Slot, Working,
    SHED_AFTER_SILENCE,
};
pub use preface::{
    address_group, Cidr, Preface, PrefaceError, PrefaceStep, ProxyFrom, ProxyFromError,
};
pub use rate::{
    AddressRates, AsyncRateLimited, Buckets, RateLimit, RateLimited, RateLimitedHandler,
};
