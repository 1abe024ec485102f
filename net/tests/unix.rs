//! Unix domain sockets on both kernel drivers.

mod common;

use std::future::poll_fn;
use std::io::ErrorKind;
use std::net::Shutdown;

use common::{on_each_driver, socket_path};
use insane_net::unix::ReuniteError;
use insane_net::{UnixDatagram, UnixListener, UnixStream};
use insane_runtime::runtime::Runtime;
use insane_runtime::task::{spawn, spawn_on};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Interest, ReadBuf};

#[test]
fn stream_echo_through_a_listener() {
    on_each_driver(1, |_| async {
        let path = socket_path("echo");
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        let server = spawn(async move {
            let mut served = 0;
            for _ in 0..5 {
                let (mut s, addr) = listener.accept().await.unwrap();
                assert!(addr.is_unnamed());
                spawn(async move {
                    let (mut rd, mut wr) = s.split();
                    tokio::io::copy(&mut rd, &mut wr).await.unwrap();
                });
                served += 1;
            }
            served
        });
        let data: Vec<u8> = (0..256 * 1024).map(|i| (i % 253) as u8).collect();
        for _ in 0..5 {
            let mut c = UnixStream::connect(&path).await.unwrap();
            assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
            let (mut rd, mut wr) = c.split();
            let write = async {
                wr.write_all(&data).await.unwrap();
                wr.shutdown().await.unwrap();
            };
            let read = async {
                let mut out = Vec::new();
                rd.read_to_end(&mut out).await.unwrap();
                out
            };
            let ((), out) = futures::join!(write, read);
            assert!(out == data);
        }
        assert_eq!(server.await.unwrap(), 5);
        std::fs::remove_file(&path).unwrap();
        let err = UnixStream::connect(&path).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    });
}

#[test]
fn stream_pair_split_and_lines() {
    on_each_driver(1, |_| async {
        let (a, b) = UnixStream::pair().unwrap();
        let cred = a.peer_cred().unwrap();
        // SAFETY: getuid has no preconditions.
        assert_eq!(cred.uid(), unsafe { libc::getuid() });
        assert_eq!(cred.pid(), Some(std::process::id() as i32));
        let (rd, wr) = a.into_split();
        let writer = spawn(async move {
            let mut b = b;
            b.write_all(b"alpha\nbeta\n").await.unwrap();
            b
        });
        let mut lines = BufReader::new(rd).lines();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("alpha"));
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("beta"));
        let rd = lines.into_inner().into_inner();
        let mut b = writer.await.unwrap();
        let (c, _d) = UnixStream::pair().unwrap();
        let (cr, cw) = c.into_split();
        let ReuniteError(rd, cw) = rd.reunite(cw).unwrap_err();
        drop((cr, cw));
        let a = rd.reunite(wr).unwrap();
        // try_read / readiness.
        let mut buf = [0; 8];
        assert_eq!(
            a.try_read(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        b.write_all(b"ready").await.unwrap();
        let ready = a.ready(Interest::READABLE).await.unwrap();
        assert!(ready.is_readable());
        assert_eq!(a.try_read(&mut buf).unwrap(), 5);
        a.writable().await.unwrap();
        assert_eq!(a.try_write(b"w").unwrap(), 1);
        b.read_exact(&mut buf[..1]).await.unwrap();
        drop(a);
        assert_eq!(b.read(&mut buf).await.unwrap(), 0);
    });
}

#[test]
fn stream_moves_to_another_core() {
    on_each_driver(2, |_| async {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"x").await.unwrap();
        let b = spawn_on(1, async move {
            assert_eq!(Runtime::current_core(), Some(1));
            let mut b = b;
            let mut buf = [0; 2];
            b.read_exact(&mut buf[..1]).await.unwrap();
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"yz");
            b.write_all(b"done").await.unwrap();
            b
        });
        a.write_all(b"yz").await.unwrap();
        let mut buf = [0; 4];
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"done");
        let b = b.await.unwrap();
        let std_b = b.into_std().unwrap();
        let b = UnixStream::from_std(std_b).unwrap();
        drop(b);
        assert_eq!(a.read(&mut buf).await.unwrap(), 0);
    });
}

