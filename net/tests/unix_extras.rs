//! `UnixSocket` and `unix::pipe` on both kernel drivers: each test is a
//! specification of tokio's behaviour that insane keeps.

mod common;

use std::ffi::CString;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{on_each_driver, socket_path};
use insane_net::UnixSocket;
use insane_net::unix::pipe;
use insane_runtime::runtime::Runtime;
use insane_runtime::task::{spawn, spawn_on};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bound of any single wait in these tests.
const LIMIT: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test if it takes longer than [`LIMIT`].
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match insane_runtime::time::timeout(LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} took longer than {LIMIT:?}"),
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = socket_path(tag).with_extension("d");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A plain blocking pipe: (read end, write end).
fn blocking_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [-1; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: `pipe` succeeded: both fds are open and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

#[test]
fn unix_socket_stream_bind_listen_connect_round_trip() {
    on_each_driver(1, |_| async {
        let path = socket_path("us-stream");
        let server = UnixSocket::new_stream().unwrap();
        server.bind(&path).unwrap();
        assert_eq!(
            server.local_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        let listener = server.listen(16).unwrap();
        let echo = spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let client = UnixSocket::new_stream().unwrap();
        assert!(client.local_addr().unwrap().is_unnamed());
        let mut stream = bounded("connect", client.connect(&path)).await.unwrap();
        assert_eq!(
            stream.peer_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        stream.write_all(b"hello").await.unwrap();
        let mut back = [0; 5];
        bounded("echo", stream.read_exact(&mut back)).await.unwrap();
        assert_eq!(&back, b"hello");
        bounded("server", echo).await.unwrap();
        std::fs::remove_file(&path).unwrap();
    });
}

#[test]
fn unix_socket_connect_to_nothing_is_not_found() {
    on_each_driver(1, |_| async {
        let path = socket_path("us-none");
        let err = UnixSocket::new_stream()
            .unwrap()
            .connect(&path)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    });
}

#[test]
fn unix_socket_datagram_send_recv() {
    on_each_driver(1, |_| async {
        let a_path = socket_path("us-dgram-a");
        let b_path = socket_path("us-dgram-b");
        let a = UnixSocket::new_datagram().unwrap();
        a.bind(&a_path).unwrap();
        let a = a.datagram().unwrap();
        let b = UnixSocket::new_datagram().unwrap();
        b.bind(&b_path).unwrap();
        let b = b.datagram().unwrap();
        a.send_to(b"one", &b_path).await.unwrap();
        let mut buf = [0; 16];
        let (n, from) = bounded("recv_from", b.recv_from(&mut buf)).await.unwrap();
        assert_eq!(&buf[..n], b"one");
        assert_eq!(from.as_pathname(), Some(a_path.as_path()));
        std::fs::remove_file(&a_path).unwrap();
        std::fs::remove_file(&b_path).unwrap();
    });
}

#[test]
fn unix_socket_of_the_wrong_type_says_so() {
    on_each_driver(1, |_| async {
        let err = UnixSocket::new_datagram().unwrap().listen(8).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("listen"), "{err}");
        assert!(err.to_string().contains("datagram socket"), "{err}");

        let err = UnixSocket::new_datagram()
            .unwrap()
            .connect(socket_path("us-wrong"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("connect"), "{err}");

        let err = UnixSocket::new_stream().unwrap().datagram().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("stream socket"), "{err}");
    });
}

#[test]
fn unix_socket_raw_fd_round_trip_keeps_the_type() {
    on_each_driver(1, |_| async {
        let fd = UnixSocket::new_datagram().unwrap().into_raw_fd();
        // SAFETY: `fd` was just released by `into_raw_fd` and is owned here.
        let socket = unsafe { UnixSocket::from_raw_fd(fd) };
        assert_eq!(socket.as_raw_fd(), fd);
        let err = socket.listen(1).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    });
}

#[test]
fn pipe_round_trip_across_two_cores() {
    on_each_driver(2, |_| async {
        let (mut tx, rx) = pipe::pipe().unwrap();
        let data: Vec<u8> = (0..512 * 1024).map(|i| (i % 251) as u8).collect();
        let reader = spawn_on(1, async move {
            assert_eq!(Runtime::current_core(), Some(1));
            let mut rx = rx;
            let mut out = Vec::new();
            rx.read_to_end(&mut out).await.unwrap();
            out
        });
        // Larger than the pipe's buffer: the writer waits for the reader.
        bounded("write_all", tx.write_all(&data)).await.unwrap();
        drop(tx);
        let out = bounded("reader", reader).await.unwrap();
        assert!(out == data, "{} bytes of {}", out.len(), data.len());
    });
}

#[test]
fn pipe_reader_sees_eof_when_the_sender_is_dropped() {
    on_each_driver(1, |_| async {
        let (tx, mut rx) = pipe::pipe().unwrap();
        tx.writable().await.unwrap();
        assert_eq!(tx.try_write(b"last").unwrap(), 4);
        let mut buf = [0; 8];
        let err = {
            let (_tx2, rx2) = pipe::pipe().unwrap();
            rx2.try_read(&mut buf).unwrap_err()
        };
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        let closer = spawn(async move {
            insane_runtime::time::sleep(Duration::from_millis(20)).await;
            drop(tx);
        });
        let mut got = Vec::new();
        bounded("read_to_end", rx.read_to_end(&mut got))
            .await
            .unwrap();
        assert_eq!(got, b"last");
        assert_eq!(rx.read(&mut buf).await.unwrap(), 0);
        closer.await.unwrap();
    });
}

#[test]
fn pipe_writer_sees_broken_pipe_when_the_receiver_is_dropped() {
    on_each_driver(1, |_| async {
        let (mut tx, rx) = pipe::pipe().unwrap();
        drop(rx);
        let err = tx.write_all(b"x").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err}");
    });
}

#[test]
fn pipe_ends_from_files_are_checked() {
    on_each_driver(1, |_| async {
        // Blocking pipe ends, as another library would hand them over.
        let (reader, writer) = blocking_pipe();
        // The write end cannot be a receiver, nor the read end a sender.
        let err = pipe::Receiver::from_owned_fd(writer.try_clone().unwrap()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let err = pipe::Sender::from_owned_fd(reader.try_clone().unwrap()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        // A regular file is not a pipe.
        let dir = TempDir::new("pipe-file");
        let file = std::fs::File::create(dir.0.join("plain")).unwrap();
        let err = pipe::Sender::from_file(file).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("not a pipe"), "{err}");
        // std's blocking pipe ends become non-blocking ones.
        let tx = pipe::Sender::from_owned_fd(writer).unwrap();
        let rx = pipe::Receiver::from_owned_fd(reader).unwrap();
        tx.writable().await.unwrap();
        tx.try_write(b"std").unwrap();
        let mut buf = [0; 3];
        bounded("readable", rx.readable()).await.unwrap();
        assert_eq!(rx.try_read(&mut buf).unwrap(), 3);
        assert_eq!(&buf, b"std");
        assert_eq!(
            rx.try_read(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        tx.try_write(b"more").unwrap();
        let mut grow = Vec::with_capacity(16);
        bounded("readable again", rx.readable()).await.unwrap();
        assert_eq!(rx.try_read_buf(&mut grow).unwrap(), 4);
        assert_eq!(grow, b"more");
        let fd = rx.into_blocking_fd().unwrap();
        drop(fd);
    });
}

#[test]
fn fifo_opened_with_open_options() {
    on_each_driver(1, |_| async {
        let dir = TempDir::new("fifo");
        let fifo = dir.0.join("fifo");
        mkfifo(&fifo);
        // Without a reader, a write-only open fails with ENXIO, like tokio.
        let err = pipe::OpenOptions::new().open_sender(&fifo).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENXIO), "{err}");

        let mut rx = pipe::OpenOptions::new().open_receiver(&fifo).unwrap();
        let mut tx = pipe::OpenOptions::new().open_sender(&fifo).unwrap();
        tx.write_all(b"through the fifo").await.unwrap();
        drop(tx);
        let mut got = String::new();
        bounded("fifo read", rx.read_to_string(&mut got))
            .await
            .unwrap();
        assert_eq!(got, "through the fifo");

        // read_write: a sender may open with no reader around.
        let tx = pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(&fifo)
            .unwrap();
        drop(tx);

        // A regular file is refused unless unchecked.
        let plain = dir.0.join("plain");
        std::fs::write(&plain, b"x").unwrap();
        let err = pipe::OpenOptions::new().open_receiver(&plain).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("not a pipe"), "{err}");
        pipe::OpenOptions::new()
            .unchecked(true)
            .open_receiver(&plain)
            .unwrap();
        let err = pipe::OpenOptions::new()
            .open_receiver(dir.0.join("missing"))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    });
}
