//! Owned-buffer I/O (`read_owned`, `write_all_owned`, `send_to_owned`,
//! `recv_from_owned`, `recv_stream`, ...) on both kernel drivers:
//! completion-based on io_uring, readiness-based on epoll, one API.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use common::on_each_driver;
use insane_net::owned::{IoBuf, IoBufMut, PooledBuf, RecvPool};
use insane_net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use insane_runtime::driver::{self, DriverKind};
use insane_runtime::task::{JoinSet, spawn, yield_now};
use insane_runtime::time::{Instant, sleep, timeout};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---- helpers ----------------------------------------------------------------

async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (c, s) = futures::join!(TcpStream::connect(addr), l.accept());
    (c.unwrap(), s.unwrap().0)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn ops_in_flight() -> usize {
    insane_uring::Handle::current()
        .expect("io_uring core")
        .ops_in_flight()
}

/// Yields and sleeps until `done()` or `within` passed; returns `done()`.
async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() >= deadline {
            return done();
        }
        yield_now().await;
        sleep(Duration::from_millis(1)).await;
    }
    true
}

/// Reads exactly `len` bytes with `read_owned` (into a reused buffer).
async fn read_exact_owned(s: &TcpStream, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut buf = Vec::with_capacity(64 * 1024);
    while out.len() < len {
        let (res, b) = s.read_owned(buf).await;
        let n = res.unwrap();
        assert!(n > 0, "unexpected end of stream after {} bytes", out.len());
        out.extend_from_slice(&b);
        buf = b;
        buf.clear();
    }
    assert_eq!(out.len(), len, "read more than expected");
    out
}

/// A receive buffer that counts its drops.
struct Counted {
    data: Vec<u8>,
    drops: Arc<AtomicUsize>,
}

impl Counted {
    fn new(cap: usize, drops: &Arc<AtomicUsize>) -> Self {
        Self {
            data: Vec::with_capacity(cap),
            drops: drops.clone(),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: delegates to the Vec's heap storage, which does not move when
// `Counted` moves.
unsafe impl IoBuf for Counted {
    fn stable_ptr(&self) -> *const u8 {
        self.data.stable_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.bytes_init()
    }
    fn bytes_total(&self) -> usize {
        self.data.bytes_total()
    }
}

// SAFETY: as above.
unsafe impl IoBufMut for Counted {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.stable_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.data.set_init(pos) }
    }
}

/// Polls every future once.
async fn poll_each_once<F: Future + ?Sized>(futs: &mut [Pin<Box<F>>]) {
    std::future::poll_fn(|cx| {
        for f in futs.iter_mut() {
            assert!(
                f.as_mut().poll(cx).is_pending(),
                "a read completed with no data sent"
            );
        }
        Poll::Ready(())
    })
    .await;
}

// ---- TCP ----------------------------------------------------------------------

#[test]
fn tcp_echo_one_mebibyte_owned() {
    on_each_driver(1, |_| async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut buf = Vec::with_capacity(64 * 1024);
            let mut echoed = 0;
            loop {
                let (res, b) = s.read_owned(buf).await;
                let n = res.unwrap();
                if n == 0 {
                    return echoed;
                }
                assert_eq!(b.len(), n);
                let (res, mut b) = s.write_all_owned(b).await;
                res.unwrap();
                echoed += n;
                b.clear();
                buf = b;
            }
        });
        let client = TcpStream::connect(addr).await.unwrap();
        let (rd, wr) = client.into_split();
        let data = pattern(1 << 20);
        let write = async {
            let (res, sent) = wr.write_all_owned(data.clone()).await;
            res.unwrap();
            assert_eq!(sent.len(), 1 << 20, "the buffer comes back whole");
            drop(wr); // shuts the write side down
        };
        let read = async {
            let mut out = Vec::new();
            let mut buf = Vec::with_capacity(32 * 1024);
            loop {
                let (res, b) = rd.read_owned(buf).await;
                if res.unwrap() == 0 {
                    return out;
                }
                out.extend_from_slice(&b);
                buf = b;
                buf.clear();
            }
        };
        let ((), out) = futures::join!(write, read);
        assert!(out == data, "echoed bytes differ ({} bytes)", out.len());
        assert_eq!(server.await.unwrap(), 1 << 20);
    });
}

