//! What can be checked before any network traffic: the file to send (a regular,
//! readable file whose name and size the protocol can carry) and the folder that
//! must hold `me.info`.

use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;

use protocol_core::{names, FieldString};

use crate::exit::{plain, Failure};

/// The largest file the protocol carries: its AES-CBC ciphertext (always 1 to 16
/// bytes of padding more) must fit the 32-bit content size field.
pub const MAX_FILE_SIZE: u64 = u32::MAX as u64 - 16;

/// The file to send, opened.
pub struct FileToSend {
    pub file: File,
    pub size: u64,
    /// The name sent to the server (the last component of the path).
    pub name: FieldString,
}

/// Opens `path` and checks what the server would refuse.
pub fn file_to_send(path: &Path) -> Result<FileToSend, Failure> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => Failure::usage(format!("the file to send, {shown}, does not exist"))
            .hint("check the path (FILE, --file, or line 3 of transfer.info)"),
        _ => Failure::usage(format!(
            "cannot look at the file to send, {shown}: {}",
            plain(&e)
        ))
        .hint("check the path and the permissions of the folders on it"),
    })?;
    if meta.is_dir() {
        return Err(
            Failure::usage(format!("{shown} is a folder; the client sends one file"))
                .hint("name a file inside it, or pack the folder into one file (tar, zip)"),
        );
    }
    if !meta.is_file() {
        return Err(Failure::usage(format!(
            "{shown} is not a regular file (a device, socket or pipe); the client sends regular files only"
        ))
        .hint("copy what it holds into a regular file and send that"));
    }
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = check_file_name(&base)?;
    let size = meta.len();
    if size > MAX_FILE_SIZE {
        return Err(Failure::usage(format!(
            "{shown} is {size} bytes; the protocol carries files of at most {MAX_FILE_SIZE} bytes (4 GiB - 17)"
        ))
        .hint("split the file (for example with `split -b 2G`) and send the parts"));
    }
    let file = File::open(path).map_err(|e| match e.kind() {
        ErrorKind::PermissionDenied => {
            Failure::usage(format!("cannot read {shown}: permission denied"))
                .hint("make it readable by this user (chmod u+r)")
        }
        _ => Failure::usage(format!("cannot open {shown}: {}", plain(&e)))
            .hint("check that the file is readable by this user"),
    })?;
    Ok(FileToSend { file, size, name })
}

/// The protocol's rule for file names: 1 to 254 bytes of printable ASCII, not only
/// spaces (the server refuses anything else).
pub fn check_file_name(base: &str) -> Result<FieldString, Failure> {
    let rule = "file names must be 1 to 254 characters of printable ASCII \
                (letters, digits, punctuation, spaces)";
    let hint = "rename the file, or copy it under such a name, and send that";
    let field = FieldString::new(base).ok_or_else(|| {
        Failure::usage(format!(
            "the file name {base:?} is too long for the protocol: {rule}"
        ))
        .hint(hint)
    })?;
    if let Err(e) = names::check_file_name(&field) {
        let why = match e {
            protocol_core::PeerError::InvalidName(why) => why,
            _ => "not acceptable",
        };
        return Err(Failure::usage(format!(
            "the file name {base:?} cannot be sent ({why}): {rule}"
        ))
        .hint(hint));
    }
    Ok(field)
}

/// The protocol's rule for client names: 1 to 100 characters of printable ASCII.
pub fn check_client_name(name: &str) -> Result<FieldString, Failure> {
    let rule = "client names must be 1 to 100 characters of printable ASCII";
    let bad = |why: &str| {
        Failure::usage(format!(
            "the client name {name:?} cannot be used ({why}): {rule}"
        ))
        .hint("change line 2 of transfer.info, or pass --name")
    };
    if name.len() > names::MAX_CLIENT_NAME_LEN {
        return Err(bad(&format!(
            "{} characters; at most {} are allowed",
            name.len(),
            names::MAX_CLIENT_NAME_LEN
        )));
    }
    let field = FieldString::new(name).ok_or_else(|| bad("not a protocol string"))?;
    if let Err(e) = names::check_client_name(&field) {
        return Err(match e {
            protocol_core::PeerError::InvalidName(why) => bad(why),
            _ => bad("not acceptable"),
        });
    }
    Ok(field)
}

/// Checks that `dir` takes new files, before registering: a client that registered
/// but cannot save `me.info` has lost its name on the server.
pub fn folder_writable(dir: &Path) -> Result<(), Failure> {
    let probe = dir.join(format!(".me.info.check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Failure::usage(format!(
            "cannot write in {} ({}); registering would leave this client unable to save me.info \
             and priv.key, and its name would stay taken on the server",
            dir.display(),
            plain(&e)
        ))
        .hint("make the folder writable, or choose another with --dir (nothing was sent)")),
    }
}
