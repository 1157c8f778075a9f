//! Runs selected cases in order, each bounded in time, and makes the report.

use std::net::ToSocketAddrs;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use protocol_core::crypto::PrivateKey;
use protocol_core::rand_core::{OsRng, RngCore};
use thiserror::Error;

use crate::cases::{server_cases, Judged};
use crate::model::{CaseMeta, CaseResult, Outcome, Report, Side};
use crate::probe::{CaseError, Ctx, Env};
use crate::session::{Layout, Upload};

/// Why a run could not start.
#[derive(Debug, Error)]
pub enum RunError {
    /// The address does not resolve.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// Nothing listens there.
    #[error("cannot connect to {addr}: {err}")]
    Connect {
        /// The address.
        addr: String,
        /// Why.
        err: std::io::Error,
    },
    /// Our own keys could not be made.
    #[error("cannot make RSA keys: {0}")]
    Keys(String),
    /// The listener for the client suite.
    #[error("cannot listen on {addr}: {err}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        err: std::io::Error,
    },
    /// A folder for a case or the report.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What every run is given.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Which cases: comma-separated ids, id prefixes (`S5`), group names (`upload`), or
    /// prefixes ending in `*` (`S5.1*`). None: all.
    pub pattern: Option<String>,
    /// The whole run stops starting cases after this long (the rest are SKIPPED).
    pub budget: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            pattern: None,
            budget: Duration::from_secs(900),
        }
    }
}

/// Whether `meta` is selected by `pattern`.
pub fn selected(pattern: Option<&str>, meta: &CaseMeta) -> bool {
    let Some(p) = pattern else { return true };
    p.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .any(|t| {
            let t = t.to_ascii_lowercase();
            let id = meta.id.to_ascii_lowercase();
            if let Some(prefix) = t.strip_suffix('*') {
                id.starts_with(prefix)
            } else {
                id == t || meta.group.name() == t || id.starts_with(&format!("{t}."))
            }
        })
}