#[test]
fn buffer_types_vec_box_bytesmut() {
    on_each_driver(1, |_| async {
        let (a, b) = pair().await;

        // Box<[u8]> out, Box<[u8]> in (no spare capacity: filled from its start).
        let boxed: Box<[u8]> = b"boxed bytes".to_vec().into_boxed_slice();
        let (res, boxed) = a.write_all_owned(boxed).await;
        res.unwrap();
        assert_eq!(&boxed[..], b"boxed bytes");
        let into: Box<[u8]> = vec![0u8; 11].into_boxed_slice();
        let (res, into) = b.read_owned(into).await;
        let n = res.unwrap();
        let mut got = into[..n].to_vec();
        while got.len() < 11 {
            let (res, more) = b
                .read_owned(vec![0u8; 11 - got.len()].into_boxed_slice())
                .await;
            let n = res.unwrap();
            got.extend_from_slice(&more[..n]);
        }
        assert_eq!(&got, b"boxed bytes");

        // BytesMut out and in: a receive grows `len` by the bytes read.
        let out = BytesMut::from(&b"bytes-mut payload"[..]);
        let (res, _) = a.write_all_owned(out).await;
        res.unwrap();
        let mut acc = BytesMut::with_capacity(64);
        while acc.len() < 17 {
            let (res, buf) = b.read_owned(acc).await;
            assert!(res.unwrap() > 0);
            acc = buf;
        }
        assert_eq!(&acc[..], b"bytes-mut payload");

        // Vec with content: the receive appends into the spare capacity.
        let (res, _) = a.write_all_owned(b"tail".to_vec()).await;
        res.unwrap();
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(b"head:");
        while v.len() < 9 {
            let (res, buf) = b.read_owned(v).await;
            assert!(res.unwrap() > 0);
            v = buf;
        }
        assert_eq!(&v, b"head:tail");

        // Bytes, &'static [u8] and a Slice window as send buffers.
        let (res, _) = a
            .write_all_owned(bytes::Bytes::from_static(b"[bytes]"))
            .await;
        res.unwrap();
        let (res, _) = a.write_all_owned(&b"[static]"[..]).await;
        res.unwrap();
        let (res, slice) = a.write_all_owned(b"xx[slice]xx".to_vec().slice(2..9)).await;
        res.unwrap();
        assert_eq!(slice.into_inner().len(), 11);
        let want = b"[bytes][static][slice]";
        let got = read_exact_owned(&b, want.len()).await;
        assert_eq!(&got[..], want);

        // A zero-capacity buffer reads nothing (and is not end of stream).
        let (res, empty) = b.read_owned(Vec::new()).await;
        assert_eq!(res.unwrap(), 0);
        assert!(empty.is_empty());
    });
}

/// Writes above the SEND_ZC threshold arrive intact. Over loopback the
/// sockets deliberately use plain SEND (the kernel copies local deliveries
/// anyway); the SEND_ZC op itself is covered by drivers/uring/tests/send_zc.rs.
#[test]
fn large_writes_above_the_zero_copy_threshold_arrive_intact() {
    on_each_driver(1, |name| async move {
        if name == "uring" {
            let h = insane_uring::Handle::current().unwrap();
            assert!(
                h.features().send_zc,
                "this kernel lacks SEND_ZC: the zero-copy path is not exercised"
            );
            assert!(h.config().send_zc_threshold <= 64 * 1024);
        }
        let (a, mut b) = pair().await;
        for len in [64 * 1024, 1 << 20] {
            let data = pattern(len);
            let reader = async {
                let mut out = vec![0u8; len];
                b.read_exact(&mut out).await.unwrap();
                out
            };
            let writer = async {
                let (res, back) = a.write_all_owned(data.clone()).await;
                res.unwrap();
                back
            };
            let (out, back) = futures::join!(reader, writer);
            assert!(out == data, "{len}-byte zero-copy write arrived corrupted");
            assert!(back == data, "the buffer came back changed");
        }
    });
}

