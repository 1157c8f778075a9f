//! Fixture clients: protocol-core's `ClientSession` with a `Dialect`, driven over
//! std::net in a thread, started by the suite like a client binary (a `Launcher`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use conformance::client::launch::{LaunchError, Launcher, Running};
use protocol_core::crypto::PrivateKey;
use protocol_core::rand_core::OsRng;
use protocol_core::{
    ClientConfig, ClientEvent, ClientId, ClientSession, Dialect, FieldString, Identity, Outcome,
};

/// Starts a fixture client with `dialect` for each case.
pub struct FixtureLauncher {
    pub dialect: Dialect,
}

struct Thread {
    exit: Arc<Mutex<Option<i32>>>,
}

impl Running for Thread {
    fn try_exit(&mut self) -> Option<Option<i32>> {
        (*self.exit.lock().unwrap()).map(Some)
    }
    fn stop(&mut self) {}
    fn output(&self) -> String {
        String::new()
    }
}

impl Launcher for FixtureLauncher {
    fn launch(&self, dir: &Path, _case: &str) -> Result<Box<dyn Running>, LaunchError> {
        let exit = Arc::new(Mutex::new(None));
        let (e, dir, dialect) = (exit.clone(), dir.to_path_buf(), self.dialect.clone());
        std::thread::spawn(move || {
            let code = run(&dir, dialect).unwrap_or(9);
            *e.lock().unwrap() = Some(code);
        });
        Ok(Box::new(Thread { exit }))
    }
    fn describe(&self) -> String {
        format!("fixture client {:?}", self.dialect)
    }
    fn knows_exit(&self) -> bool {
        true
    }
}

fn connect(addr: &str) -> Option<TcpStream> {
    let s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(4))).ok()?;
    s.set_nodelay(true).ok()?;
    Some(s)
}

/// One client run in `dir`: 0 verified, 3 gave up, 1 failed.
fn run(dir: &Path, dialect: Dialect) -> Option<i32> {
    let info = std::fs::read_to_string(dir.join("transfer.info")).ok()?;
    let mut lines = info.lines();
    let (addr, name, file) = (
        lines.next()?.to_string(),
        lines.next()?.to_string(),
        lines.next()?.to_string(),
    );
    let data = std::fs::read(dir.join(&file)).ok()?;
    let identity = std::fs::read_to_string(dir.join("me.info"))
        .ok()
        .and_then(|me| {
            let mut l = me.lines();
            let _name = l.next()?;
            let id = ClientId::from_hex(l.next()?)?;
            let key: String = l.collect();
            Some(Identity {
                client_id: id,
                private_key: PrivateKey::from_base64(&key).ok()?,
            })
        });
    let config = ClientConfig {
        name: FieldString::new(&name)?,
        file_name: FieldString::new(&file)?,
        file_size: data.len() as u64,
        identity,
        registration_key: None,
        dialect,
    };
    let mut session = ClientSession::new(config, OsRng).ok()?;
    let mut stream = connect(&addr)?;
    let (mut out, mut input) = (BytesMut::new(), BytesMut::new());
    let mut feeding: Option<usize> = None;
    let mut buf = vec![0u8; 1 << 16];
    let mut eofs = 0;
    loop {
        while let Some(ev) = session.poll_event() {
            match ev {
                ClientEvent::SendFile { .. } => feeding = Some(0),
                ClientEvent::NewConnection => {
                    eofs = 0;
                    stream = connect(&addr)?;
                    session.connection_opened();
                }
                ClientEvent::Finished(o) => {
                    return Some(if o == Outcome::Verified { 0 } else { 3 })
                }
                _ => {}
            }
        }
        if session.is_finished() {
            return Some(1);
        }
        if let Some(at) = feeding {
            let n = session.push_file_data(&data[at..]).ok()?;
            if at + n == data.len() {
                session.end_of_file().ok()?;
                feeding = None;
            } else {
                feeding = Some(at + n);
            }
        }
        out.clear();
        session.poll_transmit(&mut out);
        if !out.is_empty() {
            stream.write_all(&out).ok()?;
            continue;
        }
        if feeding.is_some() {
            continue;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => {
                eofs += 1;
                if session.handle_eof().is_err() || eofs > 2 {
                    return Some(1);
                }
            }
            Ok(n) => {
                eofs = 0;
                input.extend_from_slice(&buf[..n]);
                if session.handle_input(&mut input).is_err() {
                    return Some(1);
                }
            }
        }
    }
}
