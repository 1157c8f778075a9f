//! The blocking server: an accept loop and a thread per connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown as NetShutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tracing::{debug, warn};
use transport_interface::tls::server::{Received, ServerTls};

use transport_interface::{
    pump, refusal_bytes, AddressRates, Conn, ConnectionHandler, Entry, Gate, HandlerFactory,
    PrefaceStep, RateLimited, ServerOptions, Settled, Shutdown, Slot, StopRule, LINGER,
    LINGER_BYTES,
};

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
    let rates = AddressRates::from_options(&options);
    let factory = Arc::new(RateLimited::new(factory, rates.clone()));
    let options = Arc::new(options);
    let gate = Arc::new(Gate::new(options.clone(), rates));
    while !shutdown.is_triggered() {
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                std::thread::sleep(gate.accept_failed(&e));
                continue;
            }
        };
        let Some(entry) = gate.accept(peer) else {
            refuse(&stream);
            factory.refused(peer);
            continue;
        };
        let factory = factory.clone();
        let gate = gate.clone();
        let shutdown = shutdown.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("conn {peer}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                let (guard, peer, input) = match settle(&gate, entry, &stream, &shutdown) {
                    Settled::Serve {
                        guard,
                        client,
                        input,
                    } => (guard, client, input),
                    Settled::Busy { client } => {
                        refuse(&stream);
                        return factory.refused(client);
                    }
                    Settled::Close { peer, count } => {
                        let _ = stream.shutdown(NetShutdown::Both);
                        if count {
                            factory.refused(peer);
                        }
                        return;
                    }
                };
                let slot = guard.slot().clone();
                let _guard = guard;
                let handler = factory.connect(peer);
                let options = gate.options();
                let conn = gate.connection();
                let run = Run {
                    peer,
                    options,
                    shutdown: &shutdown,
                    slot: &slot,
                };
                if let Err(e) = run_connection(stream, &run, handler, conn, input) {
                    debug!(%peer, "connection ended: {e}");
                }
            });
        if let Err(e) = spawned {
            warn!(%peer, "could not start a thread for the connection: {e}");
        }
    }
    gate.stopping();
    let limiter = gate.limiter();
    if !limiter.wait_idle(options.shutdown_grace + Duration::from_secs(2)) {
        warn!("{} connection(s) still open at exit", limiter.open());
    }
    Ok(())
}

/// Sends a 1607 and closes. It fits the new socket's send buffer: written without
/// waiting.
fn refuse(stream: &TcpStream) {
    let _ = stream.set_nonblocking(true);
    let _ = (&*stream).write(&refusal_bytes());
}

/// Reads what the PROXY protocol asks of the connection's first bytes (nothing
/// when it is off), for at most [`ServerOptions::proxy_header_timeout`]. A
/// connection shed meanwhile is taken as closed, and so is every one once the
/// server stops (noticed within a [`TICK`]).
fn settle(gate: &Gate, entry: Entry, stream: &TcpStream, shutdown: &Shutdown) -> Settled {
    let mut buf = BytesMut::new();
    let Some(preface) = entry.preface else {
        return gate.settle(entry, PrefaceStep::Read, buf);
    };
    let deadline = Instant::now() + gate.options().proxy_header_timeout;
    let mut chunk = [0u8; 4096];
    let mut reader = stream;
    let step = loop {
        let step = preface.step(&buf);
        if step != PrefaceStep::Read {
            break step;
        }
        if entry.guard.slot().is_shed() || shutdown.is_triggered() {
            break preface.end(false);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left.min(TICK))).is_err() {
            break preface.end(true);
        }
        match reader.read(&mut chunk) {
            Ok(0) => break preface.end(false),
            Ok(n) => {
                entry.guard.slot().note_read(n);
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break preface.end(false),
        }
    };
    gate.settle(entry, step, buf)
}

/// What a connection's loop is given besides its socket, handler and state.
struct Run<'a> {
    peer: SocketAddr,
    options: &'a ServerOptions,
    shutdown: &'a Shutdown,
    slot: &'a Arc<Slot>,
}