/// A fresh prefix for the names a run registers: `cf` and 8 random hex digits.
pub fn name_prefix() -> String {
    let mut b = [0u8; 4];
    OsRng.fill_bytes(&mut b);
    format!(
        "cf{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Turns a case body's result into a [`CaseResult`].
pub fn finish(
    meta: CaseMeta,
    r: Result<Judged, CaseError>,
    ev: crate::evidence::Evidence,
    started: Instant,
) -> CaseResult {
    let (outcome, detail) = match r {
        Ok(j) => (j.outcome, j.detail),
        Err(e) => (Outcome::Error, e.to_string()),
    };
    CaseResult {
        meta,
        outcome,
        detail,
        evidence: ev,
        millis: started.elapsed().as_millis() as u64,
    }
}

/// A result for a case not run.
pub fn skipped(meta: CaseMeta, why: &str) -> CaseResult {
    CaseResult {
        meta,
        outcome: Outcome::Skipped,
        detail: why.into(),
        evidence: Default::default(),
        millis: 0,
    }
}

/// The upload layout the server takes, when it is not the specification's: a
/// 3,000-byte file in 1 KiB packets, then in one packet; the first layout of
/// variants 2/4, 9 and 12 that gets a 1603 is used by the cases that upload only
/// to reach what they test.
fn probe_layout(env: &Env) -> Option<(Layout, usize, String)> {
    let mut ctx = Ctx::new(env);
    let mut works = |layout: Layout, size: usize| -> bool {
        let Ok(mut c) = ctx.ready("layout") else {
            return false;
        };
        let up = Upload {
            data: crate::session::data(3000, 1),
            file_name: b"probe.bin".to_vec(),
            packet_size: size,
            layout,
        };
        ctx.upload_exactly(&mut c, &up)
            .map(|got| got.last().code() == Some(crate::frames::rcode::FILE_RECEIVED))
            .unwrap_or(false)
    };
    if works(Layout::default(), 1024) {
        if works(Layout::default(), 65536) {
            return None;
        }
        return Some((Layout::default(), 1024, "uploads in one 3,008-byte packet got no 1603, in 1 KiB packets they did: cases that only need an upload use 1 KiB packets (variant 9)".into()));
    }
    let b = Layout {
        total_first: true,
        per_packet_encryption: true,
        ..Layout::default()
    };
    if works(b, 1024) {
        return Some((b, 1024, "uploads in the specification's layout got no 1603; total-first, per-packet encryption did: cases that only need an upload use it (variants 2, 4)".into()));
    }
    let d = Layout {
        padded: true,
        ..Layout::default()
    };
    if works(d, 1024) {
        return Some((d, 1024, "uploads in the specification's layout got no 1603; a fixed 1,024-byte content field did: cases that only need an upload use it (variant 12)".into()));
    }
    let p = Layout {
        per_packet_size: true,
        ..Layout::default()
    };
    if works(p, 1024) {
        return Some((p, 1024, "uploads in the specification's layout got no 1603; the content size of each packet in its field did: cases that only need an upload use it (variant 3)".into()));
    }
    None
}

/// Whether the server acknowledges a 900 only when it names the client (variant 5):
/// then the cases that need a verdict only to get to what they test name the client.
fn probe_verdict_name(env: &Env) -> bool {
    let mut ctx = Ctx::new(env);
    let mut try_name = |client_name: bool| -> bool {
        let Ok(mut c) = ctx.ready("vname") else {
            return false;
        };
        let up = Upload {
            data: crate::session::data(300, 2),
            file_name: b"probe.bin".to_vec(),
            packet_size: 1024,
            layout: Layout::default(),
        };
        if ctx.upload(&mut c, &up).is_err() {
            return false;
        }
        let name = if client_name {
            c.name.clone().into_bytes()
        } else {
            up.file_name.clone()
        };
        ctx.verdict_exactly(&mut c, crate::frames::code::CRC_OK, &name)
            .is_ok_and(|a| a.code() == Some(crate::frames::rcode::ACK))
    };
    !try_name(false) && try_name(true)
}

/// Runs the server cases selected by `opts` against `addr`; `progress` sees each
/// result as it comes.
pub fn run_server(
    addr: &str,
    opts: &RunOptions,
    progress: &mut dyn FnMut(&CaseResult),
) -> Result<Report, RunError> {
    let start = Instant::now();
    let sock = addr
        .to_socket_addrs()
        .map_err(|_| RunError::Resolve(addr.into()))?
        .next()
        .ok_or_else(|| RunError::Resolve(addr.into()))?;
    std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(5)).map_err(|err| {
        RunError::Connect {
            addr: addr.into(),
            err,
        }
    })?;
    let keys = [
        PrivateKey::generate(&mut OsRng).map_err(|e| RunError::Keys(e.to_string()))?,
        PrivateKey::generate(&mut OsRng).map_err(|e| RunError::Keys(e.to_string()))?,
    ];
    let mut env = Env::new(sock, keys, name_prefix());
    let mut notes = Vec::new();
    // The connection pattern, before any case: a server that closes after every
    // answer (variant 7) gets a connection per request from every case.
    {
        let mut ctx = Ctx::new(&env);
        if let Ok(c) = ctx.register("probe") {
            std::thread::sleep(Duration::from_millis(300));
            if c.conn.is_closed() {
                notes.push("the server closed the connection after 1600: every case uses a connection per request (variant 7)".to_string());
                env.per_connection = true;
            }
        } else {
            // A server that reads only big-endian requests (variant 1).
            env.order = protocol_core::ByteOrder::Big;
            let mut ctx = Ctx::new(&env);
            if ctx.register("probe").is_ok() {
                notes.push("a little-endian 825 got no 1600, a big-endian one did: every case writes big-endian requests (variant 1)".to_string());
            } else {
                env.order = protocol_core::ByteOrder::Little;
                notes.push("the first registration failed: most cases will not run".to_string());
            }
        }
    }
    if let Some((layout, size, why)) = probe_layout(&env) {
        notes.push(why);
        env.adopted = Some((layout, size));
    }
    if probe_verdict_name(&env) {
        notes.push("900 naming the file got no 1604, naming the client did: cases that only need a verdict name the client (variant 5)".into());
        env.verdict_names_client = true;
    }
    let mut results = Vec::new();
    for (meta, run) in server_cases() {
        if !selected(opts.pattern.as_deref(), &meta) {
            continue;
        }
        let r = if start.elapsed() > opts.budget {
            skipped(meta, "the run's time budget was spent")
        } else {
            let t = Instant::now();
            let mut ctx = Ctx::new(&env);
            let out = run(&mut ctx);
            finish(meta, out, ctx.ev, t)
        };
        progress(&r);
        results.push(r);
    }
    let verdict = crate::verdict::server_verdict(&results);
    Ok(Report {
        side: Side::Server,
        target: addr.to_string(),
        started_unix: unix_now().saturating_sub(start.elapsed().as_secs()),
        millis: start.elapsed().as_millis() as u64,
        results,
        registered_names: env.names(),
        notes,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Group;

    fn meta(id: &str, group: Group) -> CaseMeta {
        CaseMeta {
            id: id.into(),
            group,
            title: String::new(),
            section: String::new(),
            checks: vec![],
        }
    }

    #[test]
    fn patterns() {
        let m = meta("S5.07", Group::Upload);
        assert!(selected(None, &m));
        assert!(selected(Some("S5"), &m));
        assert!(selected(Some("s5.07"), &m));
        assert!(selected(Some("upload"), &m));
        assert!(selected(Some("S1,S5.*"), &m));
        assert!(!selected(Some("S1"), &m));
        assert!(selected(Some("S5.0*"), &m));
        assert!(!selected(Some("S5.0"), &m));
        assert!(!selected(Some("S5.08"), &m));
    }
}
