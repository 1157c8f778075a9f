//! A real HAProxy in front of real servers, for end-to-end tests of a fleet.
//!
//! ```no_run
//! # use test_kit::haproxy::{Backend, HaProxy};
//! # let root = std::path::Path::new("/tmp/x");
//! // Each server with a metrics listener: its /healthz is the balancer's check.
//! let a = test_kit::Server::start(&root.join("a"), 0, &["--metrics", "127.0.0.1:0"]);
//! let b = test_kit::Server::start(&root.join("b"), 0, &["--metrics", "127.0.0.1:0"]);
//! let lb = HaProxy::start(&root.join("lb"), &[Backend::of("a", &a), Backend::of("b", &b)]);
//! lb.wait_for("a", "UP");
//! lb.wait_for("b", "UP");
//! // Clients connect to lb.port: TCP mode, round robin over the servers that are UP.
//! // write_transfer(&client, lb.port, "alice", "f.bin");
//! a.stop(); // SIGTERM: a's /healthz says 503, then its listeners close
//! lb.wait_for("a", "DOWN");
//! ```
//!
//! - [`Backend::proxied`]: HAProxy sends each connection's client address in a PROXY
//!   v2 header (`send-proxy-v2`), for a server run with [`PROXY_FROM_LB`].
//! - [`HaProxy::start`] writes `haproxy.cfg` in `dir` (`mode tcp`, `balance
//!   roundrobin`, `option httpchk GET /healthz` against each backend's check port,
//!   checks every 100 ms, down after 2 failures, up after 1 success, `option
//!   redispatch` with 3 retries so that a connection refused by a server going away is
//!   sent to another), starts `haproxy -f haproxy.cfg -db` in the foreground on a free
//!   loopback port, and returns once that port accepts connections. Its output is in
//!   `dir/haproxy.log`. The process is killed on drop (never left running).
//! - [`HaProxy::states`] / [`HaProxy::wait_for`]: the balancer's own view of each
//!   server (`UP`, `DOWN`, ...), read from its admin socket (`show stat`).
//!
//! `haproxy` is found on `PATH` or in `/usr/sbin` (`.ci/haproxy.sh` installs Debian's).
//! [`HaProxy::try_start`] with [`Settings`] is the benchmarks' form: errors instead of
//! panics, their own check interval and connection cap.
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One server behind the balancer.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Its name in the configuration and in [`HaProxy::states`].
    pub name: String,
    /// The protocol port (on 127.0.0.1).
    pub port: u16,
    /// The port of its `/healthz` (the server's `--metrics` listener, on 127.0.0.1).
    pub check_port: u16,
    /// Whether HAProxy starts each connection to it with a PROXY v2 header
    /// (`send-proxy-v2`); the server must then run with `--proxy-protocol 127.0.0.1`.
    /// Health checks go to the check port without one.
    pub send_proxy: bool,
}

impl Backend {
    /// `server` as backend `name`: its protocol port, and its metrics port as the
    /// check port (the server must run with `--metrics 127.0.0.1:0` or a port).
    pub fn of(name: &str, server: &crate::Server) -> Backend {
        Backend {
            name: name.to_string(),
            port: server.port,
            check_port: server
                .metrics_port()
                .expect("the server runs without --metrics: no /healthz to check"),
            send_proxy: false,
        }
    }

    /// [`Backend::of`] with `send-proxy-v2`: the server (run with `--proxy-protocol
    /// 127.0.0.1`, see [`PROXY_FROM_LB`]) sees each client's own address.
    pub fn proxied(name: &str, server: &crate::Server) -> Backend {
        Backend {
            send_proxy: true,
            ..Backend::of(name, server)
        }
    }
}

/// The server options that trust this balancer's PROXY headers (HAProxy connects
/// to the servers from 127.0.0.1).
pub const PROXY_FROM_LB: [&str; 2] = ["--proxy-protocol", "127.0.0.1"];

/// A running `haproxy` (killed on drop).
pub struct HaProxy {
    child: Child,
    /// The folder of its configuration, admin socket and log.
    pub dir: PathBuf,
    /// Where clients connect (127.0.0.1).
    pub port: u16,
}

/// The `haproxy` program: on `PATH`, else Debian's `/usr/sbin/haproxy`.
pub fn haproxy_bin() -> PathBuf {
    let on_path = Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if on_path {
        PathBuf::from("haproxy")
    } else {
        PathBuf::from("/usr/sbin/haproxy")
    }
}

/// What differs between the tests' balancer and the benchmarks'.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Connections at once (global and on the frontend).
    pub maxconn: u32,
    /// How often an UP server's `/healthz` is checked (`inter`); a server that
    /// fails a check, or is DOWN, is checked every 100 ms.
    pub check_every: Duration,
}

impl Default for Settings {
    /// The tests': 4,096 connections, checks every 100 ms.
    fn default() -> Settings {
        Settings {
            maxconn: 4096,
            check_every: Duration::from_millis(100),
        }
    }
}

