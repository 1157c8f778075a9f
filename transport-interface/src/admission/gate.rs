//! Admission as every transport does it: the caps and the failure bucket at
//! accept, and, with `--proxy-protocol`, again under the client's own address once
//! the PROXY header has named it. The transports only move bytes.
//!
//! A listed balancer's connection is admitted at accept under the balancer's
//! address against the overall cap only (every client behind it shares that
//! address), so that connections still waiting for their header are counted and,
//! having sent no request, are the first to be shed. Once the header is read its
//! slot is given back and the connection is admitted as the client's: per-address
//! cap, failure bucket, 1607 if refused.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protocol_core::InputBudget;
use rand_core::OsRng;
use tracing::{debug, info, warn};

use crate::admission::limiter::{AcceptBackoff, ConnectionGuard, ConnectionLimiter, RateLog};
use crate::admission::preface::{address_group, Preface, PrefaceError, PrefaceStep};
use crate::admission::rate::AddressRates;
use crate::options::ServerOptions;
use crate::Conn;

/// The admission state of a server: its limiter, its rate buckets, the input
/// budget its connections share, the pause after a failed accept, and the
/// once-a-second log of refusals and failed accepts.
#[derive(Debug)]
pub struct Gate {
    limiter: Arc<ConnectionLimiter>,
    rates: Arc<AddressRates>,
    options: Arc<ServerOptions>,
    budget: InputBudget,
    refusals: RateLog,
    bad_prefaces: RateLog,
    accept_errors: RateLog,
    backoff: Mutex<AcceptBackoff>,
}

/// A connection admitted at accept.
#[derive(Debug)]
pub struct Entry {
    /// The connection's peer.
    pub peer: SocketAddr,
    /// Its slot.
    pub guard: ConnectionGuard,
    /// What its first bytes must be checked for (`None`: the PROXY protocol is off).
    pub preface: Option<Preface>,
}

/// What to do with a connection once its first bytes were looked at.
#[derive(Debug)]
pub enum Settled {
    /// Serve it as `client`'s, starting with `input` (bytes already read past
    /// any header, counted in the slot).
    Serve {
        /// Its slot, under the client's address.
        guard: ConnectionGuard,
        /// The client.
        client: SocketAddr,
        /// The protocol bytes already read.
        input: BytesMut,
    },
    /// Over a cap or the client's failure bucket: send a 1607 and close.
    Busy {
        /// The client.
        client: SocketAddr,
    },
    /// Close without an answer (logged here): a bad, missing or unexpected PROXY
    /// header, or none in time.
    Close {
        /// The peer.
        peer: SocketAddr,
        /// Whether to count it as refused: not when a balancer's connection closed
        /// without sending a byte (a TCP check, a port probe).
        count: bool,
    },
}

impl Gate {
    /// A gate for `options`, counting failures in `rates`.
    pub fn new(options: Arc<ServerOptions>, rates: Arc<AddressRates>) -> Gate {
        Gate {
            limiter: Arc::new(ConnectionLimiter::default()),
            rates,
            budget: options.new_input_budget(),
            options,
            refusals: RateLog::default(),
            bad_prefaces: RateLog::default(),
            accept_errors: RateLog::default(),
            backoff: Mutex::new(AcceptBackoff::default()),
        }
    }

    /// Accepting failed (out of file descriptors and the like): logged once a
    /// second with a count; how long to pause before the next accept (the open
    /// connections are served meanwhile).
    pub fn accept_failed(&self, e: &io::Error) -> Duration {
        if let Some(n) = self.accept_errors.note(Instant::now()) {
            warn!("accept failed {n} time(s) in the last second: {e}");
        }
        self.backoff().failed()
    }

    fn backoff(&self) -> std::sync::MutexGuard<'_, AcceptBackoff> {
        self.backoff.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection for a settled client: the options' configuration, keys and
    /// ids from the OS, input counted in the server's shared budget.
    pub fn connection(&self) -> Conn {
        Conn::new(self.options.config.clone(), OsRng, Instant::now())
            .with_budget(self.budget.clone())
    }

    /// The server stops accepting: logs how many connections it waits for.
    pub fn stopping(&self) {
        info!(
            "shutting down: waiting for {} connection(s)",
            self.limiter.open()
        );
    }

    /// The connections counted.
    pub fn limiter(&self) -> &Arc<ConnectionLimiter> {
        &self.limiter
    }

    /// The options the gate applies.
    pub fn options(&self) -> &Arc<ServerOptions> {
        &self.options
    }

    /// A connection from `peer` was accepted: its slot, or `None` if it is to be
    /// refused with a 1607 (logged here, once a second with a count).
    pub fn accept(&self, peer: SocketAddr) -> Option<Entry> {
        self.backoff().succeeded();
        let from = &self.options.proxy_from;
        if from.is_enabled() && from.lists(peer.ip()) {
            let max = self.options.max_connections;
            let guard = self.limiter.try_acquire(peer.ip(), max, max);
            if guard.is_none() {
                self.note_refusal();
            }
            return guard.map(|guard| Entry {
                peer,
                guard,
                preface: Some(Preface { peer, listed: true }),
            });
        }
        let guard = self.admit(peer)?;
        Some(Entry {
            peer,
            guard,
            preface: from.is_enabled().then_some(Preface {
                peer,
                listed: false,
            }),
        })
    }

    /// Admits `client` (its group's failure bucket, the overall and per-address caps).
    fn admit(&self, client: SocketAddr) -> Option<ConnectionGuard> {
        let group = address_group(client.ip(), self.options.ipv6_prefix);
        let guard = if self.rates.admits(client.ip(), Instant::now()) {
            self.limiter.try_acquire(
                group,
                self.options.max_connections,
                self.options.max_connections_per_ip,
            )
        } else {
            None
        };
        if guard.is_none() {
            self.note_refusal();
        }
        guard
    }

