//! Who a connection is from: the balancers trusted to send a PROXY header
//! ([`ProxyFrom`]), what a connection's first bytes say ([`Preface`], sans-IO), and
//! the address limits count a client under ([`address_group`]).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use thiserror::Error;

use crate::admission::proxy::{self, Parsed, ProxyError, SIGNATURE};

/// One address or network (`10.0.0.0/8`, `::1`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                mask(u128::from(u32::from(a)), 32, self.prefix) == u128::from(u32::from(n))
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                mask(u128::from(a), 128, self.prefix) == u128::from(n)
            }
            _ => false,
        }
    }
}

/// `bits` of an address `width` bits wide, keeping the first `prefix`.
fn mask(bits: u128, width: u8, prefix: u8) -> u128 {
    let drop = u32::from(width.saturating_sub(prefix));
    if drop >= 128 {
        0
    } else {
        (bits >> drop) << drop
    }
}

/// A `--proxy-protocol` value that is not a list of addresses and networks.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProxyFromError {
    /// An entry that is not an IP address (before an optional `/prefix`).
    #[error("{0:?} is not an IP address or network (10.0.0.0/8, ::1)")]
    Address(String),
    /// A prefix that is not a number up to 32 (IPv4) or 128 (IPv6).
    #[error("{0:?}: the prefix length must be at most 32 for IPv4 and 128 for IPv6")]
    Prefix(String),
    /// Nothing listed.
    #[error("no address listed")]
    Empty,
}

impl FromStr for Cidr {
    type Err = ProxyFromError;
    fn from_str(s: &str) -> Result<Cidr, ProxyFromError> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| ProxyFromError::Address(s.to_string()))?;
        let ip = ip.to_canonical();
        let width = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| ProxyFromError::Prefix(s.to_string()))?,
        };
        let network = match ip {
            IpAddr::V4(v4) => {
                let bits = mask(u128::from(u32::from(v4)), 32, prefix);
                IpAddr::V4(u32::try_from(bits).unwrap_or(0).into())
            }
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask(u128::from(v6), 128, prefix))),
        };
        Ok(Cidr { network, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The balancers whose connections start with a PROXY v2 header
/// (`--proxy-protocol`). Empty (the default): no connection is expected to carry
/// one, and none is looked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyFrom(Vec<Cidr>);

impl ProxyFrom {
    /// Whether any balancer is listed (the PROXY protocol is on).
    pub fn is_enabled(&self) -> bool {
        !self.0.is_empty()
    }
    /// Whether a connection from `ip` must start with a PROXY header.
    pub fn lists(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
    /// The networks listed.
    pub fn networks(&self) -> &[Cidr] {
        &self.0
    }
}

impl FromStr for ProxyFrom {
    type Err = ProxyFromError;
    /// A comma-separated list: `127.0.0.1,10.0.0.0/8,::1`.
    fn from_str(s: &str) -> Result<ProxyFrom, ProxyFromError> {
        let list = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(Cidr::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err(ProxyFromError::Empty);
        }
        Ok(ProxyFrom(list))
    }
}

/// The address the per-address limits count `ip` under: an IPv4 address whole
/// (an IPv4-mapped IPv6 address as that IPv4 address), an IPv6 address by its
/// first `ipv6_prefix` bits (64: one site's /64, which one host may fill with
/// addresses of its own choosing).
pub fn address_group(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask(
            u128::from(v6),
            128,
            ipv6_prefix.min(128),
        ))),
    }
}

/// What a connection's first bytes are to be checked for, when the PROXY protocol
/// is on: a listed balancer's connection must start with a header, anyone
/// else's must not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preface {
    /// The connection's peer (a balancer, if listed).
    pub peer: SocketAddr,
    /// Whether `peer` is a listed balancer.
    pub listed: bool,
}

/// What to do after looking at a connection's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefaceStep {
    /// Undecided: read more (the transport bounds the wait).
    Read,
    /// Serve the connection as `client`'s; its protocol bytes start at `skip`.
    Serve {
        /// The client: from the header, or the peer itself.
        client: SocketAddr,
        /// Bytes of header to drop before the protocol's.
        skip: usize,
    },
    /// Close the connection without an answer.
    Refuse(PrefaceError),
}

/// Why a connection was closed before its first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PrefaceError {
    /// A listed balancer's connection with a malformed or unsupported header.
    #[error("bad PROXY header: {0}")]
    Header(ProxyError),
    /// A listed balancer's connection without a header.
    #[error("no PROXY header from a listed balancer")]
    Missing,
    /// A PROXY header from an address not listed in --proxy-protocol: someone
    /// trying to pass as another client.
    #[error("PROXY header from an address not listed in --proxy-protocol")]
    Unlisted,
    /// The header did not arrive in time.
    #[error("no whole PROXY header within the time allowed")]
    Timeout,
    /// The peer closed before a whole header.
    #[error("closed before a whole PROXY header")]
    Closed,
}