/// `write_owned` is one send that returns once the kernel queued part of
/// the buffer, on both drivers, even when the peer does not read. (A
/// zero-copy send would only give the buffer back after the peer's stack
/// acknowledged the data, so it is kept for `write_all_owned`.)
#[test]
fn write_owned_returns_while_the_peer_does_not_read() {
    on_each_driver(1, |_| async {
        let (a, mut b) = pair().await;
        socket2::SockRef::from(&b)
            .set_recv_buffer_size(16 * 1024)
            .unwrap();
        let data = pattern(256 * 1024);
        let (res, back) = timeout(Duration::from_secs(5), a.write_owned(data))
            .await
            .expect("write_owned waited for the peer to read");
        let n = res.unwrap();
        assert!(n > 0 && n <= back.len());
        let mut out = vec![0u8; n];
        b.read_exact(&mut out).await.unwrap();
        assert!(out[..] == back[..n]);
    });
}

#[test]
fn mixing_owned_and_async_read_on_one_socket() {
    on_each_driver(1, |_| async {
        let (mut a, mut b) = pair().await;
        for round in 0..50u32 {
            let msg = format!("round {round:04}");
            if round % 2 == 0 {
                a.write_all(msg.as_bytes()).await.unwrap();
            } else {
                let (res, _) = a.write_all_owned(msg.clone().into_bytes()).await;
                res.unwrap();
            }
            let mut got = Vec::new();
            while got.len() < msg.len() {
                if round % 3 == 0 {
                    let mut tmp = vec![0u8; msg.len() - got.len()];
                    let n = b.read(&mut tmp).await.unwrap();
                    got.extend_from_slice(&tmp[..n]);
                } else {
                    let (res, buf) = b
                        .read_owned(Vec::with_capacity(msg.len() - got.len()))
                        .await;
                    assert!(res.unwrap() > 0);
                    got.extend_from_slice(&buf);
                }
            }
            assert_eq!(got, msg.as_bytes());
        }
    });
}

#[test]
fn unix_stream_owned() {
    on_each_driver(1, |_| async {
        let (a, b) = UnixStream::pair().unwrap();
        // Larger than the SEND_ZC threshold: Unix sockets must use plain SEND.
        let data = pattern(300 * 1024);
        let reader = async {
            let mut out = Vec::new();
            let mut buf = Vec::with_capacity(16 * 1024);
            while out.len() < data.len() {
                let (res, b2) = b.read_owned(buf).await;
                assert!(res.unwrap() > 0);
                out.extend_from_slice(&b2);
                buf = b2;
                buf.clear();
            }
            out
        };
        let writer = async {
            let (res, _) = a.write_all_owned(data.clone()).await;
            res.unwrap();
        };
        let (out, ()) = futures::join!(reader, writer);
        assert!(out == data);
        let (res, _) = a.write_owned(b"x".to_vec()).await;
        assert_eq!(res.unwrap(), 1);
        let mut rx = b.recv_stream().unwrap();
        let buf = rx.next().await.unwrap().unwrap();
        assert_eq!(&buf[..], b"x");
    });
}

// ---- UDP ----------------------------------------------------------------------