    fn note_refusal(&self) {
        if let Some(n) = self.refusals.note(Instant::now()) {
            warn!("refused {n} connection(s) in the last second: too many connections or failures");
        }
    }

    /// Where `entry`'s first bytes (`buf`, after `step` said so) lead: serve,
    /// refuse with a 1607, or close. Refusals for the header are logged here.
    /// Without a preface (the PROXY protocol off) the connection is served as is.
    pub fn settle(&self, entry: Entry, step: PrefaceStep, mut buf: BytesMut) -> Settled {
        let Some(preface) = entry.preface else {
            return Settled::Serve {
                client: entry.peer,
                guard: entry.guard,
                input: buf,
            };
        };
        let peer = preface.peer;
        match step {
            PrefaceStep::Read => {
                // Not reached: the transport reads until the step is decided.
                self.bad_preface(peer, &PrefaceError::Closed);
                Settled::Close { peer, count: true }
            }
            PrefaceStep::Refuse(e) => {
                let silent = e == PrefaceError::Closed && buf.is_empty();
                if silent {
                    debug!(%peer, "closed before sending a byte");
                } else {
                    self.bad_preface(peer, &e);
                }
                Settled::Close {
                    peer,
                    count: !silent,
                }
            }
            PrefaceStep::Serve { client, skip } => {
                let input = buf.split_off(skip.min(buf.len()));
                if !preface.listed {
                    return Settled::Serve {
                        guard: entry.guard,
                        client,
                        input,
                    };
                }
                drop(entry.guard);
                let Some(guard) = self.admit(client) else {
                    return Settled::Busy { client };
                };
                // The new slot has seen none of the bytes read so far (the transport
                // counted them in the balancer's slot).
                guard.slot().note_read(input.len());
                debug!(%client, balancer = %peer, "PROXY header read");
                Settled::Serve {
                    guard,
                    client,
                    input,
                }
            }
        }
    }

    /// Logs a connection closed for its header: a warning once a second with a
    /// count, naming the last peer.
    fn bad_preface(&self, peer: SocketAddr, e: &PrefaceError) {
        if let Some(n) = self.bad_prefaces.note(Instant::now()) {
            warn!(%peer, "closed {n} connection(s) in the last second before their first request: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::proxy;

    fn gate(per_ip: usize) -> Gate {
        let options = ServerOptions {
            max_connections: 10,
            max_connections_per_ip: per_ip,
            proxy_from: "127.0.0.1".parse().unwrap(),
            ..ServerOptions::default()
        };
        let rates = AddressRates::from_options(&options);
        Gate::new(Arc::new(options), rates)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Accepts from `peer` and settles on `bytes` as the transports do.
    fn connect(gate: &Gate, peer: &str, bytes: &[u8]) -> Option<Settled> {
        let entry = gate.accept(addr(peer))?;
        let preface = entry.preface?;
        let step = preface.step(bytes);
        Some(gate.settle(entry, step, BytesMut::from(bytes)))
    }

    #[test]
    fn a_balancers_connection_is_admitted_as_the_client_it_names() {
        let gate = gate(1);
        let lb = "127.0.0.1:5000";
        let mut bytes = proxy::encode(addr("192.0.2.7:4000"), addr("127.0.0.1:1256"));
        bytes.extend_from_slice(b"request");
        let Some(Settled::Serve {
            guard,
            client,
            input,
        }) = connect(&gate, lb, &bytes)
        else {
            panic!("not served");
        };
        assert_eq!(client, addr("192.0.2.7:4000"));
        assert_eq!(&input[..], b"request");
        assert_eq!(
            gate.limiter().open(),
            1,
            "the balancer's slot was given back"
        );
        guard.slot().note_read(100);
        // The same client again: over its cap of 1 (its first is busy), refused.
        assert!(matches!(
            connect(&gate, lb, &bytes),
            Some(Settled::Busy { client }) if client == addr("192.0.2.7:4000")
        ));
        // Another client through the same balancer has a cap of its own.
        let other = proxy::encode(addr("192.0.2.8:4000"), addr("127.0.0.1:1256"));
        assert!(matches!(
            connect(&gate, lb, &other),
            Some(Settled::Serve { .. })
        ));
        drop(guard);
    }

    #[test]
    fn headers_where_none_belongs_and_none_where_one_does_are_closed() {
        let gate = gate(4);
        let header = proxy::encode(addr("192.0.2.7:4000"), addr("127.0.0.1:1256"));
        assert!(matches!(
            connect(&gate, "127.0.0.2:5000", &header),
            Some(Settled::Close { count: true, .. })
        ));
        assert!(matches!(
            connect(&gate, "127.0.0.1:5000", b"\x00\x01\x02"),
            Some(Settled::Close { count: true, .. })
        ));
        // A client that is not a balancer and sends no header is served as itself.
        assert!(matches!(
            connect(&gate, "127.0.0.2:5001", b"\x00\x01\x02"),
            Some(Settled::Serve { client, .. }) if client == addr("127.0.0.2:5001")
        ));
        // A balancer's connection that closed without a byte is not counted.
        let entry = gate.accept(addr("127.0.0.1:5002")).unwrap();
        let step = entry.preface.unwrap().end(false);
        assert!(matches!(
            gate.settle(entry, step, BytesMut::new()),
            Settled::Close { count: false, .. }
        ));
    }
}
