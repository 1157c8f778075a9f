//! The drivers the suite runs on: the async driver on tokio, smol and async-std,
//! and the blocking transport-std. Each starts a server and runs a client to its
//! end from a plain thread, so that the cases are written once.

use std::future::Future;
use std::io::{self, Cursor};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, OnceLock};

use async_io::Async;
use protocol_core::rand_core::CryptoRngCore;
use protocol_core::{ClientSession, Outcome};
use transport_async::runtime::{Smol, Tokio};
use transport_async::Runtime;
use transport_interface::{
    AsyncHandlerFactory, ClientError, ClientOptions, HandlerFactory, ServerOptions, Shutdown,
};

/// A running server: its address, and how to stop it and wait for it.
pub struct Server {
    pub addr: SocketAddr,
    stop: Box<dyn FnOnce() -> io::Result<()>>,
}

impl Server {
    /// Stops the server and waits until it returns.
    pub fn stop(self) -> io::Result<()> {
        (self.stop)()
    }
}

/// What every case needs of a transport.
pub trait Driver {
    /// Starts a server of a synchronous application.
    fn serve<F: HandlerFactory>(factory: Arc<F>, options: ServerOptions) -> Server;
    /// Runs `session` over a new connection to `addr` to its end.
    fn run_client<C: CryptoRngCore + Send>(
        session: &mut ClientSession<C>,
        addr: SocketAddr,
        data: Vec<u8>,
        options: &ClientOptions,
    ) -> Result<Outcome, ClientError>;
}

/// The drivers that also serve an asynchronous application.
pub trait AsyncDriver: Driver {
    /// Starts a server of an asynchronous application.
    fn serve_async<F: AsyncHandlerFactory>(factory: Arc<F>, options: ServerOptions) -> Server;
}

/// An async runtime as the suite drives it.
pub trait Rt {
    /// The adapter.
    type R: Runtime;
    /// The adapter's value.
    fn runtime() -> Self::R;
    /// Runs `f` to its end on the calling thread.
    fn block_on<T>(f: impl Future<Output = T>) -> T;
    /// Starts `f` as a task; the returned function waits for its end.
    fn start(
        f: impl Future<Output = io::Result<()>> + Send + 'static,
    ) -> Box<dyn FnOnce() -> io::Result<()>>;
    /// A listener on a free loopback port, and its address.
    fn bind() -> (<Self::R as Runtime>::Listener, SocketAddr);
    /// A connection to `addr`.
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<<Self::R as Runtime>::Stream>>;
}

fn loopback() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = l.local_addr().expect("its address");
    (l, addr)
}

/// What a server stops on: the suite's stop channel closing.
type Stopped = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Starts `serve` on runtime `T` with a fresh listener, stopped by [`Server::stop`].
fn start_server<T: Rt, S>(
    serve: impl FnOnce(T::R, <T::R as Runtime>::Listener, Stopped) -> S,
) -> Server
where
    S: Future<Output = io::Result<()>> + Send + 'static,
{
    let (listener, addr) = T::bind();
    let (tx, rx) = async_channel::bounded::<()>(1);
    let stopped: Stopped = Box::pin(async move {
        let _ = rx.recv().await;
    });
    let join = T::start(serve(T::runtime(), listener, stopped));
    Server {
        addr,
        stop: Box::new(move || {
            tx.close();
            join()
        }),
    }
}

impl<T: Rt> Driver for T {
    fn serve<F: HandlerFactory>(factory: Arc<F>, options: ServerOptions) -> Server {
        start_server::<T, _>(|rt, listener, stopped| {
            transport_async::serve(rt, listener, options, factory, stopped)
        })
    }

    fn run_client<C: CryptoRngCore + Send>(
        session: &mut ClientSession<C>,
        addr: SocketAddr,
        data: Vec<u8>,
        options: &ClientOptions,
    ) -> Result<Outcome, ClientError> {
        T::block_on(async {
            let stream = T::connect(addr).await?;
            transport_async::run_client::<T::R, _, _>(
                session,
                stream,
                &mut Cursor::new(data),
                options,
                |_| {},
            )
            .await
        })
    }
}