#[test]
fn udp_send_to_and_recv_from_owned() {
    on_each_driver(1, |_| async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        for i in 0..100usize {
            let msg = pattern(1 + i * 13);
            let (res, back) = a.send_to_owned(msg, b_addr).await;
            assert_eq!(res.unwrap(), back.len());
            let (res, got) = b.recv_from_owned(Vec::with_capacity(2048)).await;
            let (n, from) = res.unwrap();
            assert_eq!(from, a_addr);
            assert_eq!(n, got.len());
            assert!(got == back, "datagram {i} differs");
        }
        // A datagram longer than the buffer is truncated to it.
        let (res, _) = a.send_to_owned(vec![9u8; 100], b_addr).await;
        res.unwrap();
        let (res, got) = b.recv_from_owned(Vec::with_capacity(10)).await;
        assert_eq!(res.unwrap().0, got.len());
        assert!(got.len() <= 100 && got.iter().all(|&x| x == 9));

        // Connected: send_owned / recv_owned, BytesMut and Box<[u8]>.
        a.connect(b_addr).await.unwrap();
        b.connect(a_addr).await.unwrap();
        let (res, _) = a.send_owned(BytesMut::from(&b"connected"[..])).await;
        assert_eq!(res.unwrap(), 9);
        let (res, got) = b.recv_owned(vec![0u8; 64].into_boxed_slice()).await;
        let n = res.unwrap();
        assert_eq!(&got[..n], b"connected");
        // An empty datagram is a message too.
        let (res, _) = a.send_owned(Vec::new()).await;
        assert_eq!(res.unwrap(), 0);
        let (res, got) = b.recv_owned(Vec::with_capacity(8)).await;
        assert_eq!(res.unwrap(), 0);
        assert!(got.is_empty());
        let (res, _) = a.send_owned(b"after empty".to_vec()).await;
        res.unwrap();
        let (res, got) = b.recv_owned(Vec::with_capacity(64)).await;
        assert_eq!(res.unwrap(), 11);
        assert_eq!(&got, b"after empty");
        // A large datagram (over the SEND_ZC threshold on io_uring).
        let big = pattern(60_000);
        let (res, _) = b.send_owned(big.clone()).await;
        assert_eq!(res.unwrap(), 60_000);
        let (res, got) = a.recv_owned(Vec::with_capacity(65_536)).await;
        assert_eq!(res.unwrap(), 60_000);
        assert!(got == big);
    });
}

#[test]
fn udp_recv_stream() {
    on_each_driver(1, |_| async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b_addr = b.local_addr().unwrap();
        let mut rx = b.recv_stream().unwrap();
        for i in 0..20u8 {
            let (res, _) = a.send_to_owned(vec![i; usize::from(i) + 1], b_addr).await;
            res.unwrap();
            let d = rx.next().await.unwrap().unwrap();
            assert_eq!(d.len(), usize::from(i) + 1);
            assert!(d.iter().all(|&x| x == i));
        }
    });
}

// ---- provided buffers -----------------------------------------------------------

#[test]
fn recv_stream_echo_with_pooled_buffers() {
    on_each_driver(1, |name| async move {
        let (a, b) = pair().await;
        let expect_ring = name == "uring";
        // Server side: echo each pooled buffer as is (no copy on io_uring).
        let echo = async {
            let mut rx = b.recv_stream().unwrap();
            assert_eq!(rx.is_provided_ring(), expect_ring);
            let mut n = 0;
            while let Some(buf) = rx.next().await {
                let buf: PooledBuf = buf.unwrap();
                assert_eq!(buf.is_provided_buffer(), expect_ring);
                n += buf.len();
                let (res, _) = b.write_all_owned(buf).await;
                res.unwrap();
            }
            n
        };
        let data = pattern(200_000);
        let client = async {
            // Write and read at once: a zero-copy write completes only once
            // the echo side has taken the data in.
            let write = async {
                let (res, _) = a.write_all_owned(data.clone()).await;
                res.unwrap();
            };
            let ((), out) = futures::join!(write, read_exact_owned(&a, data.len()));
            a.shutdown_std_for_test();
            out
        };
        let (n, out) = futures::join!(echo, client);
        assert_eq!(n, data.len());
        assert!(out == data);
    });
}

trait ShutdownForTest {
    fn shutdown_std_for_test(&self);
}

impl ShutdownForTest for TcpStream {
    fn shutdown_std_for_test(&self) {
        socket2::SockRef::from(self)
            .shutdown(std::net::Shutdown::Write)
            .unwrap();
    }
}

