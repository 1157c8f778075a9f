//! The secure file-storage protocol (version 3) as sans-IO state machines.
//!
//! This crate holds the whole protocol of `docs/PROTOCOL.md` (in the source
//! repository) and nothing else: no sockets, files, clocks or global randomness.
//! Bytes go in, bytes and events come out; time
//! is an argument and randomness is a [`rand_core::CryptoRngCore`] the caller passes.
//!
//! - [`wire`]: the codec for every request and response.
//! - [`crypto`]: POSIX cksum and zlib CRC-32, AES-CBC streams, RSA keys.
//! - [`server`]: [`ServerConnection`], one per accepted connection.
//! - [`client`]: [`ClientSession`], one per client run.
//! - [`Dialect`] / [`ServerDialect`]: the variants deployed peers use.
//!
//! This crate's API uses `rand_core` 0.6, re-exported as [`rand_core`].
//!
//! # Features
//!
//! - `client` (default): the client role, [`client`] and `crypto::PrivateKey`. Its
//!   private-key operation (the OAEP decryption of the AES key) runs in the system
//!   OpenSSL, in constant time. An embedder of the server role alone turns default
//!   features off (`default-features = false`) and links no C library: the server's
//!   RSA operation is a public-key one, in pure Rust.
//!
//! # Panics
//!
//! No method panics on anything a peer sends: every declared size is checked against
//! [`Limits`] before it is used, every length before it is sliced, and the fuzz targets
//! and property tests of the source repository feed the state machines arbitrary bytes
//! to hold them to it. A caller's mistake (an answer to a question that was not asked,
//! a ticket of another question, more bytes written than were handed out) is a
//! [`UsageError`] returned, never a panic, and leaves the connection as it was. The
//! crate's non-test code holds no `unwrap`, `expect`, `panic!` or `unreachable!`. A panic
//! anywhere in it is a bug to report.
//!
//! # Unsafe code
//!
//! Only `crypto::aesni` (AES-NI and VAES intrinsics, chosen at run time when the CPU
//! has them) uses `unsafe`; the rest of the crate denies it. Each unsafe block there
//! says which CPU feature it relies on and where that feature was checked.
//!
//! # A whole exchange in memory
//!
//! ```
//! use std::time::Instant;
//! use bytes::BytesMut;
//! use protocol_core::*;
//! use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
//!
//! let file = b"hello, file storage".repeat(100);
//! let mut client = ClientSession::new(ClientConfig {
//!     name: FieldString::new("alice").unwrap(),
//!     file_name: FieldString::new("notes.txt").unwrap(),
//!     file_size: file.len() as u64,
//!     identity: None,
//!     registration_key: None,
//!     dialect: Dialect { packet_size: 512, ..Dialect::default() },
//! }, ChaCha20Rng::seed_from_u64(1)).unwrap();
//! let now = Instant::now();
//! let mut server = ServerConnection::new(ServerConfig::default(), ChaCha20Rng::seed_from_u64(2), now);
//!
//! // The server's storage, reduced to what this exchange needs.
//! let mut stored = Vec::new();
//! let mut verified = false;
//! let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
//! while !client.is_finished() {
//!     client.poll_transmit(&mut to_server);
//!     server.handle_input(&mut to_server, now).unwrap();
//!     while let Some(ev) = server.poll_event() {
//!         match ev {
//!             ServerEvent::Register { ticket, .. } => server.accept_registration(ticket).unwrap(),
//!             ServerEvent::StorePublicKey { ticket, .. } => server.succeed(ticket).unwrap(),
//!             ServerEvent::UploadData { data, .. } => {
//!                 stored.extend_from_slice(&data);
//!                 server.data_written(data.len()).unwrap();
//!             }
//!             ServerEvent::UploadFinished { ticket, .. } => server.succeed(ticket).unwrap(),
//!             ServerEvent::Confirm { ticket, verdict, .. } => {
//!                 verified = verdict == Verdict::Verified;
//!                 server.succeed(ticket).unwrap();
//!             }
//!             // The driver loop below answers every event; this exchange needs no others.
//!             _ => {}
//!         }
//!     }
//!     server.poll_transmit(&mut to_client);
//!     client.handle_input(&mut to_client).unwrap();
//!     while let Some(ev) = client.poll_event() {
//!         if let ClientEvent::SendFile { .. } = ev {
//!             for chunk in file.chunks(700) {
//!                 // Small pieces: each is taken whole (it returns how much it took).
//!                 assert_eq!(client.push_file_data(chunk).unwrap(), chunk.len());
//!             }
//!             client.end_of_file().unwrap();
//!         }
//!     }
//! }
//! assert_eq!(stored, file);
//! assert!(verified);
//! ```
//!
//! # Driving a connection
//!
//! The rule (as in str0m and quinn-proto): after every change (input, an answer,
//! `data_written`, a timer), drain the events, then the bytes to send, then ask what
//! to wait for. The server's steps, from the [`server`] module docs:
//!
//! 1. `handle_input` / `handle_eof` / `handle_timeout`;
//! 2. `poll_event` until `None`, answering every question and reporting
//!    `data_written` for every `UploadData`;
//! 3. after any answer, back to 1 with the same input buffer;
//! 4. `poll_transmit` and send;
//! 5. stop when [`ServerConnection::is_finished`]; otherwise read while
//!    `wants_read`, and wake at `poll_timeout` for `handle_timeout`.
//!
//! Neither a question left unanswered nor a forgotten `data_written` can hold a
//! connection: each has the deadline [`Limits::answer_timeout`]. This loop is the
//! one the repository README shows:
//!

#![doc = include_str!("../docs/driver_loop.md")]
// `unsafe` is denied everywhere but `crypto::aesni`, where a measured need allows it.
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "client")]
pub mod client;
pub mod crypto;
pub mod dialect;
pub mod error;
pub mod frame;
pub mod limits;
pub mod names;
pub mod secure;
pub mod server;
pub mod wire;

#[cfg(feature = "client")]
pub use client::{ClientConfig, ClientEvent, ClientFailure, ClientSession, Identity, Outcome};
pub use dialect::{
    DetectedDialect, Dialect, EncryptionMode, PacketAck, ResponseOrder, ServerDialect,
};
pub use error::{PeerError, UsageError};
pub use limits::Limits;
pub use server::{
    ClientRecord, DecodeError, InputBudget, QuestionKind, ServerConfig, ServerConnection,
    ServerEvent, SuspendedUpload, Ticket, Verdict, DEFAULT_FREE_PER_CONNECTION,
    DEFAULT_INPUT_BUDGET,
};

/// The `rand_core` this crate's API uses (version 0.6): the RNG given to
/// [`ServerConnection::new`] and [`ClientSession::new`] implements
/// `rand_core::CryptoRngCore` of **this** version. Use `protocol_core::rand_core::OsRng`
/// (feature `getrandom` of rand_core 0.6) or a generator built on rand_core 0.6; one
/// from rand_core 0.9 does not fit ("multiple different versions of crate rand_core").
pub use rand_core;
pub use wire::{
    ByteOrder, ClientId, FieldString, FilePacket, PacketFieldOrder, Request, RequestCode, Response,
    ResponseCode,
};
