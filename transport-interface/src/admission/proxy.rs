//! The PROXY protocol, version 2 (HAProxy's `send-proxy-v2`): a binary header a
//! balancer sends before the client's bytes, naming the client's address.
//!
//! Sans-IO: [`parse`] looks at the bytes received so far and says whether more are
//! needed, what the header says, or why it is refused; it never panics and never
//! asks for more than [`MAX_HEADER_LEN`] bytes. The transports do the reading
//! ([`crate::Preface`] decides what to do with the answer).
//!
//! The header: the 12-byte [`SIGNATURE`], a version/command byte (`0x20` LOCAL,
//! `0x21` PROXY), a family/transport byte (`0x11` TCP over IPv4, `0x21` TCP over
//! IPv6), a 16-bit big-endian length of what follows, then the addresses (source,
//! destination, source port, destination port) and optional TLVs, which are skipped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

/// The 12 bytes every version 2 header starts with (`\r\n\r\n\0\r\nQUIT\n`).
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The fixed part: signature, version/command, family, length.
pub const FIXED_LEN: usize = 16;

/// The longest header accepted, TLVs included. HAProxy's `send-proxy-v2` without
/// `proxy-v2-options` sends 28 bytes (IPv4) or 52 (IPv6); the bound leaves room for
/// a few TLVs (a unique id, an authority) without letting a peer make the server
/// buffer 64 KiB per connection before anything is known of it.
pub const MAX_HEADER_LEN: usize = 1024;

const IPV4_BLOCK: usize = 12;
const IPV6_BLOCK: usize = 36;

/// What the bytes received so far hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole header yet (and nothing wrong so far): read more.
    NeedMore,
    /// A PROXY command: the connection is `source`'s, relayed to `destination`.
    /// The first `len` bytes are the header; what follows is the client's.
    Header {
        /// The client, as the balancer saw it.
        source: SocketAddr,
        /// The address the client connected to (the balancer's frontend).
        destination: SocketAddr,
        /// The header's length, TLVs included.
        len: usize,
    },
    /// A LOCAL command (the balancer's own connection, a health check): the real
    /// endpoints stand. The first `len` bytes are the header.
    Local {
        /// The header's length, TLVs included.
        len: usize,
    },
}

/// Why the bytes are not a header this server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProxyError {
    /// The bytes do not start with [`SIGNATURE`]: no PROXY v2 header at all (a
    /// client speaking the protocol directly, or the text form of version 1).
    #[error("no PROXY v2 signature")]
    NoSignature,
    /// A version other than 2.
    #[error("PROXY header version {0}, not 2")]
    Version(u8),
    /// A command other than LOCAL (0) or PROXY (1).
    #[error("PROXY header command {0}, neither LOCAL nor PROXY")]
    Command(u8),
    /// A PROXY command for anything but TCP over IPv4 or IPv6 (UDP, a Unix
    /// socket, an unspecified family): the family/transport byte.
    #[error("PROXY header for family/transport {0:#04x}, not TCP over IPv4 or IPv6")]
    Family(u8),
    /// A declared length past [`MAX_HEADER_LEN`].
    #[error("PROXY header of {0} bytes, more than {MAX_HEADER_LEN}")]
    TooLong(usize),
    /// A declared length too short for the addresses of its family.
    #[error("PROXY header's address block of {0} bytes is too short for its family")]
    TooShort(usize),
}

