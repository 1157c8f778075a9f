//! The blocking server: an accept loop and a thread per connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown as NetShutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand_core::OsRng;
use tracing::{debug, info, warn};

use crate::handler::{pump, Conn, ConnectionHandler, HandlerFactory, ServerOptions, Shutdown};
use protocol_handler::ConnectionLimiter;

/// Serves connections from `listener` until `shutdown` is triggered, then waits for
/// the connections to finish (at most [`ServerOptions::shutdown_grace`] for uploads).
pub fn serve<F: HandlerFactory>(
    listener: TcpListener,
    options: ServerOptions,
    factory: Arc<F>,
    shutdown: Shutdown,
) -> io::Result<()> {
    // Accepting without blocking lets the loop notice a shutdown within a tick.
    listener.set_nonblocking(true)?;
    let limiter = Arc::new(ConnectionLimiter::default());
    let options = Arc::new(options);
    while !shutdown.is_triggered() {
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let Some(guard) = limiter.try_acquire(
            peer.ip(),
            options.max_connections,
            options.max_connections_per_ip,
        ) else {
            warn!(%peer, "connection refused: too many connections");
            factory.refused(peer);
            drop(stream);
            continue;
        };
        let handler = factory.connect(peer);
        let options = options.clone();
        let shutdown = shutdown.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("conn {peer}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                let _guard = guard;
                if let Err(e) = run_connection(stream, peer, &options, handler, &shutdown) {
                    debug!(%peer, "connection ended: {e}");
                }
            });
        if let Err(e) = spawned {
            warn!(%peer, "could not start a thread for the connection: {e}");
        }
    }
    info!(
        "shutting down: waiting for {} connection(s)",
        limiter.open()
    );
    if !limiter.wait_idle(options.shutdown_grace + Duration::from_secs(2)) {
        warn!("{} connection(s) still open at exit", limiter.open());
    }
    Ok(())
}

const READ_CHUNK: usize = 256 * 1024;
const TICK: Duration = Duration::from_millis(500);

fn run_connection<H: ConnectionHandler>(
    mut stream: TcpStream,
    peer: SocketAddr,
    options: &ServerOptions,
    mut handler: H,
    shutdown: &Shutdown,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut conn: Conn = Conn::new(options.config.clone(), OsRng, Instant::now());
    let mut input = BytesMut::with_capacity(16 * 1024);
    // Read into a buffer zeroed once, then copy what arrived: cheaper than zeroing
    // spare capacity of `input` before every read.
    let mut scratch = vec![0u8; READ_CHUNK];
    let mut out = BytesMut::new();
    let mut shutdown_since: Option<Instant> = None;
    let mut read_timeout = None;
    debug!(%peer, "connection accepted");
    let result = loop {
        let now = Instant::now();
        if let Some(e) = pump(&mut conn, &mut handler, &mut input, now) {
            crate::log::closing(peer, conn.client_id(), &e);
        }
        conn.poll_transmit(&mut out);
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out) {
                conn.handle_eof();
                drain(&mut conn, &mut handler);
                break Err(e);
            }
            out.clear();
        }
        if conn.is_finished() {
            break Ok(());
        }
        if shutdown.is_triggered() {
            let since = *shutdown_since.get_or_insert(now);
            // An upload runs to its client's verdict (900/902 answered), within the grace.
            let busy = conn.is_uploading() || conn.awaits_verdict();
            if !busy || now.duration_since(since) > options.shutdown_grace {
                conn.handle_eof();
                drain(&mut conn, &mut handler);
                break Ok(());
            }
        }
        if !conn.wants_read() {
            // Only a handler that answers later (or forgets to) can leave the
            // connection waiting; the question's deadline still runs.
            std::thread::sleep(Duration::from_millis(1));
            conn.handle_timeout(Instant::now());
            continue;
        }
        let wait = conn
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(TICK)
            .clamp(Duration::from_millis(1), TICK);
        // Whole 10 ms steps, and only when it changes: a system call per read
        // otherwise (the wait is the constant TICK while nothing is due).
        let wait = Duration::from_millis((wait.as_millis() as u64 / 10 * 10).max(1));
        if read_timeout != Some(wait) {
            stream.set_read_timeout(Some(wait))?;
            read_timeout = Some(wait);
        }
        match stream.read(&mut scratch) {
            Ok(0) => {
                pump(&mut conn, &mut handler, &mut input, Instant::now());
                conn.handle_eof();
                drain(&mut conn, &mut handler);
                break Ok(());
            }
            Ok(n) => input.extend_from_slice(&scratch[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                conn.handle_timeout(Instant::now());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                conn.handle_eof();
                drain(&mut conn, &mut handler);
                break Err(e);
            }
        }
    };
    conn.poll_transmit(&mut out);
    if !out.is_empty() {
        let _ = stream.write_all(&out);
    }
    let _ = stream.shutdown(NetShutdown::Both);
    handler.on_close(&conn);
    debug!(%peer, "connection closed");
    result
}

fn drain<H: ConnectionHandler>(conn: &mut Conn, handler: &mut H) {
    while let Some(ev) = conn.poll_event() {
        handler.on_event(conn, ev);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    use super::ConnectionLimiter;

    #[test]
    fn caps_overall_and_per_address_and_releases_on_drop() {
        let limiter = Arc::new(ConnectionLimiter::default());
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let g1 = limiter.try_acquire(a, 3, 2).unwrap();
        let _g2 = limiter.try_acquire(a, 3, 2).unwrap();
        assert!(limiter.try_acquire(a, 3, 2).is_none(), "per-address cap");
        let _g3 = limiter.try_acquire(b, 3, 2).unwrap();
        assert!(limiter.try_acquire(b, 3, 2).is_none(), "overall cap");
        assert_eq!(limiter.open(), 3);
        drop(g1);
        assert!(limiter.try_acquire(a, 3, 2).is_some(), "released on drop");
    }
}
