//! A [`Dispatch`] that tells the connection limiter while the application works on a
//! connection's input ([`Slot::working`]), so that a client waiting for a slow answer
//! (a busy database, a large commit) is never shed as idle for a newcomer.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use protocol_core::PeerError;

use crate::admission::limiter::Slot;
use crate::handler::sync::Dispatch;
use crate::Conn;

/// `D`, reporting its work on each input to the connection's [`Slot`].
pub struct AdmittedDispatch<D> {
    inner: D,
    slot: Arc<Slot>,
}

impl<D: Dispatch> AdmittedDispatch<D> {
    /// `inner`, serving the connection that holds `slot`.
    pub fn new(inner: D, slot: Arc<Slot>) -> Self {
        AdmittedDispatch { inner, slot }
    }
}

impl<D: Dispatch> Dispatch for AdmittedDispatch<D> {
    async fn pump(&mut self, input: &mut BytesMut, now: Instant) -> Option<PeerError> {
        // Dropped when the pump ends or is cancelled at its deadline.
        let _working = (!input.is_empty()).then(|| self.slot.working());
        self.inner.pump(input, now).await
    }

    fn conn(&mut self) -> &mut Conn {
        self.inner.conn()
    }

    async fn close(&mut self) {
        self.inner.close().await
    }

    fn cancel_safe(&self) -> bool {
        self.inner.cancel_safe()
    }
}