/// Parses a PROXY v2 header at the start of `buf`.
///
/// Refuses as soon as the bytes cannot be a header ([`ProxyError::NoSignature`] at
/// the first byte that differs from the signature, a bad version at the 13th, a
/// length past [`MAX_HEADER_LEN`] once the 16 fixed bytes are in), so that a caller
/// reading until this answers never holds more than [`MAX_HEADER_LEN`] bytes.
///
/// ```
/// use transport_interface::proxy::{encode, parse, Parsed};
/// let client = "192.0.2.7:50000".parse().unwrap();
/// let frontend = "198.51.100.1:1256".parse().unwrap();
/// let mut bytes = encode(client, frontend);
/// bytes.extend_from_slice(b"the client's request");
/// assert_eq!(parse(&bytes[..10]), Ok(Parsed::NeedMore));
/// assert_eq!(
///     parse(&bytes),
///     Ok(Parsed::Header { source: client, destination: frontend, len: 28 })
/// );
/// ```
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let sig = buf.len().min(SIGNATURE.len());
    if buf[..sig] != SIGNATURE[..sig] {
        return Err(ProxyError::NoSignature);
    }
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(Parsed::NeedMore);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Version(ver_cmd >> 4));
    }
    let command = ver_cmd & 0x0f;
    if command > 1 {
        return Err(ProxyError::Command(command));
    }
    let (Some(&family), Some(&hi), Some(&lo)) = (buf.get(13), buf.get(14), buf.get(15)) else {
        return Ok(Parsed::NeedMore);
    };
    let block = usize::from(u16::from_be_bytes([hi, lo]));
    let len = FIXED_LEN + block;
    if len > MAX_HEADER_LEN {
        return Err(ProxyError::TooLong(len));
    }
    let needed = match (command, family) {
        (0, _) => 0,
        (_, 0x11) => IPV4_BLOCK,
        (_, 0x21) => IPV6_BLOCK,
        (_, other) => return Err(ProxyError::Family(other)),
    };
    if block < needed {
        return Err(ProxyError::TooShort(block));
    }
    let Some(addresses) = buf.get(FIXED_LEN..len) else {
        return Ok(Parsed::NeedMore);
    };
    if command == 0 {
        return Ok(Parsed::Local { len });
    }
    let (source, destination) =
        addresses_of(family, addresses).ok_or(ProxyError::TooShort(block))?;
    Ok(Parsed::Header {
        source,
        destination,
        len,
    })
}

/// The source and destination of an address block of `family` (0x11 or 0x21).
fn addresses_of(family: u8, block: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let port = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*block.get(at)?, *block.get(at + 1)?]))
    };
    if family == 0x11 {
        let ip = |at: usize| -> Option<IpAddr> {
            let b: [u8; 4] = block.get(at..at + 4)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        };
        return Some((
            SocketAddr::new(ip(0)?, port(8)?),
            SocketAddr::new(ip(4)?, port(10)?),
        ));
    }
    let ip = |at: usize| -> Option<IpAddr> {
        let b: [u8; 16] = block.get(at..at + 16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(b)))
    };
    Some((
        SocketAddr::new(ip(0)?, port(32)?),
        SocketAddr::new(ip(16)?, port(34)?),
    ))
}

/// The header a balancer sends for a TCP connection from `source` to
/// `destination` (both IPv4: the IPv4 form; otherwise IPv6, an IPv4 address
/// mapped). For tests and tools that stand in for a balancer.
pub fn encode(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.push(0x21);
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&(IPV4_BLOCK as u16).to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21);
            out.extend_from_slice(&(IPV6_BLOCK as u16).to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
        }
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

