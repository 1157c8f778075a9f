//! The smallest client on the blocking transport: registers, uploads one file,
//! and checks the server's checksum.
//!
//! `cargo run -p transport-std --example std_client -- 127.0.0.1:1256 alice notes.txt`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use std::fs::File;
use std::net::TcpStream;

use protocol_core::rand_core::OsRng;
use protocol_core::{ClientConfig, ClientSession, Dialect, FieldString};
use transport_std::{run_client, ClientOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(server), Some(name), Some(path)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: client HOST:PORT NAME FILE".into());
    };
    let mut file = File::open(&path)?;
    let config = ClientConfig {
        name: FieldString::new(name).ok_or("name too long")?,
        file_name: FieldString::new(&path).ok_or("file name too long")?,
        file_size: file.metadata()?.len(),
        identity: None, // register; keep `ClientEvent::Registered`'s key to reconnect later
        registration_key: None,
        dialect: Dialect::default(),
    };
    let mut session = ClientSession::new(config, OsRng)?;
    let mut stream = TcpStream::connect(server)?;
    let outcome = run_client(
        &mut session,
        &mut stream,
        &mut file,
        &ClientOptions::default(),
        |ev| println!("{ev:?}"),
    )?;
    println!("{outcome:?}");
    Ok(())
}
