//! TCP behaviour, as in tokio's `tests/tcp_*.rs`, on both kernel drivers.

mod common;

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::Duration;

use common::on_each_driver;
use insane_net::tcp::ReuniteError;
use insane_net::{TcpListener, TcpSocket, TcpStream, lookup_host};
use insane_runtime::runtime::Runtime;
use insane_runtime::task::{spawn, spawn_on};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Interest};

/// A listener on a free loopback port.
async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// A connected pair (client, server side).
async fn pair() -> (TcpStream, TcpStream) {
    let (l, addr) = listener().await;
    let (c, s) = futures::join!(TcpStream::connect(addr), l.accept());
    (c.unwrap(), s.unwrap().0)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn echo_one_mebibyte() {
    on_each_driver(1, |_| async {
        let (listener, addr) = listener().await;
        let server = spawn(async move {
            let (mut s, peer) = listener.accept().await.unwrap();
            let mut buf = vec![0; 64 * 1024];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
            peer
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        let data = pattern(1 << 20);
        let (mut rd, mut wr) = client.split();
        let write = async {
            wr.write_all(&data).await.unwrap();
            wr.shutdown().await.unwrap();
        };
        let read = async {
            let mut out = vec![0; data.len()];
            rd.read_exact(&mut out).await.unwrap();
            let mut rest = Vec::new();
            assert_eq!(
                rd.read_to_end(&mut rest).await.unwrap(),
                0,
                "nothing after the echo"
            );
            out
        };
        let ((), out) = futures::join!(write, read);
        assert!(out == data, "echoed bytes differ");
        assert_eq!(server.await.unwrap(), client.local_addr().unwrap());
    });
}

async fn echo_server(listener: TcpListener, connections: usize) {
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (mut s, _) = listener.accept().await.unwrap();
        tasks.push(spawn(async move {
            let (mut rd, mut wr) = s.split();
            tokio::io::copy(&mut rd, &mut wr).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn echo_client(addr: SocketAddr, id: usize) {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let msg = format!("client {id} ").repeat(100).into_bytes();
    c.write_all(&msg).await.unwrap();
    let mut back = vec![0; msg.len()];
    c.read_exact(&mut back).await.unwrap();
    assert_eq!(back, msg);
    c.shutdown().await.unwrap();
    assert_eq!(c.read(&mut [0; 8]).await.unwrap(), 0);
}

#[test]
fn fifty_concurrent_connections() {
    on_each_driver(1, |_| async {
        let (listener, addr) = listener().await;
        let server = spawn(echo_server(listener, 50));
        let clients: Vec<_> = (0..50).map(|i| spawn(echo_client(addr, i))).collect();
        for c in clients {
            c.await.unwrap();
        }
        server.await.unwrap();
    });
}

#[test]
fn fifty_connections_across_two_cores() {
    on_each_driver(2, |_| async {
        let (listener, addr) = listener().await;
        let server = spawn(echo_server(listener, 50));
        let clients = spawn_on(1, async move {
            assert_eq!(Runtime::current_core(), Some(1));
            let clients: Vec<_> = (0..50).map(|i| spawn(echo_client(addr, i))).collect();
            for c in clients {
                c.await.unwrap();
            }
        });
        clients.await.unwrap();
        server.await.unwrap();
    });
}

/// FNV-1a over a byte stream.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

#[test]
fn sixty_four_mebibytes_with_checksum() {
    const TOTAL: usize = 64 << 20;
    const SEED: u64 = 0xcbf2_9ce4_8422_2325;
    on_each_driver(2, |_| async {
        let (listener, addr) = listener().await;
        // The receiver runs on core 1, the sender on core 0.
        let receiver = spawn_on(1, async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 256 * 1024];
            let (mut total, mut h) = (0usize, SEED);
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                h = fnv(h, &buf[..n]);
                total += n;
            }
            (total, h)
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        let chunk = pattern(1 << 20);
        let mut h = SEED;
        for i in 0..TOTAL / chunk.len() {
            let mut data = chunk.clone();
            data[0] = i as u8;
            h = fnv(h, &data);
            c.write_all(&data).await.unwrap();
        }
        c.shutdown().await.unwrap();
        assert_eq!(receiver.await.unwrap(), (TOTAL, h));
    });
}

#[test]
fn thousand_concurrent_connections() {
    on_each_driver(1, |_| async {
        let (listener, addr) = listener().await;
        let server = spawn(echo_server(listener, 1000));
        let clients: Vec<_> = (0..1000).map(|i| spawn(echo_client(addr, i))).collect();
        for c in clients {
            c.await.unwrap();
        }
        server.await.unwrap();
    });
}

#[test]
fn connection_refused() {
    on_each_driver(1, |_| async {
        let (listener, addr) = listener().await;
        drop(listener);
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        let err = TcpSocket::new_v4()
            .unwrap()
            .connect(addr)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    });
}

#[test]
fn address_in_use_and_not_available() {
    on_each_driver(1, |_| async {
        let (_listener, addr) = listener().await;
        let err = TcpListener::bind(addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        // 192.0.2.1 (TEST-NET-1) is not an address of this host.
        let err = TcpListener::bind("192.0.2.1:0").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrNotAvailable, "{err}");
        let err = TcpListener::bind(&[][..]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    });
}

#[test]
fn connect_tries_every_resolved_address() {
    on_each_driver(1, |_| async {
        let (listener, addr) = listener().await;
        let (dead, dead_addr) = self::listener().await;
        drop(dead);
        // The first address refuses, the second accepts.
        let addrs = [dead_addr, addr];
        let (c, s) = futures::join!(TcpStream::connect(&addrs[..]), listener.accept());
        let (c, (s, peer)) = (c.unwrap(), s.unwrap());
        assert_eq!(c.peer_addr().unwrap(), addr);
        assert_eq!(s.peer_addr().unwrap(), peer);
        // Host names resolve (off the core), then connect.
        let (c, s) = futures::join!(
            TcpStream::connect(("localhost", addr.port())),
            listener.accept()
        );
        assert_eq!(c.unwrap().peer_addr().unwrap().port(), addr.port());
        drop(s.unwrap());
        let all: Vec<_> = lookup_host(format!("localhost:{}", addr.port()))
            .await
            .unwrap()
            .collect();
        assert!(all.iter().any(|a| a.ip().is_loopback()), "{all:?}");
    });
}

#[test]
fn ipv6_loopback() {
    on_each_driver(1, |_| async {
        let listener = TcpListener::bind("[::1]:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let (c, s) = futures::join!(TcpStream::connect(addr), listener.accept());
        let (mut c, (mut s, _)) = (c.unwrap(), s.unwrap());
        c.write_all(b"six").await.unwrap();
        let mut buf = [0; 3];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"six");
        let sock = TcpSocket::new_v6().unwrap();
        sock.bind("[::1]:0".parse().unwrap()).unwrap();
        assert!(sock.local_addr().unwrap().is_ipv6());
    });
}

#[test]
fn split_by_reference() {
    on_each_driver(1, |_| async {
        let (mut a, mut b) = pair().await;
        let (mut ar, mut aw) = a.split();
        let (mut br, mut bw) = b.split();
        assert_eq!(ar.peer_addr().unwrap(), bw.local_addr().unwrap());
        let ping = async {
            aw.write_all(b"ping").await.unwrap();
            let mut buf = [0; 4];
            ar.read_exact(&mut buf).await.unwrap();
            buf
        };
        let pong = async {
            let mut buf = [0; 4];
            br.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
            bw.write_all(b"pong").await.unwrap();
        };
        let (got, ()) = futures::join!(ping, pong);
        assert_eq!(&got, b"pong");
        // The halves' try_ and readiness methods work too.
        let (ar, aw) = a.split();
        aw.writable().await.unwrap();
        assert_eq!(aw.try_write(b"x").unwrap(), 1);
        assert_eq!(
            ar.try_read(&mut [0; 1]).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
    });
}

#[test]
fn into_split_reunite_error() {
    on_each_driver(1, |_| async {
        let (a, a_peer) = pair().await;
        let (c, c_peer) = pair().await;
        let (ar, aw) = a.into_split();
        let (cr, cw) = c.into_split();
        // Halves of different streams do not reunite; both come back.
        let err = ar.reunite(cw).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tried to reunite halves that are not from the same socket"
        );
        let ReuniteError(ar, cw) = err;
        let a = ar.reunite(aw).expect("same stream");
        let c = cw.reunite(cr).expect("same stream");
        assert_eq!(a.peer_addr().unwrap(), a_peer.local_addr().unwrap());
        assert_eq!(c.peer_addr().unwrap(), c_peer.local_addr().unwrap());
    });
}

#[test]
fn owned_halves_on_two_cores() {
    on_each_driver(2, |_| async {
        let (a, mut b) = pair().await;
        let (mut ar, aw) = a.into_split();
        // The write half moves to core 1, the read half stays on core 0.
        let writer = spawn_on(1, async move {
            assert_eq!(Runtime::current_core(), Some(1));
            let mut w = aw;
            for i in 0..100u32 {
                w.write_all(&i.to_be_bytes()).await.unwrap();
            }
            w
        });
        let echo = spawn(async move {
            let (mut rd, mut wr) = b.split();
            tokio::io::copy(&mut rd, &mut wr).await.unwrap();
        });
        for i in 0..100u32 {
            let mut buf = [0; 4];
            ar.read_exact(&mut buf).await.unwrap();
            assert_eq!(u32::from_be_bytes(buf), i);
        }
        let aw = writer.await.unwrap();
        let mut a = ar.reunite(aw).unwrap();
        a.shutdown().await.unwrap();
        echo.await.unwrap();
        assert_eq!(a.read(&mut [0; 4]).await.unwrap(), 0);
    });
}

#[test]
fn reunite_gives_the_stream_back() {
    on_each_driver(1, |_| async {
        let (a, mut b) = pair().await;
        let (mut rd, mut wr) = a.into_split();
        wr.write_all(b"one").await.unwrap();
        let mut buf = [0; 3];
        b.read_exact(&mut buf).await.unwrap();
        b.write_all(b"two").await.unwrap();
        rd.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"two");
        let mut a = wr.reunite(rd).unwrap();
        a.write_all(b"three").await.unwrap();
        let mut buf = [0; 5];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"three");
    });
}

#[test]
fn shutdown_gives_the_peer_eof_and_half_close_works() {
    on_each_driver(1, |_| async {
        let (mut c, mut s) = pair().await;
        c.write_all(b"request").await.unwrap();
        c.shutdown().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"request");
        // The other direction still works after the half-close.
        s.write_all(b"reply").await.unwrap();
        drop(s);
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"reply");
        assert!(
            c.write_all(b"x").await.is_err(),
            "write after shutdown fails"
        );
    });
}

#[test]
fn dropping_the_owned_write_half_shuts_down() {
    on_each_driver(1, |_| async {
        let (c, mut s) = pair().await;
        let (mut rd, mut wr) = c.into_split();
        wr.write_all(b"bye").await.unwrap();
        drop(wr);
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");
        s.write_all(b"still open").await.unwrap();
        let mut buf = [0; 10];
        rd.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"still open");
    });
}

#[test]
fn peer_reset_is_an_error_not_a_panic() {
    on_each_driver(1, |_| async {
        let (c, mut s) = pair().await;
        c.set_zero_linger().unwrap();
        assert_eq!(c.linger().unwrap(), Some(Duration::ZERO));
        drop(c);
        let err = s.read(&mut [0; 16]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    });
}

#[test]
fn try_read_and_try_write_would_block() {
    on_each_driver(1, |_| async {
        let (mut c, s) = pair().await;
        let mut buf = [0; 16];
        assert_eq!(
            c.try_read(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        assert_eq!(
            c.try_read_vectored(&mut [io::IoSliceMut::new(&mut buf)])
                .unwrap_err()
                .kind(),
            ErrorKind::WouldBlock
        );
        let mut bytes = bytes::BytesMut::with_capacity(16);
        assert_eq!(
            c.try_read_buf(&mut bytes).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );

        // Fill the send path until the kernel says WouldBlock.
        let chunk = vec![7u8; 64 * 1024];
        let mut sent = 0usize;
        let mut blocked = false;
        for _ in 0..10_000 {
            match s.try_write(&chunk) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    blocked = true;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(blocked, "the socket buffers never filled ({sent} bytes)");
        // Drain on the other side; the writer becomes writable again.
        let mut received = 0usize;
        let mut big = vec![0u8; 256 * 1024];
        while received < sent {
            c.readable().await.unwrap();
            match c.try_read(&mut big) {
                Ok(0) => panic!("unexpected EOF"),
                Ok(n) => received += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(received, sent);
        s.writable().await.unwrap();
        let n = s
            .try_write_vectored(&[io::IoSlice::new(b"ab"), io::IoSlice::new(b"cd")])
            .unwrap();
        assert_eq!(n, 4);
        let mut four = [0; 4];
        c.read_exact(&mut four).await.unwrap();
        assert_eq!(&four, b"abcd");
    });
}

#[test]
fn ready_then_try_read() {
    on_each_driver(1, |_| async {
        let (c, mut s) = pair().await;
        let ready = c.ready(Interest::WRITABLE).await.unwrap();
        assert!(ready.is_writable());
        let writer = spawn(async move {
            s.write_all(b"hello").await.unwrap();
            s
        });
        let mut buf = [0; 16];
        let n = loop {
            let ready = c
                .ready(Interest::READABLE | Interest::WRITABLE)
                .await
                .unwrap();
            if ready.is_readable() {
                match c.try_read(&mut buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                    Err(e) => panic!("{e}"),
                }
            }
            // Writable but not yet readable: wait for the data alone.
            c.readable().await.unwrap();
        };
        assert_eq!(&buf[..n], b"hello");
        let s = writer.await.unwrap();
        drop(s);
        let ready = c.ready(Interest::READABLE).await.unwrap();
        assert!(ready.is_read_closed(), "{ready:?}");
        assert_eq!(c.try_read(&mut buf).unwrap(), 0);
        // try_io / async_io with a socket2 call.
        let r = c.try_io(Interest::READABLE, || {
            socket2::SockRef::from(&c).recv(&mut [std::mem::MaybeUninit::new(0u8); 4])
        });
        assert_eq!(r.unwrap(), 0);
        let n = c
            .async_io(Interest::WRITABLE, || socket2::SockRef::from(&c).send(b""))
            .await
            .unwrap();
        assert_eq!(n, 0);
    });
}

#[test]
fn several_tasks_wait_for_one_stream() {
    on_each_driver(1, |_| async {
        let (c, mut s) = pair().await;
        let c = std::sync::Arc::new(c);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let c = c.clone();
                spawn(async move { c.readable().await.unwrap() })
            })
            .collect();
        for _ in 0..8 {
            insane_runtime::task::yield_now().await;
        }
        s.write_all(b"wake everyone").await.unwrap();
        for w in waiters {
            w.await.unwrap();
        }
    });
}

#[test]
fn peek_leaves_data_queued() {
    on_each_driver(1, |_| async {
        let (mut c, mut s) = pair().await;
        s.write_all(b"hello world").await.unwrap();
        let mut peeked = [0; 5];
        let n = c.peek(&mut peeked).await.unwrap();
        assert_eq!(&peeked[..n], &b"hello"[..n]);
        let mut buf = tokio::io::ReadBuf::new(&mut peeked);
        let n = std::future::poll_fn(|cx| c.poll_peek(cx, &mut buf))
            .await
            .unwrap();
        assert_eq!(buf.filled(), &b"hello"[..n]);
        let mut all = [0; 11];
        c.read_exact(&mut all).await.unwrap();
        assert_eq!(&all, b"hello world");
        let (mut rd, _wr) = c.into_split();
        s.write_all(b"!").await.unwrap();
        let mut one = [0; 1];
        assert_eq!(rd.peek(&mut one).await.unwrap(), 1);
        assert_eq!(&one, b"!");
    });
}

#[test]
fn lines_with_tokio_buf_reader() {
    on_each_driver(1, |_| async {
        let (c, mut s) = pair().await;
        let server = spawn(async move {
            s.write_all(b"line one\nline two\r\nlast").await.unwrap();
            s.shutdown().await.unwrap();
            let mut rest = String::new();
            s.read_to_string(&mut rest).await.unwrap();
            rest
        });
        let mut lines = BufReader::new(c).lines();
        assert_eq!(
            lines.next_line().await.unwrap().as_deref(),
            Some("line one")
        );
        assert_eq!(
            lines.next_line().await.unwrap().as_deref(),
            Some("line two")
        );
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("last"));
        assert_eq!(lines.next_line().await.unwrap(), None);
        let mut c = lines.into_inner().into_inner();
        c.write_all(b"thanks").await.unwrap();
        drop(c);
        assert_eq!(server.await.unwrap(), "thanks");
    });
}

#[test]
fn futures_io_traits() {
    use futures::io::{AsyncReadExt as FutRead, AsyncWriteExt as FutWrite};
    on_each_driver(1, |_| async {
        let (mut c, mut s) = pair().await;
        FutWrite::write_all(&mut c, b"via futures").await.unwrap();
        FutWrite::flush(&mut c).await.unwrap();
        FutWrite::close(&mut c).await.unwrap();
        let mut got = Vec::new();
        FutRead::read_to_end(&mut s, &mut got).await.unwrap();
        assert_eq!(got, b"via futures");

        let (mut rd, mut wr) = s.into_split();
        let (mut crd, _cwr) = c.into_split();
        FutWrite::write_all(&mut wr, b"wxyz").await.unwrap();
        let mut buf = [0; 4];
        FutRead::read_exact(&mut crd, &mut buf).await.unwrap();
        assert_eq!(&buf, b"wxyz");
        let n =
            FutWrite::write_vectored(&mut wr, &[io::IoSlice::new(b"ab"), io::IoSlice::new(b"cd")])
                .await
                .unwrap();
        assert_eq!(n, 4);
        let mut a = [0u8; 2];
        let mut b = [0u8; 2];
        let mut got = 0usize;
        while got < 4 {
            let (x, y) = (got.min(2), got.saturating_sub(2));
            let mut bufs = [
                io::IoSliceMut::new(&mut a[x..]),
                io::IoSliceMut::new(&mut b[y..]),
            ];
            got += FutRead::read_vectored(&mut crd, &mut bufs).await.unwrap();
        }
        assert_eq!((&a, &b), (b"ab", b"cd"));
        assert_eq!(FutRead::read(&mut rd, &mut buf).await.unwrap(), 0);
    });
}

#[test]
fn stream_moves_to_another_core() {
    on_each_driver(2, |_| async {
        let (listener, addr) = listener().await;
        let (c, s) = futures::join!(TcpStream::connect(addr), listener.accept());
        let (mut c, (mut s, _)) = (c.unwrap(), s.unwrap());
        // Used on core 0 first (registered there) ...
        c.write_all(b"on core 0").await.unwrap();
        let mut buf = [0; 9];
        s.read_exact(&mut buf).await.unwrap();
        // ... then moved to core 1 and used there.
        let remote = spawn_on(1, async move {
            assert_eq!(Runtime::current_core(), Some(1));
            let mut buf = [0; 9];
            c.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"to core 1");
            c.write_all(b"from core 1").await.unwrap();
            c
        });
        s.write_all(b"to core 1").await.unwrap();
        let mut buf = [0; 11];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"from core 1");
        // Back on core 0, registered on both cores now; then dropped here.
        let mut c = remote.await.unwrap();
        c.write_all(b"back").await.unwrap();
        let mut buf = [0; 4];
        s.read_exact(&mut buf).await.unwrap();
        drop(c);
        assert_eq!(
            s.read(&mut buf).await.unwrap(),
            0,
            "peer sees EOF after the drop"
        );

        // A listener moved to core 1 accepts there.
        let (listener, addr) = self::listener().await;
        let acceptor = spawn_on(1, async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"accepted on 1").await.unwrap();
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "accepted on 1");
        acceptor.await.unwrap();
    });
}

#[test]
fn options_and_addresses() {
    on_each_driver(1, |_| async {
        let (listener, addr) = listener().await;
        listener.set_ttl(42).unwrap();
        assert_eq!(listener.ttl().unwrap(), 42);
        assert!(listener.take_error().unwrap().is_none());
        let (c, s) = futures::join!(TcpStream::connect(addr), listener.accept());
        let (c, (s, peer)) = (c.unwrap(), s.unwrap());
        assert_eq!(c.peer_addr().unwrap(), addr);
        assert_eq!(c.local_addr().unwrap(), peer);
        assert_eq!(s.local_addr().unwrap(), addr);
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
        c.set_nodelay(false).unwrap();
        assert!(!c.nodelay().unwrap());
        c.set_linger(Some(Duration::from_secs(1))).unwrap();
        assert_eq!(c.linger().unwrap(), Some(Duration::from_secs(1)));
        c.set_linger(None).unwrap();
        assert_eq!(c.linger().unwrap(), None);
        c.set_ttl(7).unwrap();
        assert_eq!(c.ttl().unwrap(), 7);
        c.set_quickack(true).unwrap();
        assert!(c.take_error().unwrap().is_none());
        assert!(format!("{c:?}").contains("TcpStream"));
        assert!(format!("{listener:?}").contains("TcpListener"));
    });
}

#[test]
fn tcp_socket_bind_listen_connect() {
    on_each_driver(1, |_| async {
        let a = TcpSocket::new_v4().unwrap();
        a.set_reuseaddr(true).unwrap();
        a.set_reuseport(true).unwrap();
        assert!(a.reuseaddr().unwrap() && a.reuseport().unwrap());
        a.set_recv_buffer_size(64 * 1024).unwrap();
        assert!(a.recv_buffer_size().unwrap() >= 64 * 1024);
        a.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = a.local_addr().unwrap();
        let l1 = a.listen(1024).unwrap();
        // SO_REUSEPORT: a second listener on the same port.
        let b = TcpSocket::new_v4().unwrap();
        b.set_reuseport(true).unwrap();
        b.set_reuseaddr(true).unwrap();
        b.bind(addr).unwrap();
        let l2 = b.listen(16).unwrap();
        assert_eq!(l2.local_addr().unwrap(), addr);
        drop(l2);

        let client = TcpSocket::new_v4().unwrap();
        client.set_send_buffer_size(32 * 1024).unwrap();
        assert!(client.send_buffer_size().unwrap() >= 32 * 1024);
        client.set_nodelay(true).unwrap();
        assert!(client.nodelay().unwrap());
        client.set_keepalive(true).unwrap();
        assert!(client.keepalive().unwrap());
        client.set_linger(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(client.linger().unwrap(), Some(Duration::from_secs(2)));
        let (c, s) = futures::join!(client.connect(addr), l1.accept());
        let (mut c, (mut s, _)) = (c.unwrap(), s.unwrap());
        assert!(c.nodelay().unwrap());
        c.write_all(b"socket").await.unwrap();
        let mut buf = [0; 6];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"socket");
    });
}

#[test]
fn from_std_and_into_std() {
    on_each_driver(1, |_| async {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = TcpListener::from_std(std_listener).unwrap();
        let std_client = std::net::TcpStream::connect(addr).unwrap();
        let (s, _) = listener.accept().await.unwrap();
        let mut c = TcpStream::from_std(std_client).unwrap();
        c.write_all(b"ab").await.unwrap();
        let mut std_s = s.into_std().unwrap();
        std_s.set_nonblocking(false).unwrap();
        let mut buf = [0; 2];
        io::Read::read_exact(&mut std_s, &mut buf).unwrap();
        assert_eq!(&buf, b"ab");
        io::Write::write_all(&mut std_s, b"cd").unwrap();
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"cd");
        let std_listener = listener.into_std().unwrap();
        assert_eq!(std_listener.local_addr().unwrap(), addr);
        let again = TcpListener::try_from(std_listener).unwrap();
        let std_c = std::net::TcpStream::connect(addr).unwrap();
        let (_s, peer) = again.accept().await.unwrap();
        assert_eq!(peer, std_c.local_addr().unwrap());
        // A std stream made into a TcpSocket.
        let sock = TcpSocket::from_std_stream(std::net::TcpStream::connect(addr).unwrap());
        assert!(sock.local_addr().is_ok());
    });
}

#[test]
fn outside_a_runtime_is_an_error_not_a_panic() {
    let listener = futures::executor::block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let err = futures::executor::block_on(listener.accept()).unwrap_err();
    assert!(err.to_string().contains("insane runtime"), "{err}");
    let err = futures::executor::block_on(TcpStream::connect(addr)).unwrap_err();
    assert!(err.to_string().contains("insane runtime"), "{err}");
    // A runtime without an I/O driver says so too.
    let rt = Runtime::builder().cores(1).build().unwrap();
    let err = rt.block_on(listener.accept()).unwrap_err();
    assert!(err.to_string().contains("no I/O driver"), "{err}");
}

/// A reader whose socket always has data still lets the core's other
/// tasks run, and a timeout around it fires: reading spends the task's
/// cooperative budget (as tokio's sockets do).
#[test]
fn a_reader_that_never_waits_still_yields_to_its_core() {
    on_each_driver(1, |_| async {
        let (mut a, mut b) = pair().await;
        // Far more than one budget of reads is already buffered.
        let chunk = vec![7u8; 64 * 1024];
        let writer = spawn(async move {
            let _ = b.write_all(&chunk).await;
            b
        });
        insane_runtime::time::sleep(std::time::Duration::from_millis(20)).await;
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        let other = spawn(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) });
        let mut buf = [0u8; 1];
        let mut reads = 0u32;
        // One byte at a time: the first 128 reads find data at once.
        while reads < 1000 && !ran.load(std::sync::atomic::Ordering::SeqCst) {
            a.read_exact(&mut buf).await.unwrap();
            reads += 1;
        }
        assert!(
            ran.load(std::sync::atomic::Ordering::SeqCst),
            "the other task never ran"
        );
        assert!(reads <= 129, "yielded only after {reads} reads");
        other.await.unwrap();
        drop(writer);
    });
}

