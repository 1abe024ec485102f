//! The epoll driver inside a running insane runtime: readiness of
//! non-blocking sockets, parking, unparking, and errors.

mod common;

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use insane_epoll::EpollDriver;
use insane_runtime::driver::{self, Direction, DriverKind, IoDriver, Token};

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    (a, b)
}

#[test]
fn read_waits_until_the_peer_writes() {
    with_deadline(|| {
        let rt = runtime(1);
        let (a, mut b) = pair();
        rt.block_on(async move {
            assert_eq!(driver::current().map(|(k, _)| k), Some(DriverKind::Epoll));
            let t = register(a.as_raw_fd());
            let writer = thread::spawn(move || {
                thread::sleep(Duration::from_millis(30));
                b.write_all(b"hello").unwrap();
                b
            });
            let parks_before = parks();
            let start = Instant::now();
            let mut pendings = 0;
            let mut buf = [0u8; 16];
            let n = io(t, Direction::Read, &mut pendings, || (&a).read(&mut buf))
                .await
                .unwrap();
            assert_eq!(&buf[..n], b"hello");
            assert!(pendings >= 1, "the read had to wait");
            assert!(parks() > parks_before, "the core slept while waiting");
            assert!(start.elapsed() >= Duration::from_millis(25));
            deregister(t);
            drop(writer.join().unwrap());
        });
    });
}

#[test]
fn write_waits_until_the_peer_drains() {
    with_deadline(|| {
        let rt = runtime(1);
        let (a, mut b) = pair();
        rt.block_on(async move {
            let t = register(a.as_raw_fd());
            let chunk = vec![7u8; 64 * 1024];
            let mut filled = 0usize;
            loop {
                match (&a).write(&chunk) {
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("write: {e}"),
                }
            }
            clear_ready(t, Direction::Write);
            assert!(filled > 0);
            let reader = thread::spawn(move || {
                thread::sleep(Duration::from_millis(30));
                let mut sink = vec![0u8; filled];
                b.read_exact(&mut sink).unwrap();
                b
            });
            let mut pendings = 0;
            let n = io(t, Direction::Write, &mut pendings, || (&a).write(b"more"))
                .await
                .unwrap();
            assert_eq!(n, 4);
            assert!(pendings >= 1, "the write had to wait");
            deregister(t);
            drop(reader.join().unwrap());
        });
    });
}

#[test]
fn peer_close_makes_read_ready() {
    with_deadline(|| {
        let rt = runtime(1);
        let (a, b) = pair();
        rt.block_on(async move {
            let t = register(a.as_raw_fd());
            // As after a write that saw WouldBlock: writing is not ready.
            clear_ready(t, Direction::Write);
            let closer = thread::spawn(move || {
                thread::sleep(Duration::from_millis(30));
                drop(b);
            });
            let mut pendings = 0;
            let mut buf = [0u8; 16];
            let n = io(t, Direction::Read, &mut pendings, || (&a).read(&mut buf))
                .await
                .unwrap();
            assert_eq!(n, 0, "EOF after the peer closed");
            assert!(pendings >= 1);
            // The hang-up also made writing ready; the write then fails.
            let mut p = 0;
            let err = io(t, Direction::Write, &mut p, || (&a).write(b"x"))
                .await
                .unwrap_err();
            assert_eq!(p, 0, "write readiness was set by the hang-up");
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
            deregister(t);
            closer.join().unwrap();
        });
    });
}

#[test]
fn unpark_wakes_a_parked_core() {
    with_deadline(|| {
        let rt = runtime(2);
        rt.block_on(async {
            for round in 0..3 {
                // Give core 1 time to fall asleep in epoll_wait.
                thread::sleep(Duration::from_millis(30));
                let parks = insane_runtime::task::spawn_on(1, async { parks() })
                    .await
                    .unwrap();
                assert!(parks >= 1, "round {round}: core 1 never parked");
            }
            // The unpark signal is drained: an idle core sleeps instead of
            // spinning on a still-readable eventfd.
            let before = insane_runtime::task::spawn_on(1, async { parks() })
                .await
                .unwrap();
            thread::sleep(Duration::from_millis(50));
            let after = insane_runtime::task::spawn_on(1, async { parks() })
                .await
                .unwrap();
            assert!(
                after - before < 50,
                "core 1 parked {} times while idle",
                after - before
            );
        });
    });
}

#[test]
fn a_socket_on_another_core_wakes_that_core() {
    with_deadline(|| {
        let rt = runtime(2);
        let (a, mut b) = pair();
        rt.block_on(async move {
            let task = insane_runtime::task::spawn_on(1, async move {
                let t = register(a.as_raw_fd());
                let mut pendings = 0;
                let mut buf = [0u8; 8];
                let n = io(t, Direction::Read, &mut pendings, || (&a).read(&mut buf))
                    .await
                    .unwrap();
                deregister(t);
                (buf[..n].to_vec(), pendings)
            });
            thread::sleep(Duration::from_millis(30));
            b.write_all(b"ping").unwrap();
            let (got, pendings) = task.await.unwrap();
            assert_eq!(got, b"ping");
            assert!(pendings >= 1);
        });
    });
}

#[test]
fn wait_honours_its_timeout() {
    for precise in [true, false] {
        let mut d = EpollDriver::new().unwrap();
        d.set_precise_timeouts(precise);
        let (a, _b) = pair();
        let _t = d.register(a.as_raw_fd()).unwrap();
        // Consume the registration's initial EPOLLOUT edge.
        d.wait(Some(Duration::ZERO)).unwrap();
        for timeout in [
            Duration::from_millis(5),
            Duration::from_micros(5_500),
            Duration::from_micros(200),
        ] {
            let start = Instant::now();
            assert_eq!(d.wait(Some(timeout)).unwrap(), 0);
            let waited = start.elapsed();
            assert!(
                waited >= timeout,
                "precise={precise}: returned after {waited:?}, before {timeout:?}"
            );
        }
    }
}

#[test]
fn errors_name_their_cause_and_never_panic() {
    let mut d = EpollDriver::new().unwrap();
    let err = d.register(-1).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("epoll_ctl(ADD, fd -1) failed: Bad file descriptor"),
        "{err}"
    );
    // Regular files cannot be polled: EPERM.
    let file = std::fs::File::open("/proc/self/status").unwrap();
    let fd = file.as_raw_fd();
    let err = d.register(fd).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "epoll_ctl(ADD, fd {fd}) failed: Operation not permitted"
        )),
        "{err}"
    );
    assert_eq!(d.registrations(), 0);

    let mut cx = Context::from_waker(Waker::noop());
    for token in [Token(0), Token(usize::MAX), Token(1 << 40)] {
        assert!(matches!(
            d.poll_ready(token, Direction::Read, &mut cx),
            Poll::Ready(Err(_))
        ));
        d.clear_ready(token, Direction::Write);
        d.deregister(token);
    }
    let (a, _b) = pair();
    let t = d.register(a.as_raw_fd()).unwrap();
    d.deregister(t);
    d.deregister(t);
    let err = match d.poll_ready(t, Direction::Read, &mut cx) {
        Poll::Ready(Err(e)) => e,
        other => panic!("{other:?}"),
    };
    assert!(err.to_string().contains("not registered"), "{err}");
}

#[test]
fn a_core_gets_one_io_driver() {
    with_deadline(|| {
        let rt = runtime(1);
        rt.block_on(async {
            let err = insane_epoll::install_on_current_core().unwrap_err();
            assert!(err.to_string().contains("already has"), "{err}");
        });
        let err = insane_epoll::install_on_current_core().unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
        insane_epoll::probe().unwrap();
    });
}
