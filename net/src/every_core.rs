//! Serving one address on every core: one socket per core bound with
//! `SO_REUSEPORT`, so the kernel spreads connections (TCP) or flows (UDP)
//! over the cores and each core serves its own with no cross-core hand-off
//! ([`TcpListener::bind_on_every_core`](crate::TcpListener::bind_on_every_core),
//! [`UdpSocket::bind_on_every_core`](crate::UdpSocket::bind_on_every_core)).
//!
//! This is how a thread-per-core server uses its cores. A single listener
//! whose accept loop spawns a task per connection (tokio's usual shape)
//! serves every connection on the listener's core, because insane's tasks
//! stay where they are spawned; to keep one listener, hand each accepted
//! connection to another core with `insane::task::spawn_on` instead.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use insane_runtime::runtime::Runtime;
use insane_runtime::task::{spawn_local, spawn_on};

use crate::addr::{ToSocketAddrs, to_socket_addrs};

/// Binds one socket per core of the current runtime with `bind` and runs
/// `serve(socket)` on that core as a local task; returns once every core
/// is bound, with the address they serve on (the kernel's port when
/// `addr` has port 0: the calling core binds first and the others bind to
/// its port).
pub(crate) async fn serve_on_every_core<A, S, F, Fut>(
    addr: A,
    bind: fn(SocketAddr, bool) -> io::Result<S>,
    local_addr: fn(&S) -> io::Result<SocketAddr>,
    serve: F,
) -> io::Result<SocketAddr>
where
    A: ToSocketAddrs,
    S: 'static,
    F: Fn(S) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let cores = Runtime::cores().ok_or_else(|| {
        io::Error::other("bind_on_every_core must be called inside an insane runtime")
    })?;
    let addr = to_socket_addrs(addr)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind to"))?;
    let reuseport = cores > 1;
    let first = bind(addr, reuseport)
        .map_err(|e| io::Error::new(e.kind(), format!("bind {addr} on core 0: {e}")))?;
    let addr = local_addr(&first)?;
    let here = Runtime::current_core().unwrap_or(0);
    let mut bound = Vec::with_capacity(cores.saturating_sub(1));
    for core in (0..cores).filter(|&c| c != here) {
        let serve = serve.clone();
        bound.push(spawn_on(core, async move {
            let socket = bind(addr, true).map_err(|e| {
                io::Error::new(e.kind(), format!("bind {addr} on core {core}: {e}"))
            })?;
            // The socket registers with this core's driver and is served
            // here.
            spawn_local(serve(socket));
            Ok::<_, io::Error>(())
        }));
    }
    for handle in bound {
        handle
            .await
            .map_err(|e| io::Error::other(format!("binding on another core: {e}")))??;
    }
    spawn_local(serve(first));
    Ok(addr)
}
