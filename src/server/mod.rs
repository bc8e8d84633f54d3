//! `tidelog serve`: HTTP/1.1 on the shard executors. Every shard listens on the same port
//! (SO_REUSEPORT), parses requests on its own core and sends events to their owning shards over the
//! store's channels; there is no second runtime.

mod compat;
#[cfg(feature = "mcp")]
pub mod mcp;
mod metrics;
#[cfg(feature = "otlp")]
pub mod otlp;
mod respond;
mod routes;
#[cfg(feature = "sql")]
mod sql;
mod stream;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::future::Future;
use std::task::Waker;

use futures_channel::oneshot;
use glommio::net::TcpListener;
use hyper::server::conn::http1;
use hyper::service::service_fn;

pub use routes::{ApiKeys, HttpOptions};

/// The `/mcp` endpoint, shared by the shards of one server (nothing without the `mcp` feature).
#[cfg(feature = "mcp")]
pub type McpEndpoint = Option<std::sync::Arc<mcp::McpHttp>>;
#[cfg(not(feature = "mcp"))]
pub type McpEndpoint = Option<std::convert::Infallible>;

use crate::{Error, Store};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub limits: HttpOptions,
}

/// A running server. `shutdown` stops it gracefully; dropping it without doing so leaves it running until
/// the store closes.
pub struct Server {
    local_addr: SocketAddr,
    stops: Vec<flume::Sender<oneshot::Sender<()>>>,
}

impl Server {
    /// Starts listening on every shard. With port 0 the first shard picks the port and the others join it.
    pub fn start(store: &Store, config: ServerConfig) -> Result<Server, Error> {
        let mut local_addr = config.listen;
        let mut stops = Vec::new();
        #[cfg(feature = "mcp")]
        let mcp: McpEndpoint = Some(std::sync::Arc::new(mcp::McpHttp::new(store.clone(), &config.limits)));
        #[cfg(not(feature = "mcp"))]
        let mcp: McpEndpoint = None;
        for shard in 0..store.shard_count() {
            let (bound_tx, bound_rx) = oneshot::channel::<Result<SocketAddr, std::io::Error>>();
            let (stop_tx, stop_rx) = flume::bounded(1);
            let (task_store, limits, mcp) = (store.clone(), config.limits.clone(), mcp.clone());
            let addr = local_addr;
            futures_lite::future::block_on(store.spawn_on(shard, move |_| {
                serve_shard(task_store, addr, limits, mcp, bound_tx, stop_rx)
            }))?;
            local_addr = futures_lite::future::block_on(bound_rx)
                .map_err(|_| Error::Closed)?
                .map_err(|e| Error::io(format!("listen on {addr}"), e))?;
            stops.push(stop_tx);
        }
        Ok(Server { local_addr, stops })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish and closes idle keep-alive connections. Returns
    /// when every shard has no connection left; the store is then ready to close.
    pub fn shutdown(self) {
        let mut drained = Vec::new();
        for stop in &self.stops {
            let (tx, rx) = oneshot::channel();
            if stop.send(tx).is_ok() {
                drained.push(rx);
            }
        }
        for rx in drained {
            let _ = futures_lite::future::block_on(rx);
        }
    }
}

/// A stop flag local to one shard that connection futures can wait on.
#[derive(Default)]
pub(crate) struct Stop {
    stopped: Cell<bool>,
    /// The waker of each open connection, by connection number.
    wakers: RefCell<HashMap<u64, Waker>>,
    next_connection: Cell<u64>,
}

impl Stop {
    fn trigger(&self) {
        self.stopped.set(true);
        for (_, waker) in self.wakers.borrow_mut().drain() {
            waker.wake();
        }
    }

    fn open_connections(&self) -> usize {
        self.wakers.borrow().len()
    }
}

async fn serve_shard(
    store: Store,
    addr: SocketAddr,
    limits: HttpOptions,
    mcp: McpEndpoint,
    bound: oneshot::Sender<Result<SocketAddr, std::io::Error>>,
    stop_rx: flume::Receiver<oneshot::Sender<()>>,
) {
    let listener = match TcpListener::bind(addr) {
        Ok(listener) => listener,
        Err(e) => {
            let _ = bound.send(Err(e.into()));
            return;
        }
    };
    let _ = bound.send(listener.local_addr().map_err(Into::into));
    let stop = Rc::new(Stop::default());
    let limits = Rc::new(limits);
    let drained = loop {
        let next = futures_lite::future::or(async { Ok(listener.accept().await) }, async { Err(stop_rx.recv_async().await) });
        match next.await {
            Ok(Ok(stream)) => {
                let (store, limits, mcp, stop) = (store.clone(), limits.clone(), mcp.clone(), stop.clone());
                glommio::spawn_local(serve_connection(stream, store, limits, mcp, stop)).detach();
            }
            // Accept errors (out of file descriptors, a reset before accept) are not fatal.
            Ok(Err(_)) => glommio::timer::sleep(std::time::Duration::from_millis(10)).await,
            Err(Ok(drained)) => break Some(drained),
            Err(Err(_)) => break None, // the Server handle was dropped: keep serving until the store closes
        }
    };
    drop(listener);
    stop.trigger();
    while stop.open_connections() > 0 {
        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
    }
    if let Some(drained) = drained {
        let _ = drained.send(());
    }
}

async fn serve_connection(
    stream: glommio::net::TcpStream,
    store: Store,
    limits: Rc<HttpOptions>,
    mcp: McpEndpoint,
    stop: Rc<Stop>,
) {
    let id = stop.next_connection.get();
    stop.next_connection.set(id + 1);
    stop.wakers.borrow_mut().insert(id, Waker::noop().clone());
    let _ = stream.set_nodelay(true);
    let handler_stop = stop.clone();
    let service = service_fn(move |request| {
        let (store, limits, mcp, stop) = (store.clone(), limits.clone(), mcp.clone(), handler_stop.clone());
        async move { Ok::<_, std::convert::Infallible>(routes::handle(&store, &limits, &mcp, &stop, request).await) }
    });
    // hyper's header read timeout needs a Send timer, which glommio's are not; without one hyper skips it.
    let conn = http1::Builder::new().serve_connection(compat::Stream(stream), service);
    futures_lite::pin!(conn);
    let mut shutting_down = false;
    let _ = std::future::poll_fn(|cx| {
        if stop.stopped.get() && !shutting_down {
            shutting_down = true;
            conn.as_mut().graceful_shutdown();
        }
        let poll = conn.as_mut().poll(cx);
        if poll.is_pending() && !shutting_down {
            stop.wakers.borrow_mut().insert(id, cx.waker().clone());
        }
        poll
    })
    .await;
    stop.wakers.borrow_mut().remove(&id);
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("local_addr", &self.local_addr).finish()
    }
}
