//! The client's files: `transfer.info`, `me.info`, `priv.key`.

pub mod key_files;

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use protocol_core::crypto::PrivateKey;
use protocol_core::{ClientId, Identity};
use rustix::fs::OFlags;
use zeroize::Zeroizing;

pub use key_files::write_secret;

/// The most `transfer.info` and `me.server` may hold. Each is a few short lines; a
/// bigger one is not one of ours (a link to `/dev/zero` must fail at once, not grow
/// memory for as long as it is read).
pub const MAX_INFO_BYTES: u64 = 64 * 1024;

/// Reads a small text file whole, refusing one over `limit` bytes without reading
/// further than one byte past it.
pub fn read_limited(path: &Path, limit: u64) -> std::io::Result<String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        // A FIFO planted under the name must not block the open.
        .custom_flags((OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32)
        .open(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it holds more than {limit} bytes, far more than such a file ever needs"),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not text"))
}

/// What `transfer.info` says.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// `host:port`.
    pub server: String,
    /// The client name.
    pub name: String,
    /// The file to send.
    pub file: PathBuf,
}

/// Reads `transfer.info`: line 1 `host:port`, line 2 the name, line 3 the file path.
pub fn read_transfer(path: &Path) -> anyhow::Result<Transfer> {
    let text = read_limited(path, MAX_INFO_BYTES).with_context(|| {
        format!(
            "cannot read {} (it should hold three lines: host:port, client name, file path)",
            path.display()
        )
    })?;
    let mut lines = text.lines().map(str::trim);
    let server = lines.next().unwrap_or("").to_string();
    let name = lines.next().unwrap_or("").to_string();
    let file = lines.next().unwrap_or("").to_string();
    if server.is_empty() || !server.contains(':') {
        bail!(
            "{} line 1 must be host:port, found {server:?}",
            path.display()
        );
    }
    if name.is_empty() {
        bail!(
            "{} line 2 must be the client name, found nothing",
            path.display()
        );
    }
    if file.is_empty() {
        bail!(
            "{} line 3 must be the path of the file to send, found nothing",
            path.display()
        );
    }
    Ok(Transfer {
        server,
        name,
        file: PathBuf::from(file),
    })
}

/// Reads `me.info`: line 1 name, line 2 the id in hex, lines 3.. the private key in
/// base64 (one line or wrapped). If the key lines are missing, `priv.key` beside it.
/// Either file is refused unless it is a regular file of the user's with mode 0600
/// or stricter.
pub fn read_me(path: &Path) -> anyhow::Result<(String, Identity)> {
    let text = key_files::read_secret(path)?;
    let mut lines = text.lines();
    let name = lines.next().unwrap_or("").trim().to_string();
    let id_line = lines.next().unwrap_or("").trim();
    let client_id = ClientId::from_hex(id_line).with_context(|| {
        format!(
            "{} line 2 must be the client id as 32 hex digits, found {id_line:?}",
            path.display()
        )
    })?;
    let mut key_text = Zeroizing::new(String::with_capacity(text.len()));
    for line in lines {
        key_text.push_str(line);
        key_text.push('\n');
    }
    if key_text.trim().is_empty() {
        let priv_path = path.with_file_name("priv.key");
        key_text = key_files::read_secret(&priv_path).with_context(|| {
            format!(
                "{} has no private key (line 3), so it is read from {}",
                path.display(),
                priv_path.display()
            )
        })?;
    }
    let private_key = PrivateKey::from_base64(&key_text)
        .with_context(|| format!("the private key in {} is not usable", path.display()))?;
    if name.is_empty() {
        bail!("{} line 1 must be the client name", path.display());
    }
    Ok((
        name,
        Identity {
            client_id,
            private_key,
        },
    ))
}

/// Writes `me.info` and `priv.key` (regular files, mode 0600, each replaced whole).
pub fn write_me(dir: &Path, name: &str, id: &ClientId, key: &PrivateKey) -> anyhow::Result<()> {
    let b64 = key.to_base64()?;
    let mut me = Zeroizing::new(String::with_capacity(name.len() + 34 + b64.len() + 1));
    me.push_str(name);
    me.push('\n');
    me.push_str(&id.to_hex());
    me.push('\n');
    me.push_str(&b64);
    me.push('\n');
    key_files::write_secret(&dir.join("me.info"), me.as_bytes())?;
    let mut private = Zeroizing::new(String::with_capacity(b64.len() + 1));
    private.push_str(&b64);
    private.push('\n');
    key_files::write_secret(&dir.join("priv.key"), private.as_bytes())?;
    Ok(())
}
