//! The bytes a session has queued, and where its whole requests end.
//!
//! A stream-encrypted packet is built in place: its header first, then its content as
//! the encryptor releases it (the last block only at the end of the file). Until the
//! packet is whole it must not leave: a server that reads a request with one `recv`
//! (variants 9 and 13) fails on a request that arrives in two writes. So the outbox
//! hands out only whole requests, and can hand them out one at a time.

use std::collections::VecDeque;

use bytes::BytesMut;

#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// Whole requests, then at most one request still being built.
    pub buf: BytesMut,
    /// Lengths of the whole requests at the front of `buf`, in order, each with the
    /// file bytes sent once it has gone (file packets only).
    whole: VecDeque<(usize, Option<u64>)>,
    /// Bytes of `buf` that are whole requests (the sum of `whole`).
    ready: usize,
    /// File bytes in the packets handed out so far in this send.
    pub handed: u64,
}

impl Outbox {
    /// Everything appended since the last mark is one whole request.
    pub fn mark_whole(&mut self) {
        self.mark(None);
    }

    /// As [`mark_whole`](Self::mark_whole), for a file packet after which `sent`
    /// bytes of the file have been packed.
    pub fn mark_whole_file(&mut self, sent: u64) {
        self.mark(Some(sent));
    }

    fn mark(&mut self, sent: Option<u64>) {
        let len = self.buf.len() - self.ready;
        if len > 0 {
            self.whole.push_back((len, sent));
            self.ready = self.buf.len();
        }
    }

    /// Drops a request that was being built and will not be finished (the file is
    /// sent again from its start). It never left, so the server saw none of it.
    pub fn drop_unfinished(&mut self) {
        self.buf.truncate(self.ready);
    }

    /// Bytes queued, whole or not.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Appends the first whole request to `out`; returns its length (0: none).
    pub fn take_one(&mut self, out: &mut BytesMut) -> usize {
        let Some((len, sent)) = self.whole.pop_front() else {
            return 0;
        };
        if let Some(sent) = sent {
            self.handed = sent;
        }
        self.ready -= len;
        out.extend_from_slice(&self.buf.split_to(len));
        len
    }

    /// Appends every whole request to `out`.
    pub fn take_all(&mut self, out: &mut BytesMut) {
        if self.ready == 0 {
            return;
        }
        if let Some(sent) = self.whole.iter().rev().find_map(|w| w.1) {
            self.handed = sent;
        }
        self.whole.clear();
        let whole = self.buf.split_to(self.ready);
        self.ready = 0;
        if out.is_empty() {
            *out = whole;
        } else {
            out.extend_from_slice(&whole);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_requests_leave() {
        let mut o = Outbox::default();
        o.buf.extend_from_slice(b"abc");
        o.mark_whole();
        o.buf.extend_from_slice(b"de");
        let mut out = BytesMut::new();
        o.take_all(&mut out);
        assert_eq!(&out[..], b"abc");
        o.buf.extend_from_slice(b"f");
        o.mark_whole();
        o.buf.extend_from_slice(b"gh");
        o.mark_whole();
        out.clear();
        assert_eq!(o.take_one(&mut out), 3);
        assert_eq!(&out[..], b"def");
        o.buf.extend_from_slice(b"xyz");
        o.drop_unfinished();
        assert_eq!(o.take_one(&mut out), 2);
        assert_eq!(o.take_one(&mut out), 0);
        assert_eq!(o.len(), 0);
    }

    #[test]
    fn file_bytes_count_once_their_packet_is_handed_out() {
        let mut o = Outbox::default();
        o.buf.extend_from_slice(b"p1");
        o.mark_whole_file(10);
        o.buf.extend_from_slice(b"p2");
        o.mark_whole_file(20);
        o.buf.extend_from_slice(b"crc");
        o.mark_whole();
        assert_eq!(o.handed, 0, "queued is not handed out");
        let mut out = BytesMut::new();
        o.take_one(&mut out);
        assert_eq!(o.handed, 10);
        o.take_all(&mut out);
        assert_eq!(o.handed, 20);
    }
}