fn config(dir: &Path, port: u16, backends: &[Backend], settings: &Settings) -> String {
    let mut cfg = format!(
        "global\n\
         \x20   maxconn {maxconn}\n\
         \x20   stats socket {sock} mode 600 level admin\n\
         defaults\n\
         \x20   mode tcp\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 5m\n\
         \x20   timeout server 5m\n\
         \x20   timeout check 1s\n\
         \x20   retries 3\n\
         \x20   option redispatch\n\
         frontend clients\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   maxconn {maxconn}\n\
         \x20   default_backend servers\n\
         backend servers\n\
         \x20   balance roundrobin\n\
         \x20   option httpchk GET /healthz\n\
         \x20   http-check expect status 200\n\
         \x20   default-server inter {inter}ms fastinter 100ms downinter 100ms fall 2 rise 1\n",
        sock = dir.join("haproxy.sock").display(),
        maxconn = settings.maxconn,
        inter = settings.check_every.as_millis(),
    );
    for b in backends {
        cfg.push_str(&format!(
            "    server {} 127.0.0.1:{} check port {}{}\n",
            b.name,
            b.port,
            b.check_port,
            if b.send_proxy { " send-proxy-v2" } else { "" }
        ));
    }
    cfg
}

impl HaProxy {
    /// Writes the configuration for `backends` in `dir`, starts HAProxy on a free
    /// loopback port and waits until it accepts connections (up to 20 s).
    ///
    /// # Panics
    /// With HAProxy's output, if it cannot start.
    pub fn start(dir: &Path, backends: &[Backend]) -> HaProxy {
        HaProxy::try_start(dir, backends, &Settings::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`start`](Self::start) with `settings`, returning what went wrong.
    pub fn try_start(dir: &Path, backends: &[Backend], settings: &Settings) -> io::Result<HaProxy> {
        std::fs::create_dir_all(dir)?;
        // A free port can be taken before HAProxy binds it: try again on another.
        for _ in 0..5 {
            let port = crate::free_port();
            let cfg = dir.join("haproxy.cfg");
            std::fs::write(&cfg, config(dir, port, backends, settings))?;
            let _ = std::fs::remove_file(dir.join("haproxy.sock"));
            let log = std::fs::File::create(dir.join("haproxy.log"))?;
            let child = Command::new(haproxy_bin())
                .arg("-f")
                .arg(&cfg)
                .arg("-db")
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .map_err(|e| {
                    io::Error::other(format!(
                        "starting haproxy (.ci/haproxy.sh installs it): {e}"
                    ))
                })?;
            let mut lb = HaProxy {
                child,
                dir: dir.to_path_buf(),
                port,
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok()
                    // The socket file appears at bind, before HAProxy listens on it.
                    && UnixStream::connect(dir.join("haproxy.sock")).is_ok()
                {
                    return Ok(lb);
                }
                if let Ok(Some(_)) = lb.child.try_wait() {
                    break; // dropped: try another port
                }
                if Instant::now() > deadline {
                    return Err(io::Error::other(format!(
                        "haproxy did not start: {}",
                        self_log(dir)
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err(io::Error::other(format!(
            "haproxy did not start: {}",
            self_log(dir)
        )))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (up to 30 s) until HAProxy reports all `n` servers UP.
    pub fn wait_all_up(&self, n: usize) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let states = self.try_states()?;
            if states.len() == n && states.iter().all(|(_, s)| s == "UP") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "haproxy reports its servers as {states:?}, not all UP"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One command on the admin socket; its answer.
    ///
    /// # Panics
    /// If the admin socket does not answer.
    pub fn admin(&self, command: &str) -> String {
        self.try_admin(command)
            .unwrap_or_else(|e| panic!("haproxy's admin socket: {e}"))
    }

    fn try_admin(&self, command: &str) -> io::Result<String> {
        let mut sock = UnixStream::connect(self.dir.join("haproxy.sock"))?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        sock.write_all(format!("{command}\n").as_bytes())?;
        let mut out = String::new();
        sock.read_to_string(&mut out)?;
        Ok(out)
    }

    /// The balancer's view of each server: (name, status), status as HAProxy says
    /// it (`UP`, `DOWN`, `UP 1/2`, `NOLB`, `MAINT`, ...).
    ///
    /// # Panics
    /// If the admin socket does not answer.
    pub fn states(&self) -> Vec<(String, String)> {
        self.try_states().unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_states(&self) -> io::Result<Vec<(String, String)>> {
        let csv = self.try_admin("show stat")?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (Some(px), Some(sv), Some(st)) = (col("pxname"), col("svname"), col("status")) else {
            return Err(io::Error::other(format!(
                "haproxy's show stat has no pxname/svname/status columns: {csv}"
            )));
        };
        Ok(lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > st && f[px] == "servers" && f[sv] != "BACKEND")
            .map(|f| (f[sv].to_string(), f[st].to_string()))
            .collect())
    }

    /// The status of server `name`.
    pub fn state(&self, name: &str) -> Option<String> {
        self.states()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }

    /// Waits (up to 30 s) until HAProxy reports server `name` as `status` (`"UP"`
    /// or `"DOWN"`; a transition such as `UP 1/2` does not count).
    ///
    /// # Panics
    /// If it does not by then.
    pub fn wait_for(&self, name: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // A refused admin connection (HAProxy busy, or just started) is asked again.
            let now = self
                .try_states()
                .map(|all| all.into_iter().find(|(n, _)| n == name).map(|(_, s)| s));
            if matches!(&now, Ok(Some(s)) if s == status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy reports {name} as {now:?}, not {status}; states: {:?}",
                self.try_states()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops HAProxy (SIGKILL) and waits for it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn self_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default()
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        self.kill();
    }
}