/// A LOCAL header (what a balancer sends on its own connections, such as health
/// checks), with no address block.
pub fn encode_local() -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_and_ipv6_headers_with_the_clients_bytes_after_them() {
        for (src, dst, len) in [
            ("127.0.0.2:40000", "127.0.0.1:1256", 28),
            ("[2001:db8::7]:40000", "[2001:db8::1]:1256", 52),
        ] {
            let mut bytes = encode(addr(src), addr(dst));
            assert_eq!(bytes.len(), len);
            bytes.extend_from_slice(b"request");
            assert_eq!(
                parse(&bytes),
                Ok(Parsed::Header {
                    source: addr(src),
                    destination: addr(dst),
                    len
                })
            );
            for cut in 0..len {
                assert_eq!(parse(&bytes[..cut]), Ok(Parsed::NeedMore), "cut at {cut}");
            }
        }
    }

    #[test]
    fn local_commands_and_tlvs_are_skipped() {
        assert_eq!(parse(&encode_local()), Ok(Parsed::Local { len: 16 }));
        // A LOCAL command may carry an address block: skipped whole.
        let mut local = encode(addr("10.0.0.1:1"), addr("10.0.0.2:2"));
        local[12] = 0x20;
        assert_eq!(parse(&local), Ok(Parsed::Local { len: 28 }));
        // PROXY with a TLV (type 0x05 unique id, 3 bytes) after the addresses.
        let mut tlv = encode(addr("10.0.0.1:1"), addr("10.0.0.2:2"));
        tlv[15] += 6;
        tlv.extend_from_slice(&[0x05, 0x00, 0x03, b'a', b'b', b'c']);
        assert_eq!(
            parse(&tlv),
            Ok(Parsed::Header {
                source: addr("10.0.0.1:1"),
                destination: addr("10.0.0.2:2"),
                len: 34
            })
        );
    }

    #[test]
    fn malformed_headers_are_refused_as_soon_as_they_show() {
        assert_eq!(parse(b"\x00"), Err(ProxyError::NoSignature));
        assert_eq!(parse(b"\r\n\r\nX"), Err(ProxyError::NoSignature));
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(ProxyError::NoSignature),
            "version 1 is not accepted"
        );
        let good = encode(addr("10.0.0.1:1"), addr("10.0.0.2:2"));
        let with = |at: usize, b: u8| {
            let mut v = good.clone();
            v[at] = b;
            v
        };
        assert_eq!(parse(&with(12, 0x11)), Err(ProxyError::Version(1)));
        assert_eq!(parse(&with(12, 0x22)[..13]), Err(ProxyError::Command(2)));
        assert_eq!(parse(&with(13, 0x12)), Err(ProxyError::Family(0x12)), "UDP");
        assert_eq!(
            parse(&with(13, 0x31)),
            Err(ProxyError::Family(0x31)),
            "unix"
        );
        assert_eq!(parse(&with(13, 0x00)), Err(ProxyError::Family(0x00)));
        assert_eq!(parse(&with(15, 11)), Err(ProxyError::TooShort(11)));
        let mut long = with(14, 0xff);
        long.truncate(16);
        assert_eq!(parse(&long), Err(ProxyError::TooLong(16 + 0xff0c)));
        let mut edge = good[..16].to_vec();
        edge[14..16].copy_from_slice(&((MAX_HEADER_LEN - 16) as u16).to_be_bytes());
        assert_eq!(parse(&edge), Ok(Parsed::NeedMore), "at the bound");
        edge[14..16].copy_from_slice(&((MAX_HEADER_LEN - 15) as u16).to_be_bytes());
        assert_eq!(parse(&edge), Err(ProxyError::TooLong(MAX_HEADER_LEN + 1)));
    }

    fn socket_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(ip.into()), port)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(ip.into()), port)),
        ]
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic_and_within_the_bound(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            match parse(&bytes) {
                Ok(Parsed::NeedMore) => prop_assert!(bytes.len() < MAX_HEADER_LEN),
                Ok(Parsed::Header { len, .. }) | Ok(Parsed::Local { len }) => {
                    prop_assert!(len <= bytes.len() && len <= MAX_HEADER_LEN)
                }
                Err(_) => {}
            }
        }

        #[test]
        fn bytes_after_a_signature_parse_without_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..1200),
        ) {
            let mut bytes = SIGNATURE.to_vec();
            bytes.extend_from_slice(&tail);
            // Every prefix too: what a transport sees read by read.
            for cut in 0..bytes.len() {
                let _ = parse(&bytes[..cut]);
            }
            if let Ok(Parsed::Header { len, .. } | Parsed::Local { len }) = parse(&bytes) {
                prop_assert!(len <= bytes.len() && len <= MAX_HEADER_LEN);
            }
        }

        #[test]
        fn encoded_headers_parse_back(
            src in socket_addr(),
            dst in socket_addr(),
            rest in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let header = encode(src, dst);
            let mut bytes = header.clone();
            bytes.extend_from_slice(&rest);
            let Ok(Parsed::Header { source, destination, len }) = parse(&bytes) else {
                return Err(TestCaseError::fail("not parsed"));
            };
            prop_assert_eq!(len, header.len());
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) if header[13] == 0x21 => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
                _ => a,
            };
            prop_assert_eq!(source, v6(src));
            prop_assert_eq!(destination, v6(dst));
        }
    }
}
