//! `AsyncFd`: any non-blocking fd waits on insane's driver like a socket,
//! with tokio's guard protocol (stale readiness cleared by `try_io`), and
//! tokio's `_mut` forms, which lend the value mutably.

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

/// Writes `hello` into `w` from core 1 after 20 ms; gives `w` back.
fn hello_later(w: std::fs::File) -> insane_runtime::task::JoinHandle<std::fs::File> {
    spawn_on(1, async move {
        insane_runtime::time::sleep(Duration::from_millis(20)).await;
        (&w).write_all(b"hello").unwrap();
        w
    })
}

/// `fd` as an `AsyncFd` for reading and writing.
fn register(fd: std::fs::File) -> AsyncFd<std::fs::File> {
    // SAFETY: the `File` owns its fd, which stays open while it lives.
    unsafe { AsyncFd::register(fd) }.unwrap()
}

/// `fd` as an `AsyncFd` for reading only.
fn register_reader(fd: std::fs::File) -> AsyncFd<std::fs::File> {
    // SAFETY: the `File` owns its fd, which stays open while it lives.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.unwrap()
}

#[test]
fn a_reader_waits_for_data_written_later_from_another_core() {
    on_each_driver(2, |_| async {
        let (r, w) = pipe();
        let reader = register(r);
        let writer = hello_later(w);
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
        let reader = register_reader(r);
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
        let writer = register(w);
        assert!(writer.writable().await.unwrap().ready().is_writable());
        let n = writer
            .try_io(Interest::WRITABLE, |f| (&*f).write(b"x"))
            .unwrap();
        assert_eq!(n, 1);
    });
}

/// `try_new` / `try_with_interest` (tokio's, deprecated there and here in
/// favour of `register`) build the same `AsyncFd`; the value comes back
/// from `into_inner`.
#[test]
#[allow(deprecated)]
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

/// A value with state of its own next to its fd: what the `_mut` forms
/// are for (tokio's example: a reader that keeps a count).
struct CountingPipe {
    file: std::fs::File,
    calls: usize,
}

impl std::os::fd::AsRawFd for CountingPipe {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}

fn counting(file: std::fs::File) -> AsyncFd<CountingPipe> {
    // SAFETY: the `File` owns its fd, which stays open while it lives and
    // is never replaced.
    unsafe { AsyncFd::register(CountingPipe { file, calls: 0 }) }.unwrap()
}

/// `readable_mut` waits like `readable`; its guard lends the value
/// (`get_inner_mut`) and the `AsyncFd` (`try_io`) mutably, and once the
/// pipe is drained a poll for readability is pending (it really waits).
#[test]
fn readable_mut_lends_the_value_mutably() {
    on_each_driver(2, |_| async {
        let (r, w) = pipe();
        let mut reader = counting(r);
        let writer = hello_later(w);
        let mut buf = [0u8; 16];
        let mut stale = 0;
        let n = loop {
            let mut guard = reader.readable_mut().await.unwrap();
            assert!(guard.ready().is_readable());
            guard.get_inner_mut().calls += 1;
            match guard.try_io(|fd| fd.get_mut().file.read(&mut buf)) {
                Ok(res) => break res.unwrap(),
                Err(_would_block) => stale += 1,
            }
            assert!(stale < 1000, "readiness never became real");
        };
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(reader.get_ref().calls, stale + 1, "one call per wake");
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(reader.poll_read_ready_mut(&mut cx).is_pending());
        reader.get_mut().calls = 0;
        assert_eq!(reader.into_inner().calls, 0);
        drop(writer.await.unwrap());
    });
}

/// `async_io_mut` retries a mutable operation until it does not block;
/// `try_io_mut` runs it once and, on `WouldBlock`, clears the readiness:
/// `writable_mut` then waits until the reader makes room.
#[test]
fn async_io_mut_and_try_io_mut_give_the_closure_the_value_mutably() {
    on_each_driver(2, |_| async {
        let (mut r, w) = pipe();
        let mut writer = counting(w);
        let n = writer
            .async_io_mut(Interest::WRITABLE, |p| {
                p.calls += 1;
                p.file.write(b"ping")
            })
            .await
            .unwrap();
        assert_eq!((n, writer.get_ref().calls), (4, 1));
        // Fill the pipe: the write that blocks clears the readiness.
        let chunk = [0u8; 4096];
        let mut filled = 4;
        loop {
            match writer.try_io_mut(Interest::WRITABLE, |p| p.file.write(&chunk)) {
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
            assert!(filled < 64 << 20, "the pipe never filled");
        }
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(writer.poll_write_ready_mut(&mut cx).is_pending());
        // Another core drains the pipe; the writer is woken.
        let drain = spawn_on(1, async move {
            insane_runtime::time::sleep(Duration::from_millis(10)).await;
            let mut buf = vec![0u8; 1 << 16];
            let mut read = 0;
            while read < filled {
                match r.read(&mut buf) {
                    Ok(n) => read += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        insane_runtime::time::sleep(Duration::from_millis(1)).await
                    }
                    Err(e) => panic!("read: {e}"),
                }
            }
            read
        });
        let guard = writer.writable_mut().await.unwrap();
        assert!(guard.ready().is_writable());
        drop(guard);
        assert_eq!(drain.await.unwrap(), filled);
        use std::os::fd::{AsFd, AsRawFd};
        assert_eq!(
            writer.as_fd().as_raw_fd(),
            writer.get_ref().file.as_raw_fd()
        );
    });
}
