//! UDP behaviour, as in tokio's `tests/udp.rs`, on both kernel drivers.

mod common;

use std::future::poll_fn;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use common::on_each_driver;
use insane_net::UdpSocket;
use insane_runtime::runtime::Runtime;
use insane_runtime::task::{spawn, spawn_on};
use tokio::io::{Interest, ReadBuf};

async fn bound() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

#[test]
fn send_to_and_recv_from() {
    on_each_driver(1, |_| async {
        let (a, a_addr) = bound().await;
        let (b, b_addr) = bound().await;
        assert_eq!(a.send_to(b"hello", b_addr).await.unwrap(), 5);
        let mut buf = [0; 32];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"hello"[..], a_addr));
        // A string target is resolved too.
        b.send_to(b"back", format!("127.0.0.1:{}", a_addr.port()))
            .await
            .unwrap();
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"back"[..], b_addr));
        // A datagram longer than the buffer is truncated.
        a.send_to(&[9; 100], b_addr).await.unwrap();
        let mut small = [0; 10];
        let (n, _) = b.recv_from(&mut small).await.unwrap();
        assert_eq!((n, small), (10, [9; 10]));
        let err = a.send_to(b"x", &[][..]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    });
}

#[test]
fn connected_send_and_recv() {
    on_each_driver(1, |_| async {
        let (a, a_addr) = bound().await;
        let (b, b_addr) = bound().await;
        assert_eq!(a.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
        a.connect(b_addr).await.unwrap();
        b.connect(a_addr).await.unwrap();
        assert_eq!(a.peer_addr().unwrap(), b_addr);
        a.send(b"ping").await.unwrap();
        let mut buf = [0; 8];
        assert_eq!(b.recv(&mut buf).await.unwrap(), 4);
        assert_eq!(&buf[..4], b"ping");
        b.send(b"pong").await.unwrap();
        let mut rb = ReadBuf::new(&mut buf);
        poll_fn(|cx| a.poll_recv(cx, &mut rb)).await.unwrap();
        assert_eq!(rb.filled(), b"pong");
        let n = poll_fn(|cx| a.poll_send(cx, b"via poll")).await.unwrap();
        assert_eq!(n, 8);
        let mut got = Vec::with_capacity(16);
        b.recv_buf(&mut got).await.unwrap();
        assert_eq!(got, b"via poll");
    });
}

#[test]
fn connected_socket_sees_connection_refused() {
    on_each_driver(1, |_| async {
        let (a, _) = bound().await;
        let (gone, gone_addr) = bound().await;
        drop(gone);
        a.connect(gone_addr).await.unwrap();
        a.send(b"anyone?").await.unwrap();
        // The ICMP port unreachable comes back as the socket's error.
        let err = a.recv(&mut [0; 8]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    });
}

#[test]
fn peek_from_leaves_the_datagram() {
    on_each_driver(1, |_| async {
        let (a, a_addr) = bound().await;
        let (b, b_addr) = bound().await;
        a.send_to(b"first", b_addr).await.unwrap();
        a.send_to(b"second", b_addr).await.unwrap();
        let mut buf = [0; 16];
        let (n, from) = b.peek_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"first"[..], a_addr));
        assert_eq!(b.peek_sender().await.unwrap(), a_addr);
        assert_eq!(b.try_peek_sender().unwrap(), a_addr);
        let mut rb = ReadBuf::new(&mut buf);
        let from = poll_fn(|cx| b.poll_peek_from(cx, &mut rb)).await.unwrap();
        assert_eq!((rb.filled(), from), (&b"first"[..], a_addr));
        let (n, _) = b.try_peek_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"first");
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"first");
        let mut rb = ReadBuf::new(&mut buf);
        let from = poll_fn(|cx| b.poll_recv_from(cx, &mut rb)).await.unwrap();
        assert_eq!((rb.filled(), from), (&b"second"[..], a_addr));
        // Connected peeks.
        b.connect(a_addr).await.unwrap();
        a.send_to(b"third", b_addr).await.unwrap();
        assert_eq!(b.peek(&mut buf).await.unwrap(), 5);
        assert_eq!(b.try_peek(&mut buf).unwrap(), 5);
        let mut rb = ReadBuf::new(&mut buf);
        poll_fn(|cx| b.poll_peek(cx, &mut rb)).await.unwrap();
        assert_eq!(rb.filled(), b"third");
        assert_eq!(b.recv(&mut buf).await.unwrap(), 5);
    });
}