#[test]
fn tcp_pool_exhaustion_stalls_without_loss() {
    on_each_driver(1, |name| async move {
        let (a, b) = pair().await;
        // Small socket buffers, so that the kernel cannot absorb the whole
        // transfer and the stall reaches the sender.
        socket2::SockRef::from(&a)
            .set_send_buffer_size(16 * 1024)
            .unwrap();
        socket2::SockRef::from(&b)
            .set_recv_buffer_size(16 * 1024)
            .unwrap();
        let pool = RecvPool::new(8, 1024).unwrap();
        assert_eq!(pool.is_provided_ring(), name == "uring");
        assert_eq!(pool.available(), 8);
        let data = pattern(2 << 20);
        let sent = data.clone();
        let sender = spawn(async move {
            let (res, _) = a.write_all_owned(sent).await;
            res.unwrap();
            a
        });
        let mut rx = b.recv_stream_with(&pool).unwrap();
        let mut held = Vec::new();
        while held.len() < 8 {
            held.push(rx.next().await.unwrap().unwrap());
        }
        assert_eq!(pool.available(), 0, "the application holds every buffer");
        // The pool is empty: receiving stalls (and the sender is blocked
        // by TCP flow control, not dropping anything).
        let stalled = timeout(Duration::from_millis(200), rx.next()).await;
        assert!(stalled.is_err(), "received without a free buffer");
        assert!(
            rx.enobufs_count() >= 1,
            "the stall was not counted ({name})"
        );
        assert!(!sender.is_finished(), "the sender was not held back");
        // Release the buffers: everything arrives, in order.
        let mut out = Vec::new();
        for buf in held.drain(..) {
            out.extend_from_slice(&buf);
        }
        while out.len() < data.len() {
            let buf = rx.next().await.unwrap().unwrap();
            assert!(buf.len() <= 1024);
            out.extend_from_slice(&buf);
        }
        assert!(out == data, "bytes lost or reordered across the stall");
        let a = sender.await.unwrap();
        drop(a);
        assert!(rx.next().await.is_none(), "end of stream after the data");
        drop(rx);
        assert!(
            wait_until(Duration::from_secs(5), || pool.available() == 8).await,
            "buffers did not all return to the pool"
        );
    });
}

#[test]
fn udp_pool_exhaustion_keeps_datagrams_in_the_kernel() {
    on_each_driver(1, |_| async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b_addr = b.local_addr().unwrap();
        let pool = RecvPool::new(8, 256).unwrap();
        let mut rx = b.recv_stream_with(&pool).unwrap();
        for i in 0..32u32 {
            let (res, _) = a.send_to_owned(i.to_be_bytes().to_vec(), b_addr).await;
            res.unwrap();
        }
        let mut held = Vec::new();
        while held.len() < 8 {
            held.push(rx.next().await.unwrap().unwrap());
        }
        assert!(
            timeout(Duration::from_millis(100), rx.next())
                .await
                .is_err()
        );
        assert!(rx.enobufs_count() >= 1);
        let mut seen: Vec<u32> = held
            .drain(..)
            .map(|d| u32::from_be_bytes(d[..4].try_into().unwrap()))
            .collect();
        while seen.len() < 32 {
            let d = rx.next().await.unwrap().unwrap();
            seen.push(u32::from_be_bytes(d[..4].try_into().unwrap()));
        }
        assert_eq!(seen, (0..32).collect::<Vec<_>>());
    });
}

// ---- cancellation ---------------------------------------------------------------

/// 100 connections × 100 `read_owned` futures, each polled once (so on
/// io_uring 10,000 RECV requests are in flight), then all dropped.
#[test]
fn cancel_10k_in_flight_reads() {
    on_each_driver(1, |name| async move {
        let baseline = if name == "uring" { ops_in_flight() } else { 0 };
        let mut pairs = Vec::new();
        for _ in 0..100 {
            pairs.push(pair().await);
        }
        let drops = Arc::new(AtomicUsize::new(0));
        {
            let mut futs = Vec::new();
            for (_, server) in &pairs {
                for _ in 0..100 {
                    futs.push(Box::pin(server.read_owned(Counted::new(64, &drops))));
                }
            }
            poll_each_once(&mut futs).await;
            if name == "uring" {
                assert!(
                    ops_in_flight() >= baseline + 10_000,
                    "expected 10k requests in flight, got {}",
                    ops_in_flight() - baseline
                );
            }
            // Let the kernel see them all before they are cancelled.
            yield_now().await;
        }
        if name == "uring" {
            assert!(
                wait_until(Duration::from_secs(10), || ops_in_flight() == baseline).await,
                "{} requests still in flight 10 s after the cancel",
                ops_in_flight() - baseline
            );
        }
        assert!(
            wait_until(Duration::from_secs(10), || drops.load(Ordering::SeqCst)
                == 10_000)
            .await,
            "{} of 10000 buffers dropped",
            drops.load(Ordering::SeqCst)
        );
        // No buffer was dropped twice, and every socket still works.
        for (i, (client, server)) in pairs.iter().enumerate() {
            let msg = format!("ping {i}").into_bytes();
            let (res, _) = client.write_all_owned(msg.clone()).await;
            res.unwrap();
            assert_eq!(read_exact_owned(server, msg.len()).await, msg);
            let (res, _) = server.write_all_owned(msg.clone()).await;
            res.unwrap();
            assert_eq!(read_exact_owned(client, msg.len()).await, msg);
        }
        assert_eq!(drops.load(Ordering::SeqCst), 10_000);
    });
}

