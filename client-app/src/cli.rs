//! The command line: options, and how they turn into a protocol dialect.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use protocol_core::crypto::ChecksumAlgorithm;
use protocol_core::{ByteOrder, Dialect, PacketFieldOrder};
use transport_std::Fingerprint;

use crate::dialect_presets::{Preset, SMALL_PACKET};
use crate::exit::EXIT_CODE_HELP;

/// What the client does instead of sending a file.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print a completion script for a shell: e.g. `client completions bash >
    /// /etc/bash_completion.d/client`.
    Completions {
        /// bash, elvish, fish, powershell or zsh.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): e.g. `client man > /usr/local/share/man/man1/client.1`.
    Man,
    /// Send FILE (the default when no command is given: `client FILE`). Over TLS when
    /// the server offers it (resumed by itself after a cut), legacy otherwise.
    Put {
        /// File to send (relative to the current folder).
        file: PathBuf,
    },
    /// List this client's files on the server (secure mode): name, size, state, hash,
    /// kept versions, time.
    List,
    /// Download a file (secure mode): written beside the target as a temporary file,
    /// checked against the stored hash, then moved into place; a cut download resumes
    /// on the next run.
    Get {
        /// The file's name on the server.
        name: String,
        /// Where to write it (a file, or a folder to write NAME into); default: NAME in
        /// the current folder.
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// A kept version (`client versions NAME` lists them) instead of the current
        /// content.
        #[arg(long, value_name = "V")]
        version: Option<u64>,
        /// Replace the target if it exists.
        #[arg(long)]
        force: bool,
        /// Download even if the file is unverified.
        #[arg(long)]
        unverified: bool,
    },
    /// Remove a file (secure mode): its content becomes a kept version, which
    /// `client restore` brings back within the server's retention policy.
    Rm {
        /// The file's name on the server.
        name: String,
    },
    /// List a file's kept versions (secure mode).
    Versions {
        /// The file's name on the server.
        name: String,
    },
    /// Make a kept version the file's current content (secure mode).
    Restore {
        /// The file's name on the server.
        name: String,
        /// The version (`client versions NAME` lists them).
        version: u64,
    },
}

#[derive(Parser, Debug)]
#[command(
    // `client --version` names the program, not the crate.
    name = "client",
    version,
    about = "Secure file-storage client (protocol version 3): sends one file to a server",
    long_about = "Secure file-storage client (protocol version 3): sends one file to a server.\n\n\
        With no arguments it reads transfer.info in --dir (line 1 host:port, line 2 the client \
        name, line 3 the file). Options and the FILE argument take precedence over those lines. \
        The first run registers and writes me.info and priv.key in --dir; later runs reconnect \
        with them. The protocol is described in docs/PROTOCOL.md of the source repository.",
    after_help = EXIT_CODE_HELP,
    // `client list` is a command; a file of that name is sent as `client ./list` or
    // `client put list`. Options go before or after the command.
    subcommand_precedence_over_arg = true,
)]
pub struct Cli {
    /// A command other than sending a file.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// File to send (relative to the current folder; overrides transfer.info line 3).
    #[arg(value_name = "FILE")]
    pub file_arg: Option<PathBuf>,
    /// Folder holding transfer.info, me.info and priv.key.
    #[arg(global = true, long, default_value = ".")]
    pub dir: PathBuf,
    /// Server as host:port (overrides transfer.info line 1).
    #[arg(global = true, long)]
    pub server: Option<String>,
    /// Client name (overrides transfer.info line 2).
    #[arg(global = true, long)]
    pub name: Option<String>,
    /// File to send, like FILE (relative to the current folder).
    #[arg(long, conflicts_with = "file_arg")]
    pub file: Option<PathBuf>,
    /// Allow replacing me.info with a new registration at a server other than the one it
    /// was made with (when that server does not know this client).
    #[arg(long)]
    pub new_server: bool,
    /// Print only errors.
    #[arg(global = true, short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more: the packet size and checksum used, the key exchange.
    #[arg(global = true, short, long, action = ArgAction::SetTrue)]
    pub verbose: bool,
    /// Print a machine-readable summary (one JSON object) on stdout; messages go to stderr.
    /// `list` and `versions` print their listing instead (one JSON array).
    #[arg(global = true, long)]
    pub json: bool,
    /// A deployed server's dialect in one word (the README's preset table); the
    /// single dialect options below add to it. auto (the default, unless a single
    /// dialect option is given) recognises the preset from the server's answers,
    /// tries again with it, and remembers it in me.server.
    #[arg(long = "dialect", value_enum, default_value_t = Preset::Auto)]
    pub preset: Preset,
    /// Content bytes per packet (default: the preset's; 65536 for spec). 4096 or less
    /// also sends each request in a write of its own (one-recv servers need ~1024).
    /// Refused if the file needs more than 65,535 packets of this size.
    #[arg(long)]
    pub packet_size: Option<usize>,
    /// Checksum to compare with the server's.
    #[arg(long, value_enum, default_value_t = Checksum::Cksum)]
    pub checksum: Checksum,
    /// Write request headers big-endian.
    #[arg(long)]
    pub big_endian: bool,
    /// Write the total packets before the packet number.
    #[arg(long)]
    pub total_first: bool,
    /// Content size of each packet instead of the whole file.
    #[arg(long)]
    pub per_packet_size: bool,
    /// Encrypt each packet on its own.
    #[arg(long)]
    pub per_packet_encryption: bool,
    /// Put the client name in the checksum confirmations (900, 901, 902) instead of the
    /// file name.
    #[arg(long)]
    pub crc_client_name: bool,
    /// Open a new connection for every request (servers that close after each answer).
    #[arg(long)]
    pub connection_per_request: bool,
    /// Send each request in a write of its own (servers that read a request with one
    /// recv).
    #[arg(long)]
    pub one_request_per_write: bool,
    /// Send every file packet with a content field of exactly the packet size,
    /// zero-filled past the declared total (servers that expect that fixed shape).
    #[arg(long)]
    pub pad_packets: bool,
    /// Seconds any wait may last: connecting, each write, each answer.
    #[arg(global = true, long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// The server's identity, `SHA256:<hex>` (the fingerprint of its certificate, as its
    /// operator reads it; OpenSSL's colon form works too): the server must show it over
    /// TLS, whatever known_servers in --dir says.
    #[arg(
        global = true,
        long,
        value_name = "SHA256:HEX",
        conflicts_with = "legacy"
    )]
    pub server_fingerprint: Option<Fingerprint>,
    /// Speak only the legacy protocol (no TLS, the server's identity unchecked), for
    /// deployed servers that have no secure mode. Without it, a server pinned in
    /// known_servers is reached over TLS or not at all.
    #[arg(global = true, long)]
    pub legacy: bool,
    /// Ask the server, in a secure session, to keep serving this client's legacy
    /// requests (a folder still shared with a legacy tool). Without it, the first
    /// secure session closes the legacy protocol to this client id for good.
    #[arg(global = true, long, conflicts_with = "legacy")]
    pub keep_legacy: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Checksum {
    Cksum,
    Crc32,
}

