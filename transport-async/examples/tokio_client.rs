//! The smallest client on tokio: registers, uploads one file, and checks the
//! server's checksum.
//!
//! `cargo run -p transport-async --example tokio_client -- 127.0.0.1:1256 alice notes.txt`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use protocol_core::rand_core::OsRng;
use protocol_core::{ClientConfig, ClientSession, Dialect, FieldString};
use transport_async::runtime::Tokio;
use transport_async::{run_client, ClientOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(server), Some(name), Some(path)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: client HOST:PORT NAME FILE".into());
    };
    let mut file = tokio::fs::File::open(&path).await?;
    let config = ClientConfig {
        name: FieldString::new(name).ok_or("name too long")?,
        file_name: FieldString::new(&path).ok_or("file name too long")?,
        file_size: file.metadata().await?.len(),
        identity: None, // register; keep `ClientEvent::Registered`'s key to reconnect later
        registration_key: None,
        dialect: Dialect::default(),
    };
    let mut session = ClientSession::new(config, OsRng)?;
    let stream = tokio::net::TcpStream::connect(server).await?;
    let options = ClientOptions::default();
    let outcome = run_client::<Tokio, _, _>(&mut session, stream, &mut file, &options, |ev| {
        println!("{ev:?}")
    })
    .await?;
    println!("{outcome:?}");
    Ok(())
}
