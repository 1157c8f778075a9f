//! Files that hold the private key (`me.info`, `priv.key`): written so that nobody else
//! can read them or redirect them, and refused when found readable by others.
//!
//! Writing: a fresh temporary name with 64 random bits, created exclusively
//! (`O_CREAT | O_EXCL | O_NOFOLLOW`, so neither a planted file nor a planted symlink
//! is ever opened), made 0600 on the open handle before any byte goes in (whatever
//! the umask), written, fsynced, renamed over the target (a rename replaces a symlink,
//! never follows it), and the folder fsynced so the rename survives a crash.
//!
//! Reading: opened without following a symlink and checked on the open handle: a
//! regular file, owned by the user, with no permission bit for group or others; as
//! ssh does for its keys, anything else is refused with what is wrong and the fix.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rand_core::{OsRng, RngCore};
use rustix::fs::OFlags;
use zeroize::Zeroizing;

/// Mode of a file that holds the private key.
const PRIVATE_MODE: u32 = 0o600;
/// How many fresh names to try before giving up (a collision of 64 random bits
/// means someone is creating names in the folder on purpose).
const NAME_ATTEMPTS: usize = 8;
/// The most a key file may hold: a base64 RSA key is a few KiB; anything far bigger
/// is not a key file, and is refused without being read whole.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Writes `contents` to `path` (mode 0600) through a fresh temporary file and a rename.
pub fn write_secret(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (tmp, mut file) = create_fresh(&dir, path)?;
    let written = fill(&mut file, contents)
        .and_then(|()| fs::rename(&tmp, path))
        .with_context(|| format!("cannot write {}", path.display()));
    if written.is_err() {
        // Ours: created exclusively under a random name. Unlinking never follows.
        let _ = fs::remove_file(&tmp);
        return written;
    }
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the folder {}", dir.display()))
}

/// Creates a new file beside `target` under a random name nobody can have planted.
fn create_fresh(dir: &Path, target: &Path) -> anyhow::Result<(PathBuf, File)> {
    let base = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "key".to_string());
    for _ in 0..NAME_ATTEMPTS {
        let tmp = dir.join(format!(".{base}.{:016x}.tmp", OsRng.next_u64()));
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_MODE)
            .custom_flags((OFlags::NOFOLLOW | OFlags::CLOEXEC).bits() as i32)
            .open(&tmp);
        match opened {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot create a temporary file in {}", dir.display())
                })
            }
        }
    }
    bail!(
        "cannot create a temporary file in {}: {NAME_ATTEMPTS} random names were all taken",
        dir.display()
    )
}

fn fill(file: &mut File, contents: &[u8]) -> io::Result<()> {
    // The mode given at creation is filtered by the umask; set it on the handle itself.
    file.set_permissions(Permissions::from_mode(PRIVATE_MODE))?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Reads a file that holds the private key, refusing one that others could read or
/// replace. The text is zeroized when dropped.
pub fn read_secret(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let mut file = OpenOptions::new()
        .read(true)
        // Not through a symlink; and a FIFO must not block the open.
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => {
                anyhow::anyhow!(
                    "{} is a symbolic link; the private key must be in a regular file: \
                     replace the link with the file it points to, owned by you and mode 600",
                    path.display()
                )
            }
            _ => anyhow::Error::new(e).context(format!("cannot read {}", path.display())),
        })?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    check_private(path, meta.is_file(), meta.uid(), meta.mode())?;
    if meta.len() > MAX_KEY_FILE_BYTES {
        bail!(
            "{} holds {} bytes; a key file holds a few thousand (at most {MAX_KEY_FILE_BYTES} \
             are read): it is not one this client wrote",
            path.display(),
            meta.len()
        );
    }
    let mut text = Zeroizing::new(String::with_capacity(meta.len() as usize + 1));
    // The size checked above may grow while reading: never read past the limit.
    (&mut file)
        .take(MAX_KEY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if text.len() as u64 > MAX_KEY_FILE_BYTES {
        bail!(
            "{} grew past {MAX_KEY_FILE_BYTES} bytes while it was read",
            path.display()
        );
    }
    Ok(text)
}

/// Whether a file with this type, owner and mode may hold the private key; if not,
/// what is wrong and how to fix it.
fn check_private(path: &Path, regular: bool, owner: u32, mode: u32) -> anyhow::Result<()> {
    let shown = path.display();
    if !regular {
        bail!(
            "{shown} is not a regular file; the private key must be in a regular file \
             owned by you with mode 600"
        );
    }
    let me = rustix::process::geteuid().as_raw();
    if owner != me {
        bail!(
            "{shown} belongs to user id {owner}, not to you (user id {me}); someone else \
             could have written it: check its contents, then `chown {me} {shown}` \
             (or delete it and register again)"
        );
    }
    let loose = mode & 0o077;
    if loose != 0 {
        let what = match (loose & 0o044 != 0, loose & 0o022 != 0) {
            (true, true) => "readable and writable",
            (true, false) => "readable",
            _ => "writable",
        };
        let who = match (loose & 0o070 != 0, loose & 0o007 != 0) {
            (true, true) => "group and others",
            (true, false) => "group",
            _ => "others",
        };
        bail!(
            "{shown} is {what} by {who} (mode {:04o}); it holds the private key: \
             run `chmod 600 {shown}`",
            mode & 0o7777
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_0600_whatever_the_umask_and_leaves_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("priv.key");
        // An existing file at 0644 is replaced by a 0600 one.
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        write_secret(&path, b"secret\n").unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"secret\n");
        assert_eq!(names(tmp.path()), ["priv.key"]);
    }

    #[test]
    fn replaces_a_planted_symlink_without_writing_through_it() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere.txt");
        fs::write(&elsewhere, "untouched").unwrap();
        let path = tmp.path().join("me.info");
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        write_secret(&path, b"secret").unwrap();
        assert!(fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "untouched");
    }

    #[test]
    fn reads_a_private_file_and_refuses_loose_modes_links_and_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("me.info");
        write_secret(&path, b"alice\n").unwrap();
        assert_eq!(&*read_secret(&path).unwrap(), "alice\n");

        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        let e = read_secret(&path).unwrap_err().to_string();
        assert!(
            e.contains("is readable by group and others (mode 0644)"),
            "{e}"
        );
        assert!(e.contains("chmod 600"), "{e}");
        fs::set_permissions(&path, Permissions::from_mode(0o620)).unwrap();
        let e = read_secret(&path).unwrap_err().to_string();
        assert!(e.contains("is writable by group (mode 0620)"), "{e}");
        fs::set_permissions(&path, Permissions::from_mode(0o606)).unwrap();
        let e = read_secret(&path).unwrap_err().to_string();
        assert!(
            e.contains("is readable and writable by others (mode 0606)"),
            "{e}"
        );

        fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        let link = tmp.path().join("priv.key");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let e = read_secret(&link).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");

        let folder = tmp.path().join("folder");
        fs::create_dir(&folder).unwrap();
        fs::set_permissions(&folder, Permissions::from_mode(0o700)).unwrap();
        let e = format!("{:#}", read_secret(&folder).unwrap_err());
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn refuses_a_file_owned_by_someone_else() {
        let me = rustix::process::geteuid().as_raw();
        let other = me.wrapping_add(1);
        let e = check_private(Path::new("me.info"), true, other, 0o100600)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("belongs to user id {other}")), "{e}");
        assert!(check_private(Path::new("me.info"), true, me, 0o100600).is_ok());
    }
}
