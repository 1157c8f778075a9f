//! What a client session tells its driver: whether the run is over, what it needs, the
//! events and bytes it has (steps 2 and 4 of the calling order in the
//! [module docs](super)).

use bytes::BytesMut;
use rand_core::CryptoRngCore;

use super::*;

impl<R: CryptoRngCore> ClientSession<R> {
    /// Whether the run is over (finished or failed).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done | State::Failed)
    }

    /// Why the run failed, if it did.
    pub fn failure(&self) -> Option<&ClientFailure> {
        self.failure.as_ref()
    }

    /// Our checksum of the file, once a send of it is complete and the server has
    /// answered with its own (1603); `None` before.
    pub fn file_checksum(&self) -> Option<u32> {
        self.file_checksum
    }

    /// The client id (zero until registered).
    pub fn client_id(&self) -> ClientId {
        self.client_id
    }

    /// Whether the session wants more of the file now: it is sending, and what it has
    /// queued for transmission is below two packets.
    pub fn wants_file_data(&self) -> bool {
        match (&self.send, self.state) {
            (Some(send), State::Uploading) => {
                (self.out.len() as u64) < 2 * send.layout.unit + 64 * 1024
            }
            _ => false,
        }
    }

    /// File bytes of this send in the requests [`poll_transmit`](Self::poll_transmit)
    /// has handed out so far: what has left the session, as opposed to the bytes
    /// packed and queued that [`ClientEvent::Progress`] counts. A driver that knows
    /// when its writes complete reports progress from this.
    pub fn file_bytes_transmitted(&self) -> u64 {
        self.out.handed
    }

    /// Bytes per packet actually used (after rounding and growing for large files).
    pub fn packet_unit(&self) -> u64 {
        Layout::new(self.config.file_size, &self.config.dialect)
            .map(|l| l.unit)
            .unwrap_or(0)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Appends the whole requests the session has to send to `out`; a request still
    /// being built (the last packet before [`end_of_file`](Self::end_of_file)) stays.
    /// With [`crate::Dialect::one_request_per_write`], one request per call: write
    /// what a call appended with one write, then call again until nothing comes. With
    /// [`crate::Dialect::connection_per_request`], one request at a time, and nothing
    /// while a request awaits its answer or a new connection is due.
    pub fn poll_transmit(&mut self, out: &mut BytesMut) {
        if self.config.dialect.connection_per_request {
            if self.in_flight || self.need_connection {
                return;
            }
            let start = out.len();
            if self.out.take_one(out) == 0 {
                return;
            }
            let code = wire::peek_request_header(&out[start..])
                .ok()
                .flatten()
                .map(|(_, code, _)| code);
            if code == Some(RequestCode::CrcRetry) {
                // 901 has no answer: the next request goes on a new connection at once.
                self.need_connection = true;
                self.events.push_back(ClientEvent::NewConnection);
            } else {
                self.in_flight = true;
            }
            return;
        }
        if self.config.dialect.one_request_per_write {
            self.out.take_one(out);
        } else {
            self.out.take_all(out);
        }
    }

    /// Variant 7: the new connection asked for by [`ClientEvent::NewConnection`] is open.
    pub fn connection_opened(&mut self) {
        self.need_connection = false;
    }
}