/// 10,000 spawned tasks blocked in `read_owned` (spawn needs `Send`
/// futures), aborted together.
#[test]
fn abort_10k_tasks_blocked_in_read_owned() {
    on_each_driver(1, |name| async move {
        let baseline = if name == "uring" { ops_in_flight() } else { 0 };
        let mut conns = Vec::new();
        for _ in 0..20 {
            let (c, s) = pair().await;
            conns.push((c, Arc::new(s)));
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let mut set = JoinSet::new();
        for i in 0..10_000 {
            let s = conns[i % conns.len()].1.clone();
            let drops = drops.clone();
            let started = started.clone();
            set.spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                let (res, _buf) = s.read_owned(Counted::new(32, &drops)).await;
                res.map(|_| ())
            });
        }
        assert!(
            wait_until(Duration::from_secs(10), || started.load(Ordering::SeqCst)
                == 10_000)
            .await
        );
        yield_now().await;
        if name == "uring" {
            assert!(ops_in_flight() >= baseline + 10_000);
        }
        set.abort_all();
        let mut cancelled = 0;
        while let Some(r) = set.join_next().await {
            assert!(r.unwrap_err().is_cancelled());
            cancelled += 1;
        }
        assert_eq!(cancelled, 10_000);
        if name == "uring" {
            assert!(
                wait_until(Duration::from_secs(10), || ops_in_flight() == baseline).await,
                "{} requests still in flight",
                ops_in_flight() - baseline
            );
        }
        assert!(
            wait_until(Duration::from_secs(10), || drops.load(Ordering::SeqCst)
                == 10_000)
            .await,
            "{} of 10000 buffers dropped",
            drops.load(Ordering::SeqCst)
        );
        for (c, s) in &conns {
            let (res, _) = c.write_all_owned(b"still alive".to_vec()).await;
            res.unwrap();
            assert_eq!(read_exact_owned(s, 11).await, b"still alive");
        }
        assert_eq!(drops.load(Ordering::SeqCst), 10_000);
    });
}

/// A cancelled request keeps the socket's fd open until the kernel is done
/// with it, even when the socket is dropped at once: the fd number is not
/// reused by the next socket while the request may still run.
#[test]
fn dropped_socket_keeps_fd_until_cancel_completes() {
    on_each_driver(1, |name| async move {
        let (client, server) = pair().await;
        let old_fd = server.as_raw_fd();
        {
            let mut fut = Box::pin(server.read_owned(Vec::with_capacity(16)));
            assert!(futures::poll!(fut.as_mut()).is_pending());
        }
        drop(server);
        // No yield in between: the cancellation has not run yet.
        let (c2, s2) = pair().await;
        if name == "uring" {
            assert_ne!(c2.as_raw_fd(), old_fd);
            assert_ne!(s2.as_raw_fd(), old_fd);
        }
        let (res, _) = c2.write_all_owned(b"fresh".to_vec()).await;
        res.unwrap();
        assert_eq!(read_exact_owned(&s2, 5).await, b"fresh");
        // The old connection is closed for its peer once the request let go.
        let (res, _) = client.read_owned(Vec::with_capacity(8)).await;
        assert_eq!(res.unwrap(), 0);
    });
}

#[test]
fn into_std_right_after_a_cancel() {
    on_each_driver(1, |_| async {
        let (client, server) = pair().await;
        {
            let mut fut = Box::pin(server.read_owned(Vec::with_capacity(16)));
            assert!(futures::poll!(fut.as_mut()).is_pending());
        }
        let std = server.into_std().unwrap();
        let server = TcpStream::from_std(std).unwrap();
        let (res, _) = client.write_all_owned(b"after".to_vec()).await;
        res.unwrap();
        assert_eq!(read_exact_owned(&server, 5).await, b"after");
    });
}