impl<T: Rt> AsyncDriver for T {
    fn serve_async<F: AsyncHandlerFactory>(factory: Arc<F>, options: ServerOptions) -> Server {
        start_server::<T, _>(|rt, listener, stopped| {
            transport_async::serve_async(rt, listener, options, factory, stopped)
        })
    }
}

/// The async driver on a tokio runtime of two worker threads.
pub struct OnTokio;

fn tokio_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

impl Rt for OnTokio {
    type R = Tokio;
    fn runtime() -> Tokio {
        Tokio
    }
    fn block_on<T>(f: impl Future<Output = T>) -> T {
        tokio_runtime().block_on(f)
    }
    fn start(
        f: impl Future<Output = io::Result<()>> + Send + 'static,
    ) -> Box<dyn FnOnce() -> io::Result<()>> {
        let task = tokio_runtime().spawn(f);
        Box::new(move || tokio_runtime().block_on(task).expect("the server task"))
    }
    fn bind() -> (tokio::net::TcpListener, SocketAddr) {
        let (l, addr) = loopback();
        l.set_nonblocking(true).expect("non-blocking");
        let _guard = tokio_runtime().enter();
        (
            tokio::net::TcpListener::from_std(l).expect("a tokio listener"),
            addr,
        )
    }
    async fn connect(addr: SocketAddr) -> io::Result<tokio::net::TcpStream> {
        tokio::net::TcpStream::connect(addr).await
    }
}

/// The async driver on smol's global executor.
pub struct OnSmol;

impl Rt for OnSmol {
    type R = Smol;
    fn runtime() -> Smol {
        Smol::new()
    }
    fn block_on<T>(f: impl Future<Output = T>) -> T {
        smol::block_on(f)
    }
    fn start(
        f: impl Future<Output = io::Result<()>> + Send + 'static,
    ) -> Box<dyn FnOnce() -> io::Result<()>> {
        let task = smol::spawn(f);
        Box::new(move || smol::block_on(task))
    }
    fn bind() -> (Async<TcpListener>, SocketAddr) {
        let (l, addr) = loopback();
        (Async::new(l).expect("an async-io listener"), addr)
    }
    async fn connect(addr: SocketAddr) -> io::Result<Async<TcpStream>> {
        Async::<TcpStream>::connect(addr).await
    }
}

/// The async driver on async-std, through the smol adapter (both run on async-io).
/// async-std is discontinued upstream (RUSTSEC-2025-0052): this is its only use,
/// to show that the adapter is not tied to smol's executor.
pub struct OnAsyncStd;

impl Rt for OnAsyncStd {
    type R = Smol;
    fn runtime() -> Smol {
        Smol::with_spawner(|task| {
            async_std::task::spawn(task);
        })
    }
    fn block_on<T>(f: impl Future<Output = T>) -> T {
        async_std::task::block_on(f)
    }
    fn start(
        f: impl Future<Output = io::Result<()>> + Send + 'static,
    ) -> Box<dyn FnOnce() -> io::Result<()>> {
        let task = async_std::task::spawn(f);
        Box::new(move || async_std::task::block_on(task))
    }
    fn bind() -> (Async<TcpListener>, SocketAddr) {
        OnSmol::bind()
    }
    async fn connect(addr: SocketAddr) -> io::Result<Async<TcpStream>> {
        Async::<TcpStream>::connect(addr).await
    }
}

/// The blocking transport: a thread per connection.
pub struct OnStd;

impl Driver for OnStd {
    fn serve<F: HandlerFactory>(factory: Arc<F>, options: ServerOptions) -> Server {
        let (listener, addr) = loopback();
        let shutdown = Shutdown::new();
        let server = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || transport_std::serve(listener, options, factory, shutdown))
        };
        Server {
            addr,
            stop: Box::new(move || {
                shutdown.trigger();
                server.join().expect("the server thread")
            }),
        }
    }

    fn run_client<C: CryptoRngCore + Send>(
        session: &mut ClientSession<C>,
        addr: SocketAddr,
        data: Vec<u8>,
        options: &ClientOptions,
    ) -> Result<Outcome, ClientError> {
        let mut stream = TcpStream::connect(addr)?;
        transport_std::run_client(
            session,
            &mut stream,
            &mut Cursor::new(data),
            options,
            |_| {},
        )
    }
}
