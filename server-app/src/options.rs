//! The options of serving clients (`server`, `server serve`): listening, limits,
//! timeouts and the dialect spoken. They belong to serving only, so operator commands'
//! help does not list them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use protocol_core::crypto::{AesKeySize, ChecksumAlgorithm};
use protocol_core::{
    ByteOrder, EncryptionMode, Limits, PacketAck, ResponseOrder, ServerConfig, ServerDialect,
};
use transport_interface::ProxyFrom;
use transport_interface::{RateLimit, ServerOptions};

use crate::app::Policy;
use crate::identity::Source;

/// The longest any duration option may be, in seconds (a year of 365 days). Beyond
/// some such bound an instant plus the duration overflows, which panics on every
/// connection; no timeout, hold or lifetime has a use past a year.
pub const MAX_SECONDS: u64 = 365 * 24 * 60 * 60;

/// A parser of a number of seconds from `min` to [`MAX_SECONDS`]: anything else is a
/// usage error at parse time, naming the option and the range.
fn seconds(min: u64) -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(min..=MAX_SECONDS)
}

/// A retention (`30d`, `12h`, ...) of at most ten years, refused by clap as a bad
/// argument (exit 2) otherwise.
fn retention(text: &str) -> Result<Duration, String> {
    let d = crate::admin::parse_duration(text).map_err(|e| e.to_string())?;
    if d > Duration::from_secs(10 * MAX_SECONDS) {
        return Err(format!("{text} is longer than ten years"));
    }
    Ok(d)
}

/// A `--proxy-protocol` list.
fn parse_proxy_from(text: &str) -> Result<ProxyFrom, String> {
    text.parse()
        .map_err(|e: transport_interface::ProxyFromError| e.to_string())
}