#[test]
fn datagram_pair_and_paths() {
    on_each_driver(1, |_| async {
        let (a, b) = UnixDatagram::pair().unwrap();
        let mut buf = [0; 16];
        assert_eq!(
            b.try_recv(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        a.send(b"one").await.unwrap();
        a.send(b"two").await.unwrap();
        assert_eq!(b.recv(&mut buf).await.unwrap(), 3);
        assert_eq!(&buf[..3], b"one");
        let mut rb = ReadBuf::new(&mut buf);
        poll_fn(|cx| b.poll_recv(cx, &mut rb)).await.unwrap();
        assert_eq!(rb.filled(), b"two");
        assert_eq!(a.try_send(b"three").unwrap(), 5);
        b.readable().await.unwrap();
        assert_eq!(b.try_recv(&mut buf).unwrap(), 5);

        let pa = socket_path("dga");
        let pb = socket_path("dgb");
        let x = UnixDatagram::bind(&pa).unwrap();
        let y = UnixDatagram::bind(&pb).unwrap();
        assert_eq!(x.send_to(b"hi y", &pb).await.unwrap(), 4);
        let (n, from) = y.recv_from(&mut buf).await.unwrap();
        assert_eq!(
            (&buf[..n], from.as_pathname()),
            (&b"hi y"[..], Some(pa.as_path()))
        );
        assert_eq!(y.try_send_to(b"hi x", &pa).unwrap(), 4);
        let mut rb = ReadBuf::new(&mut buf);
        let from = poll_fn(|cx| x.poll_recv_from(cx, &mut rb)).await.unwrap();
        assert_eq!(
            (rb.filled(), from.as_pathname()),
            (&b"hi x"[..], Some(pb.as_path()))
        );
        // An unbound socket connected to a path.
        let u = UnixDatagram::unbound().unwrap();
        u.connect(&pa).unwrap();
        assert_eq!(u.peer_addr().unwrap().as_pathname(), Some(pa.as_path()));
        u.send(b"anon").await.unwrap();
        let (n, from) = x.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from.is_unnamed()), (&b"anon"[..], true));
        assert_eq!(
            x.try_recv_from(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        let mut v = Vec::with_capacity(8);
        assert_eq!(
            x.try_recv_buf_from(&mut v).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        y.send_to(b"bufmut", &pa).await.unwrap();
        let (n, from) = x.recv_buf_from(&mut v).await.unwrap();
        assert_eq!(
            (n, &v[..], from.as_pathname()),
            (6, &b"bufmut"[..], Some(pb.as_path()))
        );
        u.shutdown(Shutdown::Both).unwrap();
        let std_x = x.into_std().unwrap();
        assert_eq!(
            std_x.local_addr().unwrap().as_pathname(),
            Some(pa.as_path())
        );
        let _ = std::fs::remove_file(&pa);
        let _ = std::fs::remove_file(&pb);
    });
}

/// A name in Linux's abstract namespace unique to this process and `tag`.
fn abstract_name(tag: &str) -> String {
    format!("insane-test-{tag}-{}", std::process::id())
}

/// Linux's abstract namespace, as in tokio: a path that starts with a NUL
/// byte binds and connects to an abstract name (no file is created), and
/// the addresses report it through `SocketAddr::as_abstract_name`
/// (without the NUL), never as a path.
#[test]
fn streams_bind_and_connect_to_abstract_names() {
    on_each_driver(1, |driver| async move {
        let name = abstract_name(&format!("stream-{driver}"));
        let path = format!("\0{name}");
        let listener = UnixListener::bind(&path).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.as_abstract_name(), Some(name.as_bytes()));
        assert_eq!(addr.as_pathname(), None);
        assert!(!addr.is_unnamed());
        assert!(!std::path::Path::new(&name).exists(), "no file is created");
        let server = spawn(async move {
            let (mut s, peer) = listener.accept().await.unwrap();
            assert!(peer.is_unnamed());
            assert_eq!(peer.as_abstract_name(), None);
            s.write_all(b"abstract").await.unwrap();
        });
        let mut c = UnixStream::connect(&path).await.unwrap();
        assert_eq!(
            c.peer_addr().unwrap().as_abstract_name(),
            Some(name.as_bytes())
        );
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"abstract");
        server.await.unwrap();
    });
}

/// `bind_addr` / `connect_addr` take an address made with std's
/// `SocketAddrExt::from_abstract_name` (converted with `From`), and the
/// address converts back to std's.
#[test]
fn bind_addr_and_connect_addr_take_abstract_addresses() {
    use std::os::linux::net::SocketAddrExt;
    on_each_driver(1, |driver| async move {
        let name = abstract_name(&format!("addr-{driver}"));
        let std_addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let addr = insane_net::unix::SocketAddr::from(std_addr);
        let listener = UnixListener::bind_addr(&addr).unwrap();
        let c = UnixStream::connect_addr(&addr).await.unwrap();
        listener.accept().await.unwrap();
        let back: std::os::unix::net::SocketAddr = c.peer_addr().unwrap().into();
        assert_eq!(back.as_abstract_name(), Some(name.as_bytes()));
        // The name is taken while the listener lives, as a path would be.
        let again = UnixListener::bind_addr(&addr).map(|_| ()).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::AddrInUse);
    });
}

/// Datagram sockets bind, connect and send to abstract names, and
/// `recv_from` names the sender's abstract address.
#[test]
fn datagrams_use_abstract_names() {
    on_each_driver(1, |driver| async move {
        let (a_name, b_name) = (
            abstract_name(&format!("dgram-a-{driver}")),
            abstract_name(&format!("dgram-b-{driver}")),
        );
        let a = UnixDatagram::bind(format!("\0{a_name}")).unwrap();
        let b = UnixDatagram::bind(format!("\0{b_name}")).unwrap();
        assert_eq!(
            a.local_addr().unwrap().as_abstract_name(),
            Some(a_name.as_bytes())
        );
        a.send_to(b"to b", format!("\0{b_name}")).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(
            (&buf[..n], from.as_abstract_name()),
            (&b"to b"[..], Some(a_name.as_bytes()))
        );
        b.connect(format!("\0{a_name}")).unwrap();
        assert_eq!(
            b.peer_addr().unwrap().as_abstract_name(),
            Some(a_name.as_bytes())
        );
        b.send(b"back").await.unwrap();
        let n = a.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"back");
    });
}
