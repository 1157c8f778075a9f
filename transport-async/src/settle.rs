//! A new connection's first bytes: the PROXY protocol header when its peer is a
//! listed balancer, read within [`ServerOptions::proxy_header_timeout`](
//! transport_interface::ServerOptions::proxy_header_timeout).

use std::time::Instant;

use bytes::BytesMut;
use futures_lite::future;
use transport_interface::{Entry, Gate, PrefaceStep, Settled};

use crate::runtime::Runtime;
use crate::watched::poll_read_watched;

/// What ended a wait for a connection's first bytes.
enum Woke {
    Read(std::io::Result<usize>),
    Late,
    Stop,
}

/// Reads what the PROXY protocol asks of the connection's first bytes (nothing
/// when it is off), for at most the header timeout. A connection shed meanwhile
/// reads as closed, and so does every one once the server stops (`stop` closed).
pub(crate) async fn settle<R: Runtime>(
    gate: &Gate,
    entry: Entry,
    stream: &R::Stream,
    stop: &async_channel::Receiver<()>,
) -> Settled {
    let mut buf = BytesMut::new();
    let Some(preface) = entry.preface else {
        return gate.settle(entry, PrefaceStep::Read, buf);
    };
    let deadline = Instant::now() + gate.options().proxy_header_timeout;
    let mut timer = R::timer(deadline);
    let slot = entry.guard.slot().clone();
    let step = loop {
        let step = preface.step(&buf);
        if step != PrefaceStep::Read {
            break step;
        }
        if stop.is_closed() {
            break preface.end(false);
        }
        buf.reserve(4096);
        let read = async {
            Woke::Read(
                std::future::poll_fn(|cx| poll_read_watched(stream, &slot, cx, &mut buf)).await,
            )
        };
        let late = async {
            (&mut timer).await;
            Woke::Late
        };
        let stopped = async {
            let _ = stop.recv().await;
            Woke::Stop
        };
        match future::or(read, future::or(late, stopped)).await {
            Woke::Late => break preface.end(true),
            Woke::Stop | Woke::Read(Ok(0)) | Woke::Read(Err(_)) => break preface.end(false),
            Woke::Read(Ok(_)) => {}
        }
    };
    gate.settle(entry, step, buf)
}
