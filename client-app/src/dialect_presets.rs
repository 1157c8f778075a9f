//! The client's dialect options: a named preset for the variant combinations that
//! deployed servers use (docs/PROTOCOL.md, "Variants seen in the wild"), and the
//! single flags, which add to the preset.

use clap::{Args, ValueEnum};
use protocol_core::crypto::ChecksumAlgorithm;
use protocol_core::{ByteOrder, Dialect, PacketFieldOrder};

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

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Checksum {
    Cksum,
    Crc32,
}

/// How to speak to the server: a preset, then single variants on top of it.
#[derive(Args, Debug, Clone)]
pub struct DialectArgs {
    /// A deployed server's dialect in one word (see the README's preset table).
    #[arg(long, value_enum, default_value_t = Preset::Spec)]
    dialect: Preset,
    /// Content bytes per packet (default: the preset's, 65536 for spec). 4096 or
    /// less also sends each request in a write of its own.
    #[arg(long)]
    packet_size: Option<usize>,
    /// Checksum to compare with the server's.
    #[arg(long, value_enum)]
    checksum: Option<Checksum>,
    /// Write request headers big-endian (variant 1).
    #[arg(long)]
    big_endian: bool,
    /// Write the total packets before the packet number (variant 2).
    #[arg(long)]
    total_first: bool,
    /// Content size of each packet instead of the whole file (variant 3).
    #[arg(long)]
    per_packet_size: bool,
    /// Encrypt each packet on its own (variant 4).
    #[arg(long)]
    per_packet_encryption: bool,
    /// Put the client name in 900/901/902 instead of the file name (variant 5).
    #[arg(long)]
    crc_client_name: bool,
    /// Open a new connection for every request (variant 7: servers that close
    /// after each answer).
    #[arg(long)]
    connection_per_request: bool,
    /// Send each request in a write of its own (variant 13).
    #[arg(long)]
    one_request_per_write: bool,
    /// Send every 828 with a content field of exactly the packet size, zero-filled
    /// past the declared total (variant 12).
    #[arg(long)]
    pad_packets: bool,
}

impl DialectArgs {
    /// The dialect these options ask for.
    pub fn dialect(&self) -> Dialect {
        let mut d = self.dialect.dialect();
        if let Some(n) = self.packet_size {
            d.packet_size = n.max(16);
        }
        if let Some(c) = self.checksum {
            d.checksum = match c {
                Checksum::Cksum => ChecksumAlgorithm::Cksum,
                Checksum::Crc32 => ChecksumAlgorithm::Crc32,
            };
        }
        if self.big_endian {
            d.byte_order = ByteOrder::Big;
        }
        if self.total_first {
            d.packet_fields = PacketFieldOrder::TotalFirst;
        }
        d.per_packet_content_size |= self.per_packet_size;
        d.per_packet_encryption |= self.per_packet_encryption;
        d.crc_carries_client_name |= self.crc_client_name;
        d.connection_per_request |= self.connection_per_request;
        d.pad_packets |= self.pad_packets;
        d.one_request_per_write |= self.one_request_per_write || d.packet_size <= SMALL_PACKET;
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        d: DialectArgs,
    }

    fn parse(args: &[&str]) -> Dialect {
        let mut all = vec!["client"];
        all.extend_from_slice(args);
        Cli::parse_from(all).d.dialect()
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
    }
}