impl Preface {
    /// The answer for the bytes received so far.
    pub fn step(&self, buf: &[u8]) -> PrefaceStep {
        let parsed = proxy::parse(buf);
        if !self.listed {
            return match parsed {
                Err(ProxyError::NoSignature) => PrefaceStep::Serve {
                    client: self.peer,
                    skip: 0,
                },
                _ if buf.len() >= SIGNATURE.len() => PrefaceStep::Refuse(PrefaceError::Unlisted),
                _ => PrefaceStep::Read,
            };
        }
        match parsed {
            Ok(Parsed::NeedMore) => PrefaceStep::Read,
            Ok(Parsed::Header { source, len, .. }) => PrefaceStep::Serve {
                client: source,
                skip: len,
            },
            Ok(Parsed::Local { len }) => PrefaceStep::Serve {
                client: self.peer,
                skip: len,
            },
            Err(ProxyError::NoSignature) => PrefaceStep::Refuse(PrefaceError::Missing),
            Err(e) => PrefaceStep::Refuse(PrefaceError::Header(e)),
        }
    }

    /// The answer when the peer closed, or the wait ran out (`timed_out`), with
    /// `buf` undecided: a balancer's connection is refused; anyone else's goes to
    /// the protocol, which judges a partial request or a silence by its own rules.
    pub fn end(&self, timed_out: bool) -> PrefaceStep {
        match (self.listed, timed_out) {
            (false, _) => PrefaceStep::Serve {
                client: self.peer,
                skip: 0,
            },
            (true, true) => PrefaceStep::Refuse(PrefaceError::Timeout),
            (true, false) => PrefaceStep::Refuse(PrefaceError::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lists_of_addresses_and_networks() {
        let from: ProxyFrom = "127.0.0.1, 10.0.0.0/8,::1,2001:db8::/32".parse().unwrap();
        for yes in [
            "127.0.0.1",
            "10.200.3.4",
            "::1",
            "2001:db8:ffff::9",
            "::ffff:10.1.2.3",
        ] {
            assert!(from.lists(ip(yes)), "{yes}");
        }
        for no in ["127.0.0.2", "11.0.0.1", "::2", "2001:db9::1", "0.0.0.0"] {
            assert!(!from.lists(ip(no)), "{no}");
        }
        assert!(!ProxyFrom::default().lists(ip("127.0.0.1")));
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "0.0.0.0/0"
                .parse::<Cidr>()
                .map(|c| c.contains(ip("1.2.3.4"))),
            Ok(true)
        );
        for bad in [
            "",
            " , ",
            "10.0.0.0/33",
            "::1/129",
            "host",
            "10.0.0.0/x",
            "10.0.0/8",
        ] {
            assert!(bad.parse::<ProxyFrom>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_is_counted_by_prefix_and_ipv4_whole() {
        let a = address_group(ip("2001:db8:1:2:aaaa::1"), 64);
        assert_eq!(a, ip("2001:db8:1:2::"));
        assert_eq!(a, address_group(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), 64));
        assert_ne!(a, address_group(ip("2001:db8:1:3::1"), 64));
        assert_eq!(address_group(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(address_group(ip("2001:db8::1"), 200), ip("2001:db8::1"));
        assert_eq!(address_group(ip("2001:db8::1"), 0), ip("::"));
        assert_eq!(address_group(ip("192.0.2.1"), 64), ip("192.0.2.1"));
        assert_eq!(address_group(ip("::ffff:192.0.2.1"), 64), ip("192.0.2.1"));
    }

    #[test]
    fn a_balancer_must_send_a_header_and_nobody_else_may() {
        let client: SocketAddr = "127.0.0.2:4000".parse().unwrap();
        let lb: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let header = proxy::encode(client, "127.0.0.1:1256".parse().unwrap());
        let listed = Preface {
            peer: lb,
            listed: true,
        };
        let other = Preface {
            peer: lb,
            listed: false,
        };
        assert_eq!(listed.step(&header[..20]), PrefaceStep::Read);
        assert_eq!(
            listed.step(&header),
            PrefaceStep::Serve { client, skip: 28 }
        );
        assert_eq!(
            listed.step(&proxy::encode_local()),
            PrefaceStep::Serve {
                client: lb,
                skip: 16
            }
        );
        assert_eq!(
            listed.step(b"\x00\x01"),
            PrefaceStep::Refuse(PrefaceError::Missing)
        );
        assert_eq!(listed.end(true), PrefaceStep::Refuse(PrefaceError::Timeout));
        assert_eq!(listed.end(false), PrefaceStep::Refuse(PrefaceError::Closed));
        assert_eq!(other.step(&header[..11]), PrefaceStep::Read);
        assert_eq!(
            other.step(&header[..12]),
            PrefaceStep::Refuse(PrefaceError::Unlisted)
        );
        assert_eq!(
            other.step(&header),
            PrefaceStep::Refuse(PrefaceError::Unlisted)
        );
        assert_eq!(other.step(b""), PrefaceStep::Read);
        assert_eq!(
            other.step(b"\x00"),
            PrefaceStep::Serve {
                client: lb,
                skip: 0
            }
        );
        assert_eq!(
            other.step(b"\r\n\r\n\x01"),
            PrefaceStep::Serve {
                client: lb,
                skip: 0
            }
        );
        assert_eq!(
            other.end(true),
            PrefaceStep::Serve {
                client: lb,
                skip: 0
            }
        );
    }

    proptest! {
        #[test]
        fn any_first_bytes_get_an_answer_without_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..1100),
            listed in any::<bool>(),
        ) {
            let p = Preface { peer: "10.0.0.1:1".parse().unwrap(), listed };
            match p.step(&bytes) {
                PrefaceStep::Read => prop_assert!(bytes.len() < proxy::MAX_HEADER_LEN),
                PrefaceStep::Serve { skip, .. } => prop_assert!(skip <= bytes.len()),
                PrefaceStep::Refuse(_) => {}
            }
        }
    }
}
