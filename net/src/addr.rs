//! [`ToSocketAddrs`]: what `bind`, `connect` and `send_to` accept, and
//! [`lookup_host`], the asynchronous name resolution behind them.
//!
//! Numeric addresses (`"127.0.0.1:8080"`, `("::1", 80)`, a `SocketAddr`)
//! are converted at once. Host names are resolved by the system resolver
//! (`getaddrinfo`) on a helper thread, so a core never blocks on DNS.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Converts or resolves, without blocking the core, to one or more
/// [`SocketAddr`] values (tokio's `ToSocketAddrs`).
///
/// Implemented for `SocketAddr`, `SocketAddrV4`, `SocketAddrV6`,
/// `(IpAddr, u16)`, `(Ipv4Addr, u16)`, `(Ipv6Addr, u16)`,
/// `&[SocketAddr]`, `str`, `String`, `(&str, u16)`, `(String, u16)` and
/// references to any of them. Strings that are not numeric addresses are
/// resolved with the system resolver on a helper thread.
///
/// The trait is sealed: it can be used, not implemented. To resolve
/// directly, use [`lookup_host`].
///
/// ```
/// async fn connect_any<A: insane_net::ToSocketAddrs>(addr: A) -> std::io::Result<insane_net::TcpStream> {
///     insane_net::TcpStream::connect(addr).await
/// }
/// ```
pub trait ToSocketAddrs: sealed::ToSocketAddrsPriv {}

pub(crate) mod sealed {
    use super::Resolve;

    /// The private half of [`ToSocketAddrs`](super::ToSocketAddrs).
    pub trait ToSocketAddrsPriv {
        /// Converts, or says what to resolve.
        #[doc(hidden)]
        fn to_resolve(&self) -> Resolve;
    }
}

/// What an address argument turns into: addresses, or a name to resolve.
#[doc(hidden)]
#[derive(Debug)]
pub enum Resolve {
    /// Converted without a lookup.
    Done(Addrs),
    /// `"host:port"` to resolve.
    Host(String),
    /// A host name and a port to resolve.
    HostPort(String, u16),
}

/// An iterator over the addresses of one resolution.
#[derive(Clone, Debug)]
pub struct Addrs {
    inner: AddrsInner,
}

#[derive(Clone, Debug)]
enum AddrsInner {
    One(Option<SocketAddr>),
    Many(std::vec::IntoIter<SocketAddr>),
}

impl Addrs {
    fn one(addr: SocketAddr) -> Self {
        Self {
            inner: AddrsInner::One(Some(addr)),
        }
    }

    fn many(addrs: Vec<SocketAddr>) -> Self {
        Self {
            inner: AddrsInner::Many(addrs.into_iter()),
        }
    }
}

impl Iterator for Addrs {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        match &mut self.inner {
            AddrsInner::One(a) => a.take(),
            AddrsInner::Many(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            AddrsInner::One(a) => {
                let n = usize::from(a.is_some());
                (n, Some(n))
            }
            AddrsInner::Many(it) => it.size_hint(),
        }
    }
}

/// Resolves `addr` to socket addresses (numeric ones at once, names on a
/// helper thread).
pub(crate) async fn to_socket_addrs<A: ToSocketAddrs>(addr: A) -> io::Result<Addrs> {
    match addr.to_resolve() {
        Resolve::Done(addrs) => Ok(addrs),
        Resolve::Host(host) => {
            resolve_blocking(move || std::net::ToSocketAddrs::to_socket_addrs(&host)).await
        }
        Resolve::HostPort(host, port) => {
            resolve_blocking(move || {
                std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            })
            .await
        }
    }
}

/// Tries `op` on every address of `addr` in turn and returns the first
/// success, or the last error (like tokio's `bind` and `connect`).
pub(crate) async fn each_addr<A, T, F, Fut>(addr: A, mut op: F) -> io::Result<T>
where
    A: ToSocketAddrs,
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let mut last_err = None;
    for addr in to_socket_addrs(addr).await? {
        match op(addr).await {
            Ok(v) => return Ok(v),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(no_address))
}

