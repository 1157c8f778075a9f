//! A small tokio runtime owned by the backend, and the way synchronous callers wait on it.
//!
//! [`Contents`](crate::storage::Contents) is synchronous; `object_store` is async. A
//! future is spawned onto this runtime and the caller waits on a `std::sync::mpsc`
//! channel. `Runtime::block_on` and `blocking_recv` would panic when the caller is
//! itself inside a tokio context (the tokio transport calls storage from
//! `spawn_blocking` threads; `main` may run under `#[tokio::main]`); a plain channel
//! never does.

use std::future::Future;
use std::io;
use std::sync::mpsc;

use tokio::runtime::{Builder, Runtime};

/// The runtime; shut down without waiting when the backend is dropped (dropping a
/// runtime the ordinary way panics inside an async context).
pub struct Bridge {
    rt: Option<Runtime>,
}

fn stopped() -> io::Error {
    io::Error::other("the S3 backend's runtime stopped")
}

impl Bridge {
    /// A runtime of `threads` workers (HTTP requests are I/O-bound: two are plenty).
    pub fn new(threads: usize) -> io::Result<Bridge> {
        let rt = Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("s3-contents")
            .enable_all()
            .build()?;
        Ok(Bridge { rt: Some(rt) })
    }

    /// Starts `f` and returns where its result will arrive.
    pub fn spawn<T, F>(&self, f: F) -> io::Result<Pending<T>>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let rt = self.rt.as_ref().ok_or_else(stopped)?;
        let (tx, rx) = mpsc::channel();
        rt.spawn(async move {
            // The receiver may be gone (a sink dropped mid-part): nothing to tell.
            let _ = tx.send(f.await);
        });
        Ok(Pending { rx })
    }

    /// Runs `f` to completion, blocking this (non-runtime) thread.
    pub fn run<T, F>(&self, f: F) -> io::Result<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.spawn(f)?.wait()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A result still being computed on the runtime.
pub struct Pending<T> {
    rx: mpsc::Receiver<T>,
}

impl<T> Pending<T> {
    /// Waits for it.
    pub fn wait(self) -> io::Result<T> {
        self.rx.recv().map_err(|_| stopped())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_from_inside_another_tokio_runtime_and_dropped_there() {
        let outer = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        outer.block_on(async {
            let b = Bridge::new(1).unwrap();
            // Block-on from inside an async context would panic here; the channel does not.
            let v = tokio::task::spawn_blocking(move || {
                let v = b.run(async { 41 + 1 }).unwrap();
                (v, b)
            })
            .await
            .unwrap();
            assert_eq!(v.0, 42);
            // Dropped on a runtime worker: must not panic.
            drop(v.1);
        });
    }
}