#[test]
fn try_calls_would_block_when_nothing_is_there() {
    on_each_driver(1, |_| async {
        let (a, a_addr) = bound().await;
        let (b, b_addr) = bound().await;
        let mut buf = [0; 16];
        assert_eq!(
            a.try_recv_from(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        assert_eq!(
            a.try_peek_from(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        let mut v = Vec::with_capacity(16);
        assert_eq!(
            a.try_recv_buf_from(&mut v).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        a.connect(b_addr).await.unwrap();
        assert_eq!(
            a.try_recv(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        assert_eq!(
            a.try_recv_buf(&mut v).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );

        // readable() then try_recv.
        b.writable().await.unwrap();
        assert_eq!(b.try_send_to(b"now", a_addr).unwrap(), 3);
        let n = loop {
            a.readable().await.unwrap();
            match a.try_recv(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..n], b"now");
        assert_eq!(a.try_send(b"x").unwrap(), 1);
        // ready() reports what is there.
        let ready = a
            .ready(Interest::READABLE | Interest::WRITABLE)
            .await
            .unwrap();
        assert!(ready.is_writable() && !ready.is_readable(), "{ready:?}");
        b.send_to(b"y", a_addr).await.unwrap();
        let ready = a.ready(Interest::READABLE).await.unwrap();
        assert!(ready.is_readable(), "{ready:?}");
        let (n, from) = b.try_recv_buf_from(&mut v).unwrap();
        assert_eq!((n, from, &v[..]), (1, a_addr, &b"x"[..]));
        poll_fn(|cx| a.poll_recv_ready(cx)).await.unwrap();
        poll_fn(|cx| a.poll_send_ready(cx)).await.unwrap();
        assert_eq!(a.try_recv(&mut buf).unwrap(), 1);
        let r = a.try_io(Interest::READABLE, || a.try_recv(&mut buf));
        assert_eq!(r.unwrap_err().kind(), ErrorKind::WouldBlock);
        b.send_to(b"z", a_addr).await.unwrap();
        let n = a
            .async_io(Interest::READABLE, || a.try_recv(&mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"z");
    });
}

#[test]
fn arc_socket_shared_by_two_cores() {
    on_each_driver(2, |_| async {
        let a = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let (echo, echo_addr) = bound().await;
        const N: u32 = 200;
        let echoer = spawn(async move {
            let mut buf = [0; 8];
            for _ in 0..N {
                let (n, from) = echo.recv_from(&mut buf).await.unwrap();
                echo.send_to(&buf[..n], from).await.unwrap();
            }
        });
        // The sender runs on core 1, the receiver on core 0, one socket.
        let sender = {
            let a = a.clone();
            spawn_on(1, async move {
                assert_eq!(Runtime::current_core(), Some(1));
                for i in 0..N {
                    a.send_to(&i.to_be_bytes(), echo_addr).await.unwrap();
                    if i % 16 == 15 {
                        insane_runtime::task::yield_now().await;
                    }
                }
            })
        };
        let mut seen = vec![false; N as usize];
        let mut buf = [0; 8];
        for _ in 0..N {
            let (n, from) = a.recv_from(&mut buf).await.unwrap();
            assert_eq!((n, from), (4, echo_addr));
            let i = u32::from_be_bytes(buf[..4].try_into().unwrap());
            assert!(!seen[i as usize], "duplicate {i}");
            seen[i as usize] = true;
        }
        sender.await.unwrap();
        echoer.await.unwrap();
        assert!(seen.iter().all(|s| *s));
        // Dropped on core 0 after core 1 registered it too.
        drop(a);
    });
}

#[test]
fn several_receivers_on_one_core() {
    on_each_driver(1, |_| async {
        let a = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let a_addr = a.local_addr().unwrap();
        let (b, _) = bound().await;
        // Four tasks of one core wait in recv_from on the same socket at
        // once; every one of them must be woken (tokio allows this).
        let receivers: Vec<_> = (0..4)
            .map(|_| {
                let a = a.clone();
                spawn(async move {
                    let mut buf = [0; 8];
                    a.recv_from(&mut buf).await.unwrap().0
                })
            })
            .collect();
        for _ in 0..8 {
            insane_runtime::task::yield_now().await;
        }
        for i in 0..4u8 {
            b.send_to(&[i; 3], a_addr).await.unwrap();
        }
        for r in receivers {
            assert_eq!(r.await.unwrap(), 3);
        }
    });
}

#[test]
fn socket_moves_to_another_core() {
    on_each_driver(2, |_| async {
        let (a, a_addr) = bound().await;
        let (b, b_addr) = bound().await;
        a.connect(b_addr).await.unwrap();
        // Used (and registered) on core 0 first ...
        b.send_to(b"one", a_addr).await.unwrap();
        let mut buf = [0; 4];
        assert_eq!(a.recv(&mut buf).await.unwrap(), 3);
        // ... then moved to core 1.
        let remote = spawn_on(1, async move {
            assert_eq!(Runtime::current_core(), Some(1));
            let mut buf = [0; 4];
            let n = a.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"hey");
            a.send(b"ho").await.unwrap();
            a
        });
        b.send_to(b"hey", a_addr).await.unwrap();
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"ho"[..], a_addr));
        let a = remote.await.unwrap();
        // Dropped on core 0 while core 1 still has it registered.
        drop(a);
        // The port is free again (the fd was closed).
        let mut rebound = None;
        for _ in 0..5000 {
            match UdpSocket::bind(a_addr).await {
                Ok(s) => {
                    rebound = Some(s);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::AddrInUse => {
                    insane_runtime::time::sleep(std::time::Duration::from_millis(1)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(rebound.is_some(), "the socket was never closed");
    });
}

#[test]
fn address_in_use_and_options() {
    on_each_driver(1, |_| async {
        let (a, a_addr) = bound().await;
        let err = UdpSocket::bind(a_addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        a.set_broadcast(true).unwrap();
        assert!(a.broadcast().unwrap());
        a.set_ttl(9).unwrap();
        assert_eq!(a.ttl().unwrap(), 9);
        a.set_multicast_loop_v4(false).unwrap();
        assert!(!a.multicast_loop_v4().unwrap());
        a.set_multicast_ttl_v4(3).unwrap();
        assert_eq!(a.multicast_ttl_v4().unwrap(), 3);
        a.set_tos(0x10).unwrap();
        assert_eq!(a.tos().unwrap(), 0x10);
        assert!(a.take_error().unwrap().is_none());
        let group = Ipv4Addr::new(239, 255, 0, 77);
        a.join_multicast_v4(group, Ipv4Addr::LOCALHOST).unwrap();
        a.leave_multicast_v4(group, Ipv4Addr::LOCALHOST).unwrap();
        let v6 = UdpSocket::bind("[::1]:0").await.unwrap();
        v6.set_multicast_loop_v6(true).unwrap();
        assert!(v6.multicast_loop_v6().unwrap());
        assert!(format!("{a:?}").contains("UdpSocket"));
    });
}

#[test]
fn from_std_and_into_std() {
    on_each_driver(1, |_| async {
        let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = std_sock.local_addr().unwrap();
        let sock = UdpSocket::from_std(std_sock).unwrap();
        let (other, other_addr) = bound().await;
        other.send_to(b"to std", addr).await.unwrap();
        let mut buf = [0; 8];
        let (n, from) = sock.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"to std"[..], other_addr));
        let std_sock = sock.into_std().unwrap();
        std_sock.set_nonblocking(false).unwrap();
        std_sock.send_to(b"from std", other_addr).unwrap();
        let (n, _) = other.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"from std");
        let again = UdpSocket::try_from(std_sock).unwrap();
        assert_eq!(again.local_addr().unwrap(), addr);
    });
}

/// An empty datagram is a datagram: sent as one, received as one of length
/// zero, and the next datagram is not merged into it (tokio's behaviour).
#[test]
fn empty_datagrams_are_delivered_as_such() {
    on_each_driver(1, |_| async {
        let (a, a_addr) = bound().await;
        let (b, b_addr) = bound().await;
        assert_eq!(a.send_to(&[], b_addr).await.unwrap(), 0);
        a.send_to(b"next", b_addr).await.unwrap();
        let mut buf = [0; 16];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((n, from), (0, a_addr));
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"next");
    });
}