/// Every option of serving clients.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Port to listen on (overrides port.info).
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Socket driver.
    #[arg(long, value_enum, default_value_t = Transport::Tokio)]
    pub transport: Transport,
    /// Connections served at once. At the cap, a newcomer sheds a connection that
    /// has sent no whole request header (oldest first) or has been silent 5 s;
    /// only if there is none is it refused, with a 1607.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Connections from one address at once (an IPv4 address, or an IPv6 network of
    /// --ipv6-prefix bits), shedding as for --max-connections. Default: a quarter of
    /// --max-connections (256 of 1024), so that no one address can fill the server.
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// IPv6 clients are counted by the per-address cap and rate limits by their first
    /// this many bits (64: a host usually holds a whole /64). IPv4 addresses count
    /// whole.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u8).range(1..=128))]
    pub ipv6_prefix: u8,
    /// Balancers that send a PROXY protocol v2 header (HAProxy's send-proxy-v2)
    /// before each client's bytes: addresses and networks, comma-separated
    /// (127.0.0.1,10.0.0.0/8,::1). Their connections must start with one, and limits
    /// and logs then use the client's address from it; a header from any other
    /// address is refused. Off when not given.
    #[arg(long, value_name = "FROM", value_parser = parse_proxy_from)]
    pub proxy_protocol: Option<ProxyFrom>,
    /// Seconds a listed balancer's connection may take to send its whole PROXY
    /// header before it is closed (1 to 31536000, a year).
    #[arg(long, default_value_t = 5, value_parser = seconds(1))]
    pub proxy_header_timeout: u64,
    /// Bytes of request input all connections together may hold, beyond the first
    /// 512 KiB of each; a connection that would pass it is closed with a 1607.
    #[arg(long, default_value_t = protocol_core::DEFAULT_INPUT_BUDGET)]
    pub input_budget_bytes: usize,
    /// Registrations (825) one IP address may make at once; past it, a registration
    /// gets a 1607 until the bucket refills (--registrations-per-second).
    #[arg(long, default_value_t = 1024)]
    pub registrations_burst: u32,
    /// Registrations one IP address is given back per second.
    #[arg(long, default_value_t = 100.0)]
    pub registrations_per_second: f64,
    /// Connections closed for a protocol violation one IP address may have at once;
    /// past it, its new connections get a 1607 until the bucket refills.
    #[arg(long, default_value_t = 1024)]
    pub failures_burst: u32,
    /// Protocol violations one IP address is given back per second.
    #[arg(long, default_value_t = 100.0)]
    pub failures_per_second: f64,
    /// Largest content of one file packet (828, send file), in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_packet_bytes: usize,
    /// Largest file accepted, in bytes.
    #[arg(long, default_value_t = u32::MAX as u64)]
    pub max_file_bytes: u64,
    /// Seconds a connection may stay silent (1 to 31536000, a year).
    #[arg(long, default_value_t = 120, value_parser = seconds(1))]
    pub idle_timeout: u64,
    /// Seconds a started request may take to arrive in full (1 to 31536000, a year).
    #[arg(long, default_value_t = 60, value_parser = seconds(1))]
    pub request_timeout: u64,
    /// Seconds an issued AES key may be used for new uploads (1 to 31536000, a year).
    #[arg(long, default_value_t = 24 * 60 * 60, value_parser = seconds(1))]
    pub key_lifetime: u64,
    /// Checksum sent back after an upload (1603, file received).
    #[arg(long, value_enum, default_value_t = Checksum::Cksum)]
    pub checksum: Checksum,
    /// AES key size sent to clients (1602 public key received, 1605 reconnect accepted).
    #[arg(long, value_enum, default_value_t = AesBits::B256)]
    pub aes_bits: AesBits,
    /// Byte order of responses (mirror: that of each request).
    #[arg(long, value_enum, default_value_t = Order::Little)]
    pub response_order: Order,
    /// Send the acknowledgement (1604) with an empty payload, as some deployed servers do.
    #[arg(long)]
    pub empty_ack: bool,
    /// How uploads are decrypted: one AES-CBC stream over the file, each packet on its
    /// own, or detect it from the first packet.
    #[arg(long, value_enum, default_value_t = Encryption::Detect)]
    pub encryption: Encryption,
    /// Which file packets (828) get an answer (1603, file received): detect, every packet
    /// (clients with a connection per request), or only the last.
    #[arg(long, value_enum, default_value_t = AckPackets::Detect)]
    pub ack_packets: AckPackets,
    /// Seconds an upload may stay without a connection (left between packets, or
    /// awaiting its verdict) before it is removed (1 to 31536000, a year).
    #[arg(long, default_value_t = 300, value_parser = seconds(1))]
    pub abandoned_upload_timeout: u64,
    /// Bytes one client's unfinished uploads (left between packets, or awaiting a
    /// verdict) may hold on this server; past it, its oldest upload without a
    /// connection is dropped. Default: four times --max-file-bytes.
    #[arg(long, value_name = "BYTES")]
    pub unfinished_bytes_per_client: Option<u64>,
    /// Seconds a registration without a public key holds its name (1 to 31536000, a
    /// year).
    #[arg(long, default_value_t = 600, value_parser = seconds(1))]
    pub registration_hold: u64,
    /// Seconds a stop waits for uploads in progress to reach their verdict (0 to
    /// 31536000, a year).
    #[arg(long, default_value_t = 30, value_parser = seconds(0))]
    pub shutdown_grace: u64,
    /// Versions (verified content a newer upload replaced) kept of each file whatever
    /// their age. Older ones go once they are also older than --version-retention.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub keep_versions: usize,
    /// How long every version is kept after it was replaced, however many newer ones
    /// there are (45s, 90m, 12h, 30d, 2w; at most 10 years): a file replaced over and
    /// over loses no version before this.
    #[arg(long, default_value = "30d", value_name = "DURATION", value_parser = retention)]
    pub version_retention: Duration,
    /// Serve `/metrics` (Prometheus) and `/healthz` (load balancer checks) over HTTP on
    /// this address, e.g. 127.0.0.1:9100. Off when not given. The server does not
    /// start if the address is taken.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
    /// Secure mode's certificate, PEM (the server's first, then any chain), for TLS
    /// 1.3 on the protocol port instead of the data folder's own tls/identity.crt:
    /// a CA-issued identity, which a fleet's servers can share. Needs --tls-key.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert, PEM; its mode must let no one but the
    /// server's user read it (chmod 600).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Serve the legacy protocol only: no TLS and no identity (a TLS ClientHello
    /// is then answered as a malformed request, 1607). Wins over --tls-cert.
    #[arg(long)]
    pub no_tls: bool,
}

