//! The operator's HTTP listener (`--metrics ADDR:PORT`): `GET /metrics` (every series,
//! text format) and `GET /healthz` (for a load balancer's health check).
//!
//! It runs on a thread and a single-threaded runtime of its own, so a scrape or a slow
//! health query never takes a worker from the protocol transports, and it answers
//! whichever transport serves the clients.
//!
//! `/healthz` answers `200 ok` while the server accepts connections and its metadata
//! store answers [`Metadata::health`]; `503` with the reason while it starts, once a
//! stop was asked (SIGTERM: the balancer drains it), or when the store fails (the
//! store's own message goes to the log, not to whoever asked).
//!
//! The listener is bounded like the protocol's, because anyone who can reach it can
//! open connections to it: at most [`MAX_CONNECTIONS`] at once (a newcomer past them
//! is closed at once, holding no descriptor), each for at most [`CONNECTION_LIFETIME`];
//! the store is asked at most once per [`HEALTH_INTERVAL`], one query at a time, and
//! answers in between repeat the last result; failed accepts are logged with a count
//! at most once a second.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tracing::{debug, warn};

use super::{Metrics, Phase};
use crate::storage::Metadata;

/// Connections the listener serves at once: a scraper and a balancer or two need a
/// handful. A newcomer past them is closed at once.
pub const MAX_CONNECTIONS: usize = 16;
/// How long one connection may last, whatever it sends or does not send.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(10);
/// `/healthz` asks the store at most this often; answers in between repeat the last.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// The last answer of the store to a health query, and when it came.
type LastHealth = tokio::sync::Mutex<Option<(Instant, bool)>>;

/// The content type of the text format `prometheus-client` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the listener reports on.
#[derive(Clone)]
pub struct Observed {
    /// The series, and the phase of the server.
    pub metrics: Arc<Metrics>,
    /// The store `/healthz` asks.
    pub metadata: Arc<dyn Metadata>,
}

/// The running listener; stopped by [`MetricsServer::stop`] or on drop.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (an error if it is taken: the operator asked for it) and serves
    /// on a thread of its own.
    pub fn start(addr: SocketAddr, observed: Observed) -> std::io::Result<MetricsServer> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || runtime.block_on(accept_loop(listener, observed, stopped)))?;
        Ok(MetricsServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port chosen when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening and waits for the thread.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shut();
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    observed: Observed,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("metrics listener: {e}");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let last_health: Arc<LastHealth> = Arc::default();
    let mut failures = Throttled::default();
    let mut refused = Throttled::default();
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if let Some(n) = failures.count() {
                        warn!("metrics listener: {n} accepts failed in the last second: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            if let Some(n) = refused.count() {
                debug!("metrics listener: {n} connections closed at once, over {MAX_CONNECTIONS}");
            }
            continue;
        };
        let (observed, last_health) = (observed.clone(), last_health.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                answer(req, observed.clone(), last_health.clone())
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                Ok(Err(e)) => debug!("metrics connection: {e}"),
                Ok(Ok(())) => {}
                Err(_) => debug!("metrics connection closed after {CONNECTION_LIFETIME:?}"),
            }
            drop(slot);
        });
    }
}

/// Counts events and says when to log them: at most once a second, with the count.
#[derive(Default)]
struct Throttled {
    since: Option<Instant>,
    count: u64,
}

impl Throttled {
    /// One more event; the count to log when a line is due.
    fn count(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        match self.since {
            Some(t) if now.duration_since(t) < Duration::from_secs(1) => None,
            _ => {
                self.since = Some(now);
                Some(std::mem::take(&mut self.count))
            }
        }
    }
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

async fn answer(
    req: Request<Incoming>,
    observed: Observed,
    last_health: Arc<LastHealth>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "GET only\n".into(),
        ));
    }
    Ok(match req.uri().path() {
        "/metrics" => text(StatusCode::OK, CONTENT_TYPE, observed.metrics.encode()),
        "/healthz" => {
            let (status, body) = health(&observed, &last_health).await;
            text(status, PLAIN, body)
        }
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: /metrics or /healthz\n".into(),
        ),
    })
}

async fn health(observed: &Observed, last: &LastHealth) -> (StatusCode, String) {
    match observed.metrics.phase() {
        Phase::Starting => return (StatusCode::SERVICE_UNAVAILABLE, "starting\n".into()),
        Phase::Stopping => return (StatusCode::SERVICE_UNAVAILABLE, "stopping\n".into()),
        Phase::Serving => {}
    }
    // One query at a time, and none while the last answer is fresh: a flood of
    // health checks costs the store at most one query per interval.
    let mut last = last.lock().await;
    let healthy = match *last {
        Some((at, healthy)) if at.elapsed() < HEALTH_INTERVAL => healthy,
        _ => {
            // The store may block (a lock, a network round trip): off this thread.
            let metadata = observed.metadata.clone();
            let healthy = match tokio::task::spawn_blocking(move || metadata.health()).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    warn!("health check: {e}");
                    false
                }
                Err(_) => {
                    warn!("health check: the query did not finish");
                    false
                }
            };
            *last = Some((Instant::now(), healthy));
            healthy
        }
    };
    if healthy {
        (StatusCode::OK, "ok\n".into())
    } else {
        // The backend's message (hosts, users, paths) is for the log only.
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "storage unavailable\n".into(),
        )
    }
}
