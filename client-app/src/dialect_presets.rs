//! Named dialect presets: the variant combinations that deployed servers use
//! (docs/PROTOCOL.md section 8), one word each. The single dialect options of
//! [`crate::cli::Cli`] add to the preset.

use clap::ValueEnum;
use protocol_core::{Dialect, PacketFieldOrder};

/// Packets this small or smaller are the small-packet mode of one-`recv` servers:
/// each request then goes out in a write of its own.
pub const SMALL_PACKET: usize = 4096;

/// A named combination of variants.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// The default: the specification first (or the preset remembered in me.server for
    /// this server), then the preset the server's answers point to (at most one try of
    /// each); the one that worked is remembered.
    Auto,
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
    /// Servers that read the total packets before the packet number and decrypt each
    /// packet on its own (variants 2, 4): --total-first --per-packet-encryption.
    TotalFirstPerPacket,
}

/// The presets `auto` may use: spec first, then the one the server's answers point
/// to (see `auto`). per-connection is not among them: a server that closes after
/// each answer fails before any file is sent, which no answer tells apart from a
/// crash.
pub const AUTO_CANDIDATES: [Preset; 4] = [
    Preset::Spec,
    Preset::OneRecv,
    Preset::TotalFirstPerPacket,
    Preset::Padded,
];

impl Preset {
    /// The dialect the preset stands for.
    pub fn dialect(self) -> Dialect {
        let one_recv = Dialect {
            packet_size: 1024,
            one_request_per_write: true,
            ..Dialect::default()
        };
        match self {
            Preset::Auto | Preset::Spec => Dialect::default(),
            Preset::TotalFirstPerPacket => Dialect {
                packet_fields: PacketFieldOrder::TotalFirst,
                per_packet_encryption: true,
                ..Dialect::default()
            },
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

    /// As the option is written (`--dialect NAME`), and as `me.server` records it.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Auto => "auto",
            Preset::Spec => "spec",
            Preset::OneRecv => "one-recv",
            Preset::Padded => "padded",
            Preset::PerConnection => "per-connection",
            Preset::TotalFirstPerPacket => "total-first-per-packet",
        }
    }

    /// The preset of a name as [`Preset::name`] writes it (`auto` is no choice, so none).
    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::value_variants()
            .iter()
            .copied()
            .find(|p| *p != Preset::Auto && p.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use protocol_core::{ByteOrder, Dialect, PacketFieldOrder};

    use super::Preset;
    use crate::cli::Cli;

    fn parse(args: &[&str]) -> Dialect {
        let mut all = vec!["client"];
        all.extend_from_slice(args);
        let cli = Cli::parse_from(all);
        cli.dialect_with(cli.preset)
    }

    #[test]
    fn presets_and_flags() {
        assert_eq!(parse(&[]), Dialect::default());
        let one = parse(&["--dialect", "one-recv"]);
        assert_eq!((one.packet_size, one.one_request_per_write), (1024, true));
        let padded = parse(&["--dialect", "padded"]);
        assert!(padded.pad_packets && padded.one_request_per_write);
        let tf = parse(&["--dialect", "total-first-per-packet"]);
        assert!(tf.per_packet_encryption && tf.packet_fields == PacketFieldOrder::TotalFirst);
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

    #[test]
    fn auto_is_the_default_and_any_dialect_option_turns_it_off() {
        let cli = |args: &[&str]| {
            let mut all = vec!["client"];
            all.extend_from_slice(args);
            Cli::parse_from(all)
        };
        assert!(cli(&[]).auto());
        assert!(cli(&["--checksum", "crc32"]).auto());
        assert!(!cli(&["--dialect", "spec"]).auto());
        assert!(!cli(&["--total-first"]).auto());
        assert!(!cli(&["--packet-size", "1024"]).auto());
        for p in super::AUTO_CANDIDATES {
            assert_eq!(Preset::from_name(p.name()), Some(p));
        }
        assert_eq!(Preset::from_name("auto"), None);
    }
}