impl Checksum {
    /// As the option is written.
    pub fn name(self) -> &'static str {
        match self {
            Checksum::Cksum => "cksum",
            Checksum::Crc32 => "crc32",
        }
    }
}

impl Cli {
    /// Whether the run picks the preset itself: `--dialect auto` (the default) and no
    /// single dialect option. Any explicit choice is used exactly as given, with no
    /// retries under another dialect. `--checksum` is no shape of the wire and is
    /// never changed by auto, so it leaves auto on.
    pub fn auto(&self) -> bool {
        self.preset == Preset::Auto
            && self.packet_size.is_none()
            && !(self.big_endian
                || self.total_first
                || self.per_packet_size
                || self.per_packet_encryption
                || self.crc_client_name
                || self.connection_per_request
                || self.one_request_per_write
                || self.pad_packets)
    }

    /// The dialect of `preset` with the single options added.
    pub fn dialect_with(&self, preset: Preset) -> Dialect {
        let preset = preset.dialect();
        let packet_size = self.packet_size.unwrap_or(preset.packet_size).max(16);
        Dialect {
            checksum: match self.checksum {
                Checksum::Cksum => ChecksumAlgorithm::Cksum,
                Checksum::Crc32 => ChecksumAlgorithm::Crc32,
            },
            byte_order: if self.big_endian {
                ByteOrder::Big
            } else {
                ByteOrder::Little
            },
            packet_fields: if self.total_first
                || preset.packet_fields == PacketFieldOrder::TotalFirst
            {
                PacketFieldOrder::TotalFirst
            } else {
                PacketFieldOrder::NumberFirst
            },
            per_packet_content_size: self.per_packet_size,
            per_packet_encryption: self.per_packet_encryption || preset.per_packet_encryption,
            crc_carries_client_name: self.crc_client_name,
            connection_per_request: self.connection_per_request || preset.connection_per_request,
            packet_size,
            one_request_per_write: self.one_request_per_write
                || preset.one_request_per_write
                || packet_size <= SMALL_PACKET,
            pad_packets: self.pad_packets || preset.pad_packets,
        }
    }

    /// The file named on the command line, if any.
    pub fn file_option(&self) -> Option<&PathBuf> {
        if let Some(Command::Put { file }) = &self.command {
            return Some(file);
        }
        self.file_arg.as_ref().or(self.file.as_ref())
    }
}
