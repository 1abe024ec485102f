//! `AsyncFd`: any non-blocking fd waits on insane's driver like a socket,
//! with tokio's guard protocol (stale readiness cleared by `try_io`).

mod common;

use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use common::on_each_driver;
use insane_net::AsyncFd;
use insane_runtime::task::spawn_on;
use tokio::io::Interest;

/// A non-blocking pipe as two `File`s (read end, write end).
fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "{}", io::Error::last_os_error());
    // SAFETY: pipe2 succeeded: two open fds that nothing else owns.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    (r.into(), w.into())
}

#[test]
fn a_reader_waits_for_data_written_later_from_another_core() {
    on_each_driver(2, |_| async {
        let (r, w) = pipe();
        let reader = AsyncFd::new(r).unwrap();
        let writer = spawn_on(1, async move {
            insane_runtime::time::sleep(Duration::from_millis(20)).await;
            (&w).write_all(b"hello").unwrap();
            w
        });
        let mut buf = [0u8; 16];
        let mut stale = 0;
        let n = loop {
            let mut guard = reader.readable().await.unwrap();
            assert!(guard.ready().is_readable());
            match guard.try_io(|fd| fd.get_ref().read(&mut buf)) {
                Ok(res) => break res.unwrap(),
                Err(_would_block) => stale += 1,
            }
            assert!(stale < 1000, "readiness never became real");
        };
        assert_eq!(&buf[..n], b"hello");
        drop(writer.await.unwrap());
    });
}

#[test]
fn async_io_retries_until_the_operation_does_not_block() {
    on_each_driver(1, |_| async {
        let (r, w) = pipe();
        let reader = AsyncFd::with_interest(r, Interest::READABLE).unwrap();
        let writer = insane_runtime::task::spawn(async move {
            insane_runtime::time::sleep(Duration::from_millis(10)).await;
            (&w).write_all(&[7; 3]).unwrap();
            w
        });
        let mut buf = [0u8; 8];
        let n = reader
            .async_io(Interest::READABLE, |f| (&*f).read(&mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..n], &[7; 3]);
        // Registered for reading only: asking to write is an error that
        // says so, not a wait that never ends.
        let err = reader.writable().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("WRITABLE"), "{err}");
        // The fd comes back usable.
        let mut file = reader.into_inner();
        assert_eq!(
            file.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        drop(writer.await.unwrap());
    });
}

#[test]
fn a_writable_pipe_is_ready_at_once_and_try_io_writes() {
    on_each_driver(1, |_| async {
        let (_r, w) = pipe();
        let writer = AsyncFd::new(w).unwrap();
        assert!(writer.writable().await.unwrap().ready().is_writable());
        let n = writer
            .try_io(Interest::WRITABLE, |f| (&*f).write(b"x"))
            .unwrap();
        assert_eq!(n, 1);
    });
}

/// `try_new` / `try_with_interest` (tokio's) build the same `AsyncFd`; the
/// value comes back from `into_inner`.
#[test]
fn try_new_builds_a_working_async_fd() {
    on_each_driver(1, |_| async {
        let (r, w) = pipe();
        let reader = AsyncFd::try_with_interest(r, Interest::READABLE).unwrap();
        let writer = AsyncFd::try_new(w).unwrap();
        let n = writer
            .async_io(Interest::WRITABLE, |f| (&*f).write(b"ping"))
            .await
            .unwrap();
        assert_eq!(n, 4);
        let mut buf = [0u8; 8];
        let n = reader
            .async_io(Interest::READABLE, |f| (&*f).read(&mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"ping");
        let file: std::fs::File = reader.into_inner();
        drop(file);
    });
}