/// The socket driver (`--transport`).
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Transport {
    /// One thread per connection (transport-std).
    Std,
    /// Tokio tasks (transport-async on tokio).
    Tokio,
    /// smol tasks on async-io (transport-async on smol).
    Smol,
}

/// The checksum of a 1603 (`--checksum`).
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Checksum {
    /// POSIX `cksum`.
    Cksum,
    /// CRC-32 (zlib).
    Crc32,
}

/// The AES key size given to clients (`--aes-bits`).
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum AesBits {
    #[value(name = "256")]
    /// AES-256.
    B256,
    #[value(name = "128")]
    /// AES-128.
    B128,
}

/// The byte order of responses (`--response-order`).
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Order {
    /// Little-endian.
    Little,
    /// Big-endian.
    Big,
    /// That of each request.
    Mirror,
}

/// How uploads are decrypted (`--encryption`).
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Encryption {
    /// Detected from the client.
    Detect,
    /// One AES-CBC stream over the whole file.
    Stream,
    /// Each packet on its own.
    PerPacket,
}

/// Which file packets get a 1603 (`--ack-packets`).
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum AckPackets {
    /// Detected from the client.
    Detect,
    /// Every packet (clients with a connection per request).
    Every,
    /// Only the last packet.
    Last,
}

/// The per-address cap when --max-connections-per-ip is not given: a quarter of
/// the overall cap (at least 1).
pub fn default_per_ip(max_connections: usize) -> usize {
    (max_connections / 4).max(1)
}