const READ_CHUNK: usize = 256 * 1024;
const TICK: Duration = Duration::from_millis(500);

fn run_connection<H: ConnectionHandler>(
    mut stream: TcpStream,
    run: &Run<'_>,
    mut handler: H,
    mut conn: Conn,
    mut input: BytesMut,
) -> io::Result<()> {
    let Run {
        peer,
        options,
        shutdown,
        slot,
    } = *run;
    stream.set_nodelay(true)?;
    input.reserve(16 * 1024);
    // Read into a buffer zeroed once, then copy what arrived: cheaper than zeroing
    // spare capacity of `input` before every read.
    let mut scratch = vec![0u8; READ_CHUNK];
    let mut out = BytesMut::new();
    let mut stop_rule = StopRule::new(options.shutdown_grace);
    let mut read_timeout = None;
    // TLS, if served, is told apart by the first two bytes (and may already be in
    // `input`, read past a PROXY header).
    let mut tls = ServerTls::new(options.tls.as_ref());
    let mut ended = received(&mut tls, &mut input, &mut conn, peer);
    debug!(%peer, "connection accepted");
    let result = loop {
        if ended {
            pump(&mut conn, &mut handler, &mut input, Instant::now());
            conn.handle_eof();
            drain(&mut conn, &mut handler);
            break Ok(());
        }
        let now = Instant::now();
        // While the handler answers, the limiter does not count the connection as
        // silent: a client waiting for a slow answer is not shed as idle.
        let working = (!input.is_empty()).then(|| slot.working());
        if let Some(e) = pump(&mut conn, &mut handler, &mut input, now) {
            transport_interface::log::closing(peer, conn.client_id(), &e);
        }
        drop(working);
        conn.poll_transmit(&mut out);
        tls.seal(&mut out);
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
        if shutdown.is_triggered() && stop_rule.step(&conn, now).is_none() {
            conn.handle_eof();
            drain(&mut conn, &mut handler);
            break Ok(());
        }
        if slot.is_shed() {
            // Shed for a newcomer (its slot is already given away): the read
            // timeout's tick brings the loop here within half a second.
            conn.handle_eof();
            drain(&mut conn, &mut handler);
            break Ok(());
        }
        if conn.is_sending() {
            // A download: the next bytes come from the application, not the peer
            // (the write above waited for the socket).
            continue;
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
            Ok(n) => {
                slot.note_read(n);
                tls.read_buffer(&mut input).extend_from_slice(&scratch[..n]);
                ended = received(&mut tls, &mut input, &mut conn, peer);
            }
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
    tls.close(&mut out);
    if !out.is_empty() {
        let _ = stream.write_all(&out);
    }
    if conn.error().is_some() || !input.is_empty() {
        // After closing for an error (a 1607 sent, the peer possibly still
        // sending): read and discard for a moment, so that the close is not a
        // reset, which would discard the 1607 before the peer reads it.
        let _ = stream.shutdown(NetShutdown::Write);
        let until = Instant::now() + LINGER;
        let mut total = 0;
        while total < LINGER_BYTES {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match stream.read(&mut scratch) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    }
    let _ = stream.shutdown(NetShutdown::Both);
    handler.on_close(&conn);
    debug!(%peer, "connection closed");
    result
}

/// [`ServerTls::received`] for the loop: whether the peer's stream has ended (its
/// close_notify, or a TLS failure, logged here, that ends the connection as the
/// end of its stream would).
fn received(tls: &mut ServerTls, input: &mut BytesMut, conn: &mut Conn, peer: SocketAddr) -> bool {
    match tls.received(input, conn) {
        Ok(Received::Open) => false,
        Ok(Received::Ended) => true,
        Err(e) => {
            debug!(%peer, "closing: {e}");
            true
        }
    }
}

fn drain<H: ConnectionHandler>(conn: &mut Conn, handler: &mut H) {
    while let Some(ev) = conn.poll_event() {
        handler.on_event(conn, ev);
    }
}
