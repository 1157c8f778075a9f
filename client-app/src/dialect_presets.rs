//! Named dialect presets: the variant combinations that deployed servers use
//! (docs/PROTOCOL.md section 8), one word each. The single dialect options of
//! [`crate::cli::Cli`] add to the preset.

use clap::ValueEnum;
use protocol_core::Dialect;

/// Packets this small or smaller are the small-packet mode of one-`recv` servers:
/// each request then goes out in a write of its own.
pub const SMALL_PACKET: usize = 4096;

/// A named combination of variants.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// The specification: 64 KiB packets, one connection.
    Spec,
    /// Servers that read a request with one recv (variants 9, 13): 1 KiB packets,
    /// each request in a write of its own.
    OneRecv,
    /// As one-recv, every 828 with a fixed 1,024-byte content field, zero-filled
    /// past the declared total (variant 12).
    Padded,
    /// Servers that close after each answer (variant 7): a connection per request,
    /// 1 KiB packets.
    PerConnection,
}

impl Preset {
    /// The dialect the preset stands for.
    pub fn dialect(self) -> Dialect {
        let one_recv = Dialect {
            packet_size: 1024,
            one_request_per_write: true,
            ..Dialect::default()
        };
        match self {
            Preset::Spec => Dialect::default(),
            Preset::OneRecv => one_recv,
            Preset::Padded => Dialect {
                pad_packets: true,
                ..one_recv
            },
            Preset::PerConnection => Dialect {
                connection_per_request: true,
                ..one_recv
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use protocol_core::{ByteOrder, Dialect};

    use crate::cli::Cli;

    fn parse(args: &[&str]) -> Dialect {
        let mut all = vec!["client"];
        all.extend_from_slice(args);
        Cli::parse_from(all).dialect()
    }

    #[test]
    fn presets_and_flags() {
        assert_eq!(parse(&[]), Dialect::default());
        let one = parse(&["--dialect", "one-recv"]);
        assert_eq!((one.packet_size, one.one_request_per_write), (1024, true));
        let padded = parse(&["--dialect", "padded"]);
        assert!(padded.pad_packets && padded.one_request_per_write);
        let per = parse(&["--dialect", "per-connection", "--big-endian"]);
        assert!(per.connection_per_request);
        assert_eq!(per.byte_order, ByteOrder::Big);
        // A small packet size alone is the small-packet mode.
        assert!(parse(&["--packet-size", "1024"]).one_request_per_write);
        assert!(!parse(&["--packet-size", "65536"]).one_request_per_write);
        assert_eq!(
            parse(&["--dialect", "one-recv", "--packet-size", "512"]).packet_size,
            512
        );
    }
}