impl ServeArgs {
    /// Where the TLS identity comes from; a certificate without its key (or a key
    /// without its certificate) is a usage error.
    pub fn identity_source(&self) -> Result<Source, String> {
        if self.no_tls {
            return Ok(Source::Off);
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Source::Given {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => Ok(Source::Folder),
            (Some(_), None) => Err("--tls-cert needs --tls-key, the certificate's key".into()),
            (None, Some(_)) => Err("--tls-key needs --tls-cert, the key's certificate".into()),
        }
    }

    /// The transports' options these values give (without TLS: the identity is
    /// loaded, or made, once the server holds its folder).
    pub fn server_options(&self) -> ServerOptions {
        let dialect = ServerDialect {
            checksum: match self.checksum {
                Checksum::Cksum => ChecksumAlgorithm::Cksum,
                Checksum::Crc32 => ChecksumAlgorithm::Crc32,
            },
            aes_key_size: match self.aes_bits {
                AesBits::B128 => AesKeySize::Aes128,
                AesBits::B256 => AesKeySize::Aes256,
            },
            response_order: match self.response_order {
                Order::Little => ResponseOrder::Fixed(ByteOrder::Little),
                Order::Big => ResponseOrder::Fixed(ByteOrder::Big),
                Order::Mirror => ResponseOrder::MirrorRequest,
            },
            empty_ack: self.empty_ack,
            encryption: match self.encryption {
                Encryption::Detect => EncryptionMode::Detect,
                Encryption::Stream => EncryptionMode::Stream,
                Encryption::PerPacket => EncryptionMode::PerPacket,
            },
            ack_every_packet: match self.ack_packets {
                AckPackets::Detect => PacketAck::Detect,
                AckPackets::Every => PacketAck::Every,
                AckPackets::Last => PacketAck::LastOnly,
            },
        };
        let limits = Limits {
            max_payload: self
                .max_packet_bytes
                .saturating_add(protocol_core::wire::FILE_PACKET_FIXED_LEN),
            max_file_size: self.max_file_bytes.min(u32::MAX as u64),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            request_timeout: Duration::from_secs(self.request_timeout),
            key_lifetime: Duration::from_secs(self.key_lifetime),
            ..Limits::default()
        };
        ServerOptions {
            config: ServerConfig {
                limits,
                dialect,
                ..ServerConfig::default()
            },
            max_connections: self.max_connections,
            max_connections_per_ip: self
                .max_connections_per_ip
                .unwrap_or_else(|| default_per_ip(self.max_connections)),
            ipv6_prefix: self.ipv6_prefix,
            proxy_from: self.proxy_protocol.clone().unwrap_or_default(),
            proxy_header_timeout: Duration::from_secs(self.proxy_header_timeout),
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            input_budget: self.input_budget_bytes,
            registrations: RateLimit {
                burst: self.registrations_burst,
                per_second: self.registrations_per_second,
            },
            failures: RateLimit {
                burst: self.failures_burst,
                per_second: self.failures_per_second,
            },
            ..ServerOptions::default()
        }
    }

    /// The application's policy these values give.
    pub fn policy(&self) -> Policy {
        Policy {
            name_hold: Duration::from_secs(self.registration_hold),
            abandoned_after: Duration::from_secs(self.abandoned_upload_timeout),
            upload_quota: self.unfinished_bytes_per_client.unwrap_or_else(|| {
                self.max_file_bytes
                    .min(u64::from(u32::MAX))
                    .saturating_mul(4)
            }),
            keep_versions: self.keep_versions,
            version_retention: self.version_retention,
            ..Policy::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::ServeArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn quota(args: &[&str]) -> u64 {
        let cli = Cli::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
            .expect("valid options");
        cli.serve.policy().upload_quota
    }

    fn options(args: &[&str]) -> transport_interface::ServerOptions {
        Cli::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
            .expect("valid options")
            .serve
            .server_options()
    }

    #[test]
    fn the_per_address_cap_defaults_to_a_quarter_of_the_overall_one() {
        assert_eq!(options(&[]).max_connections_per_ip, 256);
        assert_eq!(
            options(&["--max-connections", "100"]).max_connections_per_ip,
            25
        );
        assert_eq!(
            options(&["--max-connections", "2"]).max_connections_per_ip,
            1
        );
        let given = ["--max-connections-per-ip", "7"];
        assert_eq!(options(&given).max_connections_per_ip, 7);
    }

    #[test]
    fn proxy_protocol_and_ipv6_prefix_options() {
        let o = options(&[]);
        assert!(!o.proxy_from.is_enabled());
        assert_eq!(o.ipv6_prefix, 64);
        let o = options(&[
            "--proxy-protocol",
            "127.0.0.1,10.0.0.0/8,::1",
            "--ipv6-prefix",
            "56",
        ]);
        assert!(o.proxy_from.lists("10.9.8.7".parse().unwrap()));
        assert!(!o.proxy_from.lists("127.0.0.2".parse().unwrap()));
        assert_eq!(o.ipv6_prefix, 56);
        for bad in [
            &["--proxy-protocol", "10.0.0.0/40"][..],
            &["--proxy-protocol", ""],
            &["--ipv6-prefix", "0"],
            &["--ipv6-prefix", "129"],
        ] {
            let parsed = Cli::try_parse_from(std::iter::once("server").chain(bad.iter().copied()));
            assert!(parsed.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_unfinished_upload_quota_defaults_to_four_largest_files() {
        assert_eq!(quota(&[]), 4 * u64::from(u32::MAX));
        assert_eq!(quota(&["--max-file-bytes", "1000"]), 4000);
        let given = [
            "--max-file-bytes",
            "1000",
            "--unfinished-bytes-per-client",
            "7",
        ];
        assert_eq!(quota(&given), 7);
    }
}
