//! `client get NAME [-o PATH] [--version V]`: a download written to a temporary file
//! beside the target, checked against the stored hash, then moved into place. A cut
//! download resumes on the next run from what the temporary file holds; the final
//! check covers every byte, so a resumed download is never half old, half new.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use protocol_core::crypto::{Checksum, ChecksumAlgorithm};
use protocol_core::secure::SecureClientEvent;
use sha2::{Digest, Sha256};

use super::{hex, open_required, refused, unexpected, Broken, Target};
use crate::exit::{plain, Exit, Failure};
use crate::out::Out;
use crate::progress::{Progress, Verbosity};
use crate::summary::Summary;

/// What `get` was asked.
pub struct GetArgs<'a> {
    /// The file's name on the server.
    pub name: &'a str,
    /// Where to write it (default: the name, in the current folder).
    pub output: Option<&'a Path>,
    /// A version id (default: the current content).
    pub version: Option<u64>,
    /// Replace an existing file.
    pub force: bool,
    /// Accept an unverified file.
    pub unverified: bool,
}

/// A name from the server (or for it) is never a path: no separators, no `.`/`..`,
/// no NUL. The local file it becomes is always inside the chosen folder.
pub fn safe_local_name(name: &str) -> Result<&str, Failure> {
    let bad = name.is_empty()
        || name.contains(['/', '\\', '\0'])
        || name == "."
        || name == ".."
        || Path::new(name)
            .components()
            .any(|c| !matches!(c, Component::Normal(_)));
    if bad {
        return Err(Failure::usage(format!(
            "{name:?} cannot be used as a file name here (it would name a path); give -o PATH"
        )));
    }
    Ok(name)
}

fn target_path(args: &GetArgs<'_>) -> Result<PathBuf, Failure> {
    match args.output {
        Some(p) if p.is_dir() => Ok(p.join(safe_local_name(args.name)?)),
        Some(p) => Ok(p.to_path_buf()),
        None => Ok(PathBuf::from(safe_local_name(args.name)?)),
    }
}

fn part_path(target: &Path) -> PathBuf {
    let file = target
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    target.with_file_name(format!(".{file}.part"))
}

