//! The client's files: `transfer.info`, `me.info`, `priv.key`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use protocol_core::crypto::PrivateKey;
use protocol_core::{ClientId, Identity};

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
    let text = fs::read_to_string(path).with_context(|| {
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
pub fn read_me(path: &Path) -> anyhow::Result<(String, Identity)> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let name = lines.next().unwrap_or("").trim().to_string();
    let id_line = lines.next().unwrap_or("").trim();
    let client_id = ClientId::from_hex(id_line).with_context(|| {
        format!(
            "{} line 2 must be the client id as 32 hex digits, found {id_line:?}",
            path.display()
        )
    })?;
    let mut key_text: String = lines.collect::<Vec<_>>().join("\n");
    if key_text.trim().is_empty() {
        let priv_path = path.with_file_name("priv.key");
        key_text = fs::read_to_string(&priv_path).with_context(|| {
            format!(
                "{} has no private key (line 3) and {} cannot be read",
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

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Writes `me.info` and `priv.key` (readable by the user only).
pub fn write_me(dir: &Path, name: &str, id: &ClientId, key: &PrivateKey) -> anyhow::Result<()> {
    let b64 = key.to_base64()?;
    write_private(
        &dir.join("me.info"),
        &format!("{name}\n{}\n{b64}\n", id.to_hex()),
    )?;
    write_private(&dir.join("priv.key"), &format!("{b64}\n"))?;
    Ok(())
}
