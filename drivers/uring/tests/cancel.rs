//! Cancellation: a dropped operation future cancels its request; its
//! buffer stays alive until the kernel's completion and is freed exactly
//! once; shutdown with operations in flight is clean.

mod common;

use std::net::UdpSocket;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::CountedBuf;
use insane_uring::{Handle, op};

#[test]
fn dropped_recv_is_cancelled_and_its_buffer_freed_once() {
    let rt = common::runtime();
    rt.block_on(async {
        let h = Handle::current().unwrap();
        let sock = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let drops = Arc::new(AtomicUsize::new(0));
        {
            let mut fut = Box::pin(op::recv(sock.clone(), CountedBuf::new(1024, &drops)));
            assert!(!common::poll_once(fut.as_mut()).await);
            assert_eq!(h.ops_in_flight(), 1);
            // Let the core submit it: the kernel now owns the buffer.
            insane_runtime::task::yield_now().await;
            insane_runtime::task::yield_now().await;
            assert!(!common::poll_once(fut.as_mut()).await);
        }
        // Dropped: the buffer moved into the slab, not freed.
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "freed while the kernel may still write to it"
        );
        assert_eq!(h.ops_in_flight(), 1);
        common::wait_until("cancel completion", || h.ops_in_flight() == 0).await;
        common::wait_until("buffer freed", || drops.load(Ordering::SeqCst) == 1).await;
        for _ in 0..10 {
            insane_runtime::task::yield_now().await;
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1, "freed exactly once");

        // The socket still works.
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"after", sock.local_addr().unwrap()).unwrap();
        let (r, buf) = op::recv(sock.clone(), CountedBuf::new(64, &drops)).await;
        assert_eq!(r.unwrap(), 5);
        assert_eq!(buf.inner, b"after");
        drop(buf);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn never_polled_and_completed_but_unpolled_futures() {
    let rt = common::runtime();
    rt.block_on(async {
        let h = Handle::current().unwrap();
        let sock = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let drops = Arc::new(AtomicUsize::new(0));
        // Never polled: nothing was submitted; the buffer is just dropped.
        drop(op::recv(sock.clone(), CountedBuf::new(16, &drops)));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(h.ops_in_flight(), 0);

        // Completed in the kernel, dropped before being polled again.
        let mut fut = Box::pin(op::recv(sock.clone(), CountedBuf::new(16, &drops)));
        assert!(!common::poll_once(fut.as_mut()).await);
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"x", sock.local_addr().unwrap()).unwrap();
        // Let the completion arrive and be reaped (not polled by us).
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(1));
            insane_runtime::task::yield_now().await;
        }
        drop(fut);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        common::wait_until("slab empty", || h.ops_in_flight() == 0).await;
    });
}

#[test]
fn thousands_of_dropped_reads_leak_nothing() {
    const N: usize = 2_000;
    let rt = common::runtime();
    rt.block_on(async {
        let h = Handle::current().unwrap();
        let sock = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let drops = Arc::new(AtomicUsize::new(0));
        let mut futs = Vec::with_capacity(N);
        for _ in 0..N {
            let mut f = Box::pin(op::recv(sock.clone(), CountedBuf::new(256, &drops)));
            assert!(!common::poll_once(f.as_mut()).await);
            futs.push(f);
        }
        // More than the SQ (256) and CQ (1024) hold: submission and
        // overflow paths run.
        insane_runtime::task::yield_now().await;
        assert_eq!(h.ops_in_flight(), N);
        drop(futs);
        common::wait_until("all cancelled", || h.ops_in_flight() == 0).await;
        common::wait_until("all buffers freed", || drops.load(Ordering::SeqCst) == N).await;
        common::wait_until("only the unpark poll left", || h.sqes_in_flight() <= 1).await;

        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"still", sock.local_addr().unwrap()).unwrap();
        let (r, buf) = op::recv(sock.clone(), Vec::with_capacity(64)).await;
        assert_eq!(r.unwrap(), 5);
        assert_eq!(buf, b"still");
    });
}

#[test]
fn runtime_shutdown_with_operations_in_flight() {
    let drops = Arc::new(AtomicUsize::new(0));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let fd = Arc::new(sock);
    {
        let rt = common::runtime();
        let d = drops.clone();
        let f = fd.clone();
        rt.block_on(async move {
            let h = Handle::current().unwrap();
            for _ in 0..10 {
                let f = f.clone();
                let d = d.clone();
                drop(insane_runtime::task::spawn_local(async move {
                    let (r, _buf) = op::recv(f, CountedBuf::new(64, &d)).await;
                    let _ = r;
                }));
            }
            common::wait_until("receives submitted", || h.ops_in_flight() == 10).await;
        });
        let start = Instant::now();
        drop(rt);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "shutdown took {:?}",
            start.elapsed()
        );
    }
    assert_eq!(
        drops.load(Ordering::SeqCst),
        10,
        "every buffer freed once at shutdown"
    );
    assert_eq!(Arc::strong_count(&fd), 1, "every fd guard released");
}