/// Downloads one file.
pub fn get(
    t: &Target<'_>,
    args: &GetArgs<'_>,
    out: &Out,
    verbosity: Verbosity,
    summary: &mut Summary,
) -> Result<(), Failure> {
    let target = target_path(args)?;
    if target.exists() && !args.force {
        return Err(
            Failure::usage(format!("{} exists already", target.display()))
                .hint("give --force to replace it, or -o another path"),
        );
    }
    let part = part_path(&target);
    let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let mut s = open_required(t, out, "get")?;
    let fail = |b: Broken| match b {
        Broken::Failed(f) => f,
        Broken::Lost(why) => {
            Failure::new(Exit::ConnectionLost, format!("the download was cut: {why}"))
                .hint(format!("run again: it resumes from {}", part.display()))
        }
    };
    s.proto()
        .get(args.name, args.version, have, args.unverified)
        .map_err(|e| Failure::new(Exit::Internal, e.to_string()))?;
    let (offset, content) = match s.next().map_err(fail)? {
        SecureClientEvent::GetBegin {
            offset, content, ..
        } => (offset, content),
        SecureClientEvent::Refused { reason, message } => {
            // An offset past the end: the temporary file is not of this content.
            if have > 0 && reason == protocol_core::secure::frame::Refusal::NotFound {
                let _ = fs::remove_file(&part);
            }
            return Err(refused(&message));
        }
        other => return Err(fail(unexpected(other))),
    };
    let write_err = |e: std::io::Error| {
        Failure::usage(format!("cannot write {}: {}", part.display(), plain(e)))
    };
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&part)
        .map_err(write_err)?;
    if offset > 0 {
        out.note(&format!(
            "resuming at byte {offset} of {} ({})",
            content.size,
            part.display()
        ));
    }
    // The whole file, a part kept from an earlier run included, is hashed: that part
    // first, from the temporary file, then each piece as it arrives (hashing it in
    // a second pass after the transfer read the whole file again, after the server
    // had finished, where this overlaps with its sending).
    let mut sha = Sha256::new();
    let mut ck = Checksum::new(ChecksumAlgorithm::Cksum);
    let mut total = 0u64;
    if have > 0 {
        let mut f = File::open(&part).map_err(write_err)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(write_err)?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
            ck.update(&buf[..n]);
            total += n as u64;
        }
    }
    let progress = Progress::new(args.name, content.size, verbosity);
    progress.start(1);
    let mut received = offset;
    loop {
        match s.next().map_err(|b| {
            progress.clear();
            fail(b)
        })? {
            SecureClientEvent::GetData(data) => {
                file.write_all(&data).map_err(write_err)?;
                sha.update(&data);
                ck.update(&data);
                total += data.len() as u64;
                received += data.len() as u64;
                progress.update(received);
            }
            SecureClientEvent::GetEnd => break,
            other => return Err(fail(unexpected(other))),
        }
    }
    s.close();
    file.sync_all().map_err(write_err)?;
    drop(file);
    progress.clear();
    let sha: [u8; 32] = sha.finalize().into();
    let ok = total == content.size
        && match (content.sha256, content.cksum) {
            (Some(expected), _) => expected == sha,
            (None, Some(c)) => c == ck.value(),
            (None, None) => true,
        };
    if !ok {
        let _ = fs::remove_file(&part);
        return Err(Failure::new(
            Exit::Checksum,
            format!("the downloaded bytes do not match the server's stored hash ({total} bytes)"),
        )
        .hint("run again to download it whole"));
    }
    if args.force {
        fs::rename(&part, &target).map_err(write_err)?;
    } else {
        // Never over a file that appeared meanwhile: a link fails if the target exists.
        fs::hard_link(&part, &target).map_err(|e| {
            Failure::usage(format!("cannot create {}: {}", target.display(), plain(e)))
                .hint("give --force to replace it")
        })?;
        let _ = fs::remove_file(&part);
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    let verified_by = if content.sha256.is_some() {
        format!("SHA-256 {}", hex(&sha))
    } else {
        format!("cksum {}", ck.value())
    };
    out.say(&format!(
        "got {}: {} bytes in {:.2} s into {}, {verified_by} verified",
        args.name,
        content.size,
        progress.elapsed().as_secs_f64(),
        target.display()
    ));
    summary.file = Some(target.display().to_string());
    summary.bytes = Some(content.size);
    summary.seconds = Some(progress.elapsed().as_secs_f64());
    summary.sha256 = content.sha256.map(|s| hex(&s));
    summary.checksum = content.cksum;
    summary.mode = Some("secure".into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{safe_local_name, target_path, GetArgs};
    use std::path::Path;

    #[test]
    fn names_that_would_be_paths_are_refused() {
        for bad in [
            "../x",
            "..",
            ".",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "x\0y",
            "",
            "../../root/.ssh/authorized_keys",
        ] {
            assert!(safe_local_name(bad).is_err(), "{bad:?}");
        }
        for good in ["notes.txt", ".hidden", "a..b", "name with spaces"] {
            assert_eq!(safe_local_name(good).unwrap(), good);
        }
    }

    #[test]
    fn a_name_lands_inside_the_folder_given() {
        let dir = std::env::temp_dir();
        let args = |name| GetArgs {
            name,
            output: Some(&dir),
            version: None,
            force: false,
            unverified: false,
        };
        assert_eq!(target_path(&args("f.bin")).unwrap(), dir.join("f.bin"));
        assert!(target_path(&args("../f.bin")).is_err());
        let explicit = GetArgs {
            name: "../f.bin",
            output: Some(Path::new("/tmp/chosen.bin")),
            version: None,
            force: false,
            unverified: false,
        };
        // A path the user gives is the user's choice, whatever the name.
        assert_eq!(
            target_path(&explicit).unwrap(),
            Path::new("/tmp/chosen.bin")
        );
    }
}
