//! The fd-reuse trap: a registration removed late, after its fd was closed
//! and the number reused by a new socket, must not disturb the new one.
//!
//! In a test binary of its own, with its tests serialized by [`SERIAL`],
//! so no other test takes the freed fd number.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use common::*;
use insane_runtime::driver::{self, Direction};

/// Held by each test: fd numbers are process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn late_deregister_of_a_reused_fd_is_harmless() {
    with_deadline(|| {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let rt = runtime(1);
        rt.block_on(async {
            let (a, a_peer) = UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            let number = a.as_raw_fd();
            let token_a = register(number);
            // The socket closes; its registration is still there.
            drop(a);
            drop(a_peer);

            let (b, mut b_peer) = UnixStream::pair().unwrap();
            b.set_nonblocking(true).unwrap();
            assert_eq!(
                b.as_raw_fd(),
                number,
                "the kernel hands out the lowest free fd number"
            );
            let token_b = register(b.as_raw_fd());
            assert_ne!(token_a, token_b);

            // A's late deregistration must not remove B from epoll, and
            // A's token is dead.
            deregister(token_a);
            let mut cx = Context::from_waker(Waker::noop());
            let stale =
                driver::with_current(|d| d.poll_ready(token_a, Direction::Read, &mut cx)).unwrap();
            assert!(matches!(stale, Poll::Ready(Err(_))));

            let writer = thread::spawn(move || {
                thread::sleep(Duration::from_millis(30));
                b_peer.write_all(b"still here").unwrap();
                b_peer
            });
            let mut pendings = 0;
            let mut buf = [0u8; 32];
            let n = io(token_b, Direction::Read, &mut pendings, || {
                (&b).read(&mut buf)
            })
            .await
            .unwrap();
            assert_eq!(&buf[..n], b"still here");
            assert!(pendings >= 1, "B waited and was woken by epoll");
            deregister(token_b);
            drop(writer.join().unwrap());
        });
    });
}

#[test]
fn registering_the_same_open_socket_again_replaces_the_old_token() {
    with_deadline(|| {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let rt = runtime(1);
        rt.block_on(async {
            let (a, mut peer) = UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            let old = register(a.as_raw_fd());
            // Same fd, still open and still in the epoll set: ADD gives
            // EEXIST and the driver falls back to MOD.
            let new = register(a.as_raw_fd());
            assert_ne!(old, new);
            deregister(old);
            let writer = thread::spawn(move || {
                thread::sleep(Duration::from_millis(30));
                peer.write_all(b"x").unwrap();
                peer
            });
            let mut pendings = 0;
            let mut buf = [0u8; 4];
            let n = io(new, Direction::Read, &mut pendings, || (&a).read(&mut buf))
                .await
                .unwrap();
            assert_eq!(&buf[..n], b"x");
            assert!(pendings >= 1);
            deregister(new);
            drop(writer.join().unwrap());
        });
    });
}