/// The error when an address argument resolved to nothing.
pub(crate) fn no_address() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "could not resolve to any address",
    )
}

/// Performs a DNS resolution (tokio's `lookup_host`).
///
/// The returned iterator may not be exhaustive for every input: a name
/// that resolves to nothing gives an empty iterator or an error, as the
/// system resolver decides. Numeric addresses are converted without a
/// lookup; names are resolved with `getaddrinfo` on a helper thread, so
/// the calling core keeps running its other tasks. This function works
/// inside and outside an insane runtime.
///
/// ```
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let addrs: Vec<_> = insane_net::lookup_host("127.0.0.1:8080").await?.collect();
/// assert_eq!(addrs, vec!["127.0.0.1:8080".parse().unwrap()]);
///
/// for addr in insane_net::lookup_host("localhost:3000").await? {
///     assert_eq!(addr.port(), 3000);
/// }
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn lookup_host<T: ToSocketAddrs>(
    host: T,
) -> io::Result<impl Iterator<Item = SocketAddr>> {
    to_socket_addrs(host).await
}

// ===== the blocking resolver thread =====

struct Slot<T> {
    value: Option<T>,
    /// The sender is gone (sent, or its thread panicked).
    closed: bool,
    waker: Option<Waker>,
}

/// Runs the blocking resolution `f` on a new thread and waits for it
/// without blocking.
async fn resolve_blocking<F, I>(f: F) -> io::Result<Addrs>
where
    F: FnOnce() -> io::Result<I> + Send + 'static,
    I: Iterator<Item = SocketAddr>,
{
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        closed: false,
        waker: None,
    }));
    let sender = Sender(slot.clone());
    std::thread::Builder::new()
        .name("insane-resolver".into())
        .spawn(move || {
            let res = f().map(|it| Addrs::many(it.collect()));
            sender.send(res);
        })
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start a resolver thread: {e}")))?;
    Receiver(slot)
        .await
        .unwrap_or_else(|| Err(io::Error::other("the resolver thread panicked")))
}

struct Sender<T>(Arc<Mutex<Slot<T>>>);

impl<T> Sender<T> {
    fn send(self, value: T) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).value = Some(value);
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
            slot.closed = true;
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

struct Receiver<T>(Arc<Mutex<Slot<T>>>);

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = slot.value.take() {
            return Poll::Ready(Some(v));
        }
        if slot.closed {
            return Poll::Ready(None);
        }
        match &mut slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

// ===== impls =====

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}

impl<T: sealed::ToSocketAddrsPriv + ?Sized> sealed::ToSocketAddrsPriv for &T {
    fn to_resolve(&self) -> Resolve {
        (**self).to_resolve()
    }
}

impl ToSocketAddrs for SocketAddr {}

impl sealed::ToSocketAddrsPriv for SocketAddr {
    fn to_resolve(&self) -> Resolve {
        Resolve::Done(Addrs::one(*self))
    }
}

impl ToSocketAddrs for SocketAddrV4 {}

impl sealed::ToSocketAddrsPriv for SocketAddrV4 {
    fn to_resolve(&self) -> Resolve {
        Resolve::Done(Addrs::one(SocketAddr::V4(*self)))
    }
}

impl ToSocketAddrs for SocketAddrV6 {}

impl sealed::ToSocketAddrsPriv for SocketAddrV6 {
    fn to_resolve(&self) -> Resolve {
        Resolve::Done(Addrs::one(SocketAddr::V6(*self)))
    }
}

impl ToSocketAddrs for (IpAddr, u16) {}

impl sealed::ToSocketAddrsPriv for (IpAddr, u16) {
    fn to_resolve(&self) -> Resolve {
        Resolve::Done(Addrs::one(SocketAddr::new(self.0, self.1)))
    }
}

impl ToSocketAddrs for (Ipv4Addr, u16) {}