/// Zero-length reads and writes, as in tokio: an empty write returns 0
/// without sending anything, and a read into an empty buffer of a readable
/// stream returns 0 without consuming anything (it is not end of stream).
/// (Like tokio's, an empty read first waits for readiness.)
#[test]
fn zero_length_reads_and_writes_consume_nothing() {
    on_each_driver(1, |_| async {
        let (mut c, mut s) = pair().await;
        assert_eq!(c.write(&[]).await.unwrap(), 0);
        c.write_all(b"data").await.unwrap();
        assert_eq!(s.read(&mut []).await.unwrap(), 0);
        let mut buf = [0; 4];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"data", "the empty read consumed nothing");
    });
}

/// Aborting a task while it waits in a read drops the stream on its core
/// (the pending wait is cancelled, nothing is leaked or woken late), the
/// peer sees the connection close, and the core goes on serving.
#[test]
fn aborting_a_task_blocked_in_read_closes_its_stream() {
    on_each_driver(1, |_| async {
        let (c, mut s) = pair().await;
        let reader = spawn(async move {
            let mut c = c;
            let mut buf = [0; 16];
            c.read(&mut buf).await
        });
        insane_runtime::task::yield_now().await;
        reader.abort();
        let err = reader.await.unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        let mut rest = Vec::new();
        let read = insane_runtime::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
            .await
            .expect("the peer sees the close");
        assert_eq!(read.unwrap(), 0);
        // The driver still serves new connections on this core.
        let (mut c2, mut s2) = pair().await;
        c2.write_all(b"ok").await.unwrap();
        let mut buf = [0; 2];
        s2.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ok");
    });
}