// ---- drivers and threads --------------------------------------------------------

/// With io_uring off (a runtime on the epoll driver), the same calls work
/// through readiness, and pools fall back to heap buffers.
#[test]
fn epoll_fallback_serves_the_owned_api() {
    let rt = insane_runtime::runtime::Runtime::builder()
        .cores(1)
        .on_core_start(Arc::new(|_| insane_epoll::install_on_current_core()))
        .build()
        .unwrap();
    rt.block_on(async {
        assert!(matches!(driver::current(), Some((DriverKind::Epoll, _))));
        assert!(insane_uring::Handle::current().is_err());
        let pool = RecvPool::for_current_core().unwrap();
        assert!(!pool.is_provided_ring());
        let (a, b) = pair().await;
        let (res, _) = a.write_all_owned(pattern(100_000)).await;
        res.unwrap();
        let mut rx = b.recv_stream_with(&pool).unwrap();
        let mut got = Vec::new();
        while got.len() < 100_000 {
            let buf = rx.next().await.unwrap().unwrap();
            assert!(!buf.is_provided_buffer());
            got.extend_from_slice(&buf);
        }
        assert!(got == pattern(100_000));
        let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to: SocketAddr = u.local_addr().unwrap();
        let (res, _) = u.send_to_owned(b"self".to_vec(), to).await;
        res.unwrap();
        let (res, buf) = u.recv_from_owned(Vec::with_capacity(8)).await;
        assert_eq!(res.unwrap(), (4, to));
        assert_eq!(&buf, b"self");
    });
}

/// A runtime that stops while tasks wait in owned-buffer operations
/// shuts down cleanly (the requests are cancelled or abandoned with the
/// driver, nothing is freed early).
#[test]
fn runtime_shutdown_with_reads_in_flight() {
    let drops = Arc::new(AtomicUsize::new(0));
    for (_name, rt) in common::runtimes() {
        let d = drops.clone();
        let keep = rt.block_on(async move {
            let (c, s) = pair().await;
            let s = Arc::new(s);
            for _ in 0..10 {
                let s = s.clone();
                let d = d.clone();
                spawn(async move {
                    let _ = s.read_owned(Counted::new(16, &d)).await;
                });
            }
            let u = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
            let u2 = u.clone();
            spawn(async move {
                let _ = u2.recv_from_owned(Vec::with_capacity(16)).await;
            });
            for _ in 0..3 {
                yield_now().await;
            }
            (c, u)
        });
        drop(rt);
        drop(keep);
    }
    // Buffers may be leaked (never freed while the kernel might still
    // write them) but never dropped twice.
    assert!(drops.load(Ordering::SeqCst) <= 20);
}

#[test]
fn owned_futures_are_send_and_spawnable() {
    fn assert_send<T: Send>(_: &T) {}
    on_each_driver(1, |_| async {
        let (a, b) = pair().await;
        let a = Arc::new(a);
        {
            let f = a.read_owned(Vec::with_capacity(8));
            assert_send(&f);
            let g = a.write_all_owned(BytesMut::new());
            assert_send(&g);
        }
        let reader = {
            let a = a.clone();
            spawn(async move {
                let (res, buf) = a.read_owned(Vec::with_capacity(8)).await;
                res.unwrap();
                buf
            })
        };
        let (res, _) = b.write_all_owned(b"sent".to_vec()).await;
        res.unwrap();
        assert_eq!(reader.await.unwrap(), b"sent");
    });
}

#[test]
fn owned_io_outside_a_runtime_is_an_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let s = TcpStream::from_std(c).unwrap();
    let (res, buf) = futures::executor::block_on(s.read_owned(Vec::with_capacity(4)));
    assert!(res.is_err());
    assert_eq!(buf.capacity(), 4, "the buffer comes back");
    assert!(RecvPool::for_current_core().is_err());
    assert!(s.recv_stream().is_err());
}