impl sealed::ToSocketAddrsPriv for (Ipv4Addr, u16) {
    fn to_resolve(&self) -> Resolve {
        Resolve::Done(Addrs::one(SocketAddr::new(IpAddr::V4(self.0), self.1)))
    }
}

impl ToSocketAddrs for (Ipv6Addr, u16) {}

impl sealed::ToSocketAddrsPriv for (Ipv6Addr, u16) {
    fn to_resolve(&self) -> Resolve {
        Resolve::Done(Addrs::one(SocketAddr::new(IpAddr::V6(self.0), self.1)))
    }
}

impl ToSocketAddrs for &[SocketAddr] {}

impl sealed::ToSocketAddrsPriv for &[SocketAddr] {
    fn to_resolve(&self) -> Resolve {
        Resolve::Done(Addrs::many(self.to_vec()))
    }
}

impl<const N: usize> ToSocketAddrs for [SocketAddr; N] {}

impl<const N: usize> sealed::ToSocketAddrsPriv for [SocketAddr; N] {
    fn to_resolve(&self) -> Resolve {
        Resolve::Done(Addrs::many(self.to_vec()))
    }
}

impl ToSocketAddrs for str {}

impl sealed::ToSocketAddrsPriv for str {
    fn to_resolve(&self) -> Resolve {
        match self.parse::<SocketAddr>() {
            Ok(addr) => Resolve::Done(Addrs::one(addr)),
            Err(_) => Resolve::Host(self.to_owned()),
        }
    }
}

impl ToSocketAddrs for String {}

impl sealed::ToSocketAddrsPriv for String {
    fn to_resolve(&self) -> Resolve {
        self.as_str().to_resolve()
    }
}

impl ToSocketAddrs for (&str, u16) {}

impl sealed::ToSocketAddrsPriv for (&str, u16) {
    fn to_resolve(&self) -> Resolve {
        let (host, port) = *self;
        match host.parse::<IpAddr>() {
            Ok(ip) => Resolve::Done(Addrs::one(SocketAddr::new(ip, port))),
            Err(_) => Resolve::HostPort(host.to_owned(), port),
        }
    }
}

impl ToSocketAddrs for (String, u16) {}

impl sealed::ToSocketAddrsPriv for (String, u16) {
    fn to_resolve(&self) -> Resolve {
        (self.0.as_str(), self.1).to_resolve()
    }
}

#[cfg(test)]
mod tests {
    use super::sealed::ToSocketAddrsPriv;
    use super::*;

    fn now<A: ToSocketAddrs>(a: A) -> Vec<SocketAddr> {
        match a.to_resolve() {
            Resolve::Done(addrs) => addrs.collect(),
            other => panic!("expected no lookup, got {other:?}"),
        }
    }

    #[test]
    fn numeric_addresses_need_no_lookup() {
        let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(now("127.0.0.1:80"), vec![v4]);
        assert_eq!(now(String::from("[::1]:80")), vec![v6]);
        assert_eq!(now(("127.0.0.1", 80)), vec![v4]);
        assert_eq!(now(("::1".to_string(), 80)), vec![v6]);
        assert_eq!(now(v4), vec![v4]);
        let by_ref: &SocketAddr = &v4;
        assert_eq!(now(by_ref), vec![v4]);
        assert_eq!(now((Ipv4Addr::LOCALHOST, 80)), vec![v4]);
        assert_eq!(now((Ipv6Addr::LOCALHOST, 80)), vec![v6]);
        assert_eq!(now(&[v4, v6][..]), vec![v4, v6]);
        assert_eq!(now([v4, v6]), vec![v4, v6]);
    }

    #[test]
    fn names_are_resolved_off_thread() {
        assert!(matches!("localhost:80".to_resolve(), Resolve::Host(_)));
        assert!(matches!(
            ("localhost", 80).to_resolve(),
            Resolve::HostPort(..)
        ));
        let addrs: Vec<_> = futures::executor::block_on(lookup_host("localhost:80"))
            .unwrap()
            .collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.port() == 80 && a.ip().is_loopback()));
        let err = futures::executor::block_on(lookup_host("no port here"))
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
