//! Owned-buffer operations over TCP and UDP on 127.0.0.1.

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::rc::Rc;

use insane_runtime::task::spawn_local;
use insane_uring::{Handle, IoBuf, op};
use socket2::{Domain, Socket, Type};

fn tcp_socket() -> Rc<Socket> {
    Rc::new(Socket::new(Domain::IPV4, Type::STREAM, None).unwrap())
}

#[test]
fn tcp_accept_connect_send_recv_read_write() {
    let rt = common::runtime();
    rt.block_on(async {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let server = spawn_local({
            let listener = listener.clone();
            async move {
                let (conn, peer) = op::accept(listener).await.unwrap();
                let conn = Rc::new(conn);
                // Echo one message with recv/send, one with read/write.
                let (r, buf) = op::recv(conn.clone(), Vec::with_capacity(64)).await;
                assert_eq!(r.unwrap(), 5);
                let (r, _) = op::send(conn.clone(), buf).await;
                assert_eq!(r.unwrap(), 5);
                let (r, buf) = op::read(conn.clone(), vec![0u8; 64].into_boxed_slice()).await;
                let n = r.unwrap();
                let (r, _) = op::write_all(conn.clone(), buf.slice(..n)).await;
                r.unwrap();
                peer
            }
        });
        let client = tcp_socket();
        op::connect(client.clone(), addr).await.unwrap();
        let (r, _) = op::send(client.clone(), b"hello".to_vec()).await;
        assert_eq!(r.unwrap(), 5);
        let (r, buf) = op::recv(client.clone(), Vec::with_capacity(64)).await;
        assert_eq!(r.unwrap(), 5);
        assert_eq!(buf, b"hello");
        let (r, _) = op::write(client.clone(), &b"world!"[..]).await;
        assert_eq!(r.unwrap(), 6);
        let (r, buf) = op::read(client.clone(), Vec::with_capacity(64)).await;
        assert_eq!(r.unwrap(), 6);
        assert_eq!(buf, b"world!");
        let peer = server.await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap().as_socket().unwrap());
        // EOF after the server dropped its connection.
        let (r, _) = op::recv(client.clone(), Vec::with_capacity(8)).await;
        assert_eq!(r.unwrap(), 0);
        assert_eq!(Handle::current().unwrap().ops_in_flight(), 0);
    });
}

#[test]
fn connect_refused_is_an_error() {
    let rt = common::runtime();
    rt.block_on(async {
        // A port nobody listens on: bind, learn the port, close.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let err = op::connect(tcp_socket(), addr).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        // Non-blocking socket too.
        let s = tcp_socket();
        s.set_nonblocking(true).unwrap();
        let err = op::connect(s, addr).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    });
}

#[test]
fn nonblocking_tcp_connect_and_accept() {
    let rt = common::runtime();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = Rc::new(listener);
        let accepted = spawn_local(op::accept(listener.clone()));
        let s = tcp_socket();
        s.set_nonblocking(true).unwrap();
        op::connect(s.clone(), addr).await.unwrap();
        let (fd, peer): (OwnedFd, SocketAddr) = accepted.await.unwrap().unwrap();
        assert_eq!(peer, s.local_addr().unwrap().as_socket().unwrap());
        let (r, _) = op::send_all(s.clone(), vec![7u8; 100_000]).await;
        r.unwrap();
        let fd = Rc::new(fd);
        let mut got = 0;
        while got < 100_000 {
            let (r, buf) = op::recv(fd.clone(), Vec::with_capacity(65536)).await;
            let n = r.unwrap();
            assert!(n > 0);
            assert!(buf.iter().all(|&b| b == 7));
            got += n;
        }
        assert_eq!(got, 100_000);
    });
}

#[test]
fn udp_send_to_recv_from_and_connected() {
    let rt = common::runtime();
    rt.block_on(async {
        let a = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let b = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        b.set_nonblocking(true).unwrap();
        let a_addr = a.local_addr().unwrap();
        let b_addr = b.local_addr().unwrap();

        // Receive first (pending), then send.
        let rx = spawn_local(op::recv_from(b.clone(), Vec::with_capacity(1500)));
        let (r, buf) = op::send_to(a.clone(), b"ping".to_vec(), b_addr).await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(buf, b"ping", "the buffer comes back");
        let (r, buf) = rx.await.unwrap();
        assert_eq!(r.unwrap(), (4, a_addr));
        assert_eq!(buf, b"ping");

        // Truncation of a datagram longer than the buffer.
        let (r, _) = op::send_to(b.clone(), vec![1u8; 100], a_addr).await;
        assert_eq!(r.unwrap(), 100);
        let (r, buf) = op::recv_from(a.clone(), Vec::with_capacity(10)).await;
        assert_eq!(r.unwrap().0, 10);
        assert_eq!(buf.len(), 10);

        // Connected sockets: send/recv without addresses.
        a.connect(b_addr).unwrap();
        b.connect(a_addr).unwrap();
        for i in 0..100u32 {
            let (r, _) = op::send(a.clone(), bytes::Bytes::copy_from_slice(&i.to_be_bytes())).await;
            assert_eq!(r.unwrap(), 4);
            let (r, buf) = op::recv(b.clone(), bytes::BytesMut::with_capacity(16)).await;
            assert_eq!(r.unwrap(), 4);
            assert_eq!(&buf[..], i.to_be_bytes());
        }
        assert_eq!(Handle::current().unwrap().ops_in_flight(), 0);
    });
}

#[test]
fn ops_outside_an_io_uring_core_fail_cleanly() {
    // No runtime at all.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let fut = op::recv(Rc::new(sock), Vec::with_capacity(8));
    let rt = insane_runtime::runtime::Runtime::builder()
        .cores(1)
        .build()
        .unwrap();
    // A runtime whose core has no io_uring driver.
    let (r, buf) = rt.block_on(fut);
    let err = r.unwrap_err();
    assert!(err.to_string().contains("no io_uring driver"), "{err}");
    assert_eq!(buf.capacity(), 8);
}
