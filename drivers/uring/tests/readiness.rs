//! Readiness (the IoDriver contract) with POLL_ADD, and parking: the core
//! sleeps in the ring and wakes for a completion or a cross-thread unpark.

mod common;

use std::future::poll_fn;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use insane_runtime::driver::{self, Direction, DriverKind};
use insane_uring::Handle;

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

#[test]
fn read_readiness_waits_for_the_peer() {
    let rt = common::runtime();
    rt.block_on(async {
        assert_eq!(driver::current().unwrap().0, DriverKind::Uring);
        let (mut a, b) = pair();
        let token = driver::with_current(|d| d.register(a.as_raw_fd()))
            .unwrap()
            .unwrap();

        // Nothing to read: pending (and a POLL_ADD is armed).
        let first = poll_fn(|cx| {
            Poll::Ready(driver::with_current(|d| d.poll_ready(token, Direction::Read, cx)).unwrap())
        })
        .await;
        assert!(first.is_pending());

        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            (&b).write_all(b"hello").unwrap();
            b
        });
        let start = Instant::now();
        poll_fn(|cx| driver::with_current(|d| d.poll_ready(token, Direction::Read, cx)).unwrap())
            .await
            .unwrap();
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(40),
            "woke too early: {waited:?}"
        );
        assert!(waited < Duration::from_secs(2), "woke too late: {waited:?}");
        let b = writer.join().unwrap();

        let mut buf = [0u8; 16];
        assert_eq!(a.read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(
            a.read(&mut buf).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        driver::with_current(|d| d.clear_ready(token, Direction::Read)).unwrap();
        let again = poll_fn(|cx| {
            Poll::Ready(driver::with_current(|d| d.poll_ready(token, Direction::Read, cx)).unwrap())
        })
        .await;
        assert!(
            again.is_pending(),
            "readiness must be cleared after WouldBlock"
        );

        // Several rounds through the same (multishot) poll.
        for round in 0..20u8 {
            (&b).write_all(&[round]).unwrap();
            poll_fn(|cx| {
                driver::with_current(|d| d.poll_ready(token, Direction::Read, cx)).unwrap()
            })
            .await
            .unwrap();
            assert_eq!(a.read(&mut buf).unwrap(), 1);
            assert_eq!(buf[0], round);
            assert!(a.read(&mut buf).is_err());
            driver::with_current(|d| d.clear_ready(token, Direction::Read)).unwrap();
        }

        // A socket is writable at once.
        poll_fn(|cx| driver::with_current(|d| d.poll_ready(token, Direction::Write, cx)).unwrap())
            .await
            .unwrap();
        driver::with_current(|d| d.deregister(token)).unwrap();

        // A deregistered token is an error, not a panic.
        let stale = poll_fn(|cx| {
            Poll::Ready(driver::with_current(|d| d.poll_ready(token, Direction::Read, cx)).unwrap())
        })
        .await;
        assert!(matches!(stale, Poll::Ready(Err(_))));
    });
}

#[test]
fn deregister_cancels_polls_so_close_really_closes() {
    let rt = common::runtime();
    rt.block_on(async {
        let h = Handle::current().unwrap();
        let (a, mut b) = pair();
        let token = driver::with_current(|d| d.register(a.as_raw_fd()))
            .unwrap()
            .unwrap();
        let p = poll_fn(|cx| {
            Poll::Ready(driver::with_current(|d| d.poll_ready(token, Direction::Read, cx)).unwrap())
        })
        .await;
        assert!(p.is_pending());
        let p = poll_fn(|cx| {
            Poll::Ready(
                driver::with_current(|d| d.poll_ready(token, Direction::Write, cx)).unwrap(),
            )
        })
        .await;
        assert!(p.is_pending() || p.is_ready());
        // Let the core submit the polls (they now hold the file).
        insane_runtime::task::yield_now().await;
        insane_runtime::task::yield_now().await;
        driver::with_current(|d| d.deregister(token)).unwrap();
        drop(a);
        // With the polls cancelled the kernel releases the file: the peer
        // sees end of stream.
        let mut buf = [0u8; 4];
        common::wait_until("peer sees EOF", || matches!(b.read(&mut buf), Ok(0))).await;
        // Only the unpark poll may remain.
        common::wait_until("cancelled polls completed", || h.sqes_in_flight() <= 1).await;
    });
}

struct Signal {
    done: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

#[test]
fn parked_core_wakes_for_cross_thread_unpark() {
    let rt = common::runtime();
    rt.block_on(async {
        for round in 0..3 {
            let signal = Arc::new(Signal {
                done: AtomicBool::new(false),
                waker: Mutex::new(None),
            });
            let s = signal.clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                s.done.store(true, Ordering::SeqCst);
                if let Some(w) = s.waker.lock().unwrap().take() {
                    w.wake();
                }
            });
            let start = Instant::now();
            poll_fn(|cx| {
                *signal.waker.lock().unwrap() = Some(cx.waker().clone());
                if signal.done.load(Ordering::SeqCst) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            let waited = start.elapsed();
            t.join().unwrap();
            assert!(
                waited >= Duration::from_millis(45),
                "round {round}: {waited:?}"
            );
            assert!(
                waited < Duration::from_secs(2),
                "round {round}: core did not wake ({waited:?})"
            );
        }
    });
}

#[test]
fn parked_core_wakes_for_a_completion() {
    let rt = common::runtime();
    rt.block_on(async {
        let (a, b) = pair();
        let a = std::rc::Rc::new(a);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            (&b).write_all(b"x").unwrap();
            b
        });
        let start = Instant::now();
        // READ on an O_NONBLOCK fd: EAGAIN, then POLL_ADD, then retry.
        let (r, buf) = insane_uring::op::read(a.clone(), Vec::with_capacity(8)).await;
        assert_eq!(r.unwrap(), 1);
        assert_eq!(buf, b"x");
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(40) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        drop(t.join().unwrap());
    });
}
