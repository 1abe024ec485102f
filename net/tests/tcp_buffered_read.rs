//! Reads of bytes that arrived before the read, on both kernel drivers.
//!
//! On io_uring a `TcpStream` that once had to wait for data receives in
//! the background (a multishot receive into the core's buffer ring) and
//! its reads copy what is already there; on epoll every read is a
//! `recv(2)`. Either way the application sees tokio's behaviour, which is
//! what these tests state.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::on_each_driver;
use insane_net::{RecvPool, TcpListener, TcpStream};
use insane_runtime::task::{spawn, spawn_on};
use insane_runtime::time::sleep;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};

/// Time for bytes sent on loopback to reach the receiver (and its
/// driver) while the core goes on.
const ARRIVAL: Duration = Duration::from_millis(50);

async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = l.local_addr().unwrap();
    let (c, s) = futures::join!(TcpStream::connect(addr), l.accept());
    (c.unwrap(), s.unwrap().0)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Polls `fut` once: its output if it did not have to wait.
fn poll_once<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Reads once so that the stream has waited (on io_uring: the receive
/// is armed), with `first` sent by the peer to end the wait.
async fn wait_for_first_bytes(rx: &mut TcpStream, tx: &mut TcpStream, first: &[u8]) {
    let mut buf = vec![0; first.len()];
    let read = async {
        rx.read_exact(&mut buf).await.unwrap();
    };
    let write = async {
        sleep(Duration::from_millis(5)).await;
        tx.write_all(first).await.unwrap();
    };
    futures::join!(read, write);
    assert_eq!(buf, first);
}

#[test]
fn a_read_after_the_data_arrived_returns_it_at_once() {
    on_each_driver(1, |driver| async move {
        let (mut c, mut s) = pair().await;
        wait_for_first_bytes(&mut s, &mut c, b"first").await;
        c.write_all(b"second").await.unwrap();
        sleep(ARRIVAL).await;
        if driver == "uring" {
            let ring = RecvPool::for_current_core().unwrap();
            assert_eq!(
                ring.available(),
                usize::from(ring.entries()) - 1,
                "on io_uring the bytes wait in one buffer of the core's ring"
            );
        }
        let mut buf = [0; 16];
        let n = poll_once(s.read(&mut buf))
            .expect("the bytes were there: the read must not wait")
            .unwrap();
        assert_eq!(&buf[..n], b"second");
        // try_read and readable() see the same bytes.
        c.write_all(b"third").await.unwrap();
        sleep(ARRIVAL).await;
        poll_once(s.readable())
            .expect("readable while bytes are there")
            .unwrap();
        let ready = poll_once(s.ready(Interest::READABLE))
            .expect("ready while bytes are there")
            .unwrap();
        assert!(ready.is_readable());
        let n = s.try_read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"third");
        assert_eq!(
            s.try_read(&mut buf).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock,
            "nothing more to read"
        );
    });
}

#[test]
fn small_reads_take_a_large_message_in_order() {
    on_each_driver(1, |_| async {
        let (mut c, mut s) = pair().await;
        wait_for_first_bytes(&mut s, &mut c, b"go").await;
        // Larger than one ring buffer (4 KiB): it spans several.
        let data = pattern(10_000);
        c.write_all(&data).await.unwrap();
        sleep(ARRIVAL).await;
        let mut got = Vec::new();
        let mut sizes = [7usize, 3000, 1, 4096, 5000].into_iter().cycle();
        while got.len() < data.len() {
            let mut buf = vec![0; sizes.next().unwrap()];
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "no end of stream before the message ends");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == data, "bytes differ");
    });
}

#[test]
fn a_large_read_takes_every_buffered_message() {
    on_each_driver(1, |_| async {
        let (mut c, mut s) = pair().await;
        wait_for_first_bytes(&mut s, &mut c, b"go").await;
        for i in 0..10u8 {
            c.write_all(&[i; 100]).await.unwrap();
        }
        sleep(ARRIVAL).await;
        let mut buf = vec![0; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert_eq!(n, 1000, "one read returns all ten messages");
        for i in 0..10u8 {
            assert!(buf[i as usize * 100..][..100].iter().all(|&b| b == i));
        }
    });
}

#[test]
fn end_of_stream_comes_after_the_buffered_bytes() {
    on_each_driver(1, |_| async {
        let (mut c, mut s) = pair().await;
        wait_for_first_bytes(&mut s, &mut c, b"go").await;
        c.write_all(b"last words").await.unwrap();
        c.shutdown().await.unwrap();
        sleep(ARRIVAL).await;
        let mut buf = [0; 4];
        let mut got = Vec::new();
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"last words");
        assert_eq!(s.read(&mut buf).await.unwrap(), 0, "end of stream stays");
        let ready = s.ready(Interest::READABLE).await.unwrap();
        assert!(
            ready.is_readable(),
            "a read at end of stream does not block"
        );
        // The write half still works after the peer's half-close.
        s.write_all(b"bye").await.unwrap();
        let mut bye = [0; 3];
        c.read_exact(&mut bye).await.unwrap();
        assert_eq!(&bye, b"bye");
    });
}

#[test]
fn peek_shows_the_bytes_the_next_read_returns() {
    on_each_driver(1, |_| async {
        let (mut c, mut s) = pair().await;
        wait_for_first_bytes(&mut s, &mut c, b"go").await;
        c.write_all(b"hello world").await.unwrap();
        sleep(ARRIVAL).await;
        let mut peeked = [0; 5];
        let n = s.peek(&mut peeked).await.unwrap();
        assert_eq!(&peeked[..n], &b"hello"[..n]);
        let n2 = s.peek(&mut peeked).await.unwrap();
        assert_eq!(n2, n, "peeking twice consumes nothing");
        let mut all = [0; 11];
        s.read_exact(&mut all).await.unwrap();
        assert_eq!(&all, b"hello world");
        // Peek waits for new bytes like a read.
        let peek = async {
            let mut b = [0; 8];
            let n = s.peek(&mut b).await.unwrap();
            b[..n].to_vec()
        };
        let write = async {
            sleep(Duration::from_millis(5)).await;
            c.write_all(b"next").await.unwrap();
        };
        let (seen, ()) = futures::join!(peek, write);
        assert_eq!(seen, b"next");
        let mut next = [0; 4];
        s.read_exact(&mut next).await.unwrap();
        assert_eq!(&next, b"next");
    });
}

#[test]
fn split_halves_read_buffered_bytes() {
    on_each_driver(1, |_| async {
        let (mut c, mut s) = pair().await;
        wait_for_first_bytes(&mut s, &mut c, b"go").await;
        c.write_all(b"to the borrowed half").await.unwrap();
        sleep(ARRIVAL).await;
        {
            let (mut rd, mut wr) = s.split();
            let mut buf = [0; 20];
            rd.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"to the borrowed half");
            wr.write_all(b"ok").await.unwrap();
        }
        c.write_all(b"to the owned half").await.unwrap();
        sleep(ARRIVAL).await;
        let (mut rd, wr) = s.into_split();
        let mut buf = [0; 17];
        rd.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"to the owned half");
        let mut s = rd.reunite(wr).unwrap();
        c.write_all(b"reunited").await.unwrap();
        let mut buf = [0; 8];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"reunited");
        let mut ok = [0; 2];
        c.read_exact(&mut ok).await.unwrap();
        assert_eq!(&ok, b"ok");
    });
}

/// Far more than the core's receive ring holds (256 buffers of 4 KiB by
/// default): the ring runs out while the reader sleeps.
const FLOOD: usize = 3 << 20;

#[test]
fn a_flood_that_exhausts_the_ring_arrives_whole_and_in_order() {
    on_each_driver(1, |driver| async move {
        let (mut c, mut s) = pair().await;
        let (mut c2, mut s2) = pair().await;
        wait_for_first_bytes(&mut s, &mut c, b"go").await;
        wait_for_first_bytes(&mut s2, &mut c2, b"go").await;
        let data = pattern(FLOOD);
        let sent = data.clone();
        let writer = spawn(async move {
            c.write_all(&sent).await.unwrap();
            c.shutdown().await.unwrap();
            c
        });
        // The reader does not read for a while: its bytes fill whatever
        // the kernel and the ring hold, and the writer waits.
        sleep(Duration::from_millis(200)).await;
        if driver == "uring" {
            let ring = RecvPool::for_current_core().unwrap();
            assert_eq!(ring.available(), 0, "the flood holds every ring buffer");
        }
        // Another stream of the core still reads meanwhile.
        c2.write_all(b"not starved").await.unwrap();
        let mut other = [0; 11];
        s2.read_exact(&mut other).await.unwrap();
        assert_eq!(&other, b"not starved");
        let mut got = Vec::with_capacity(FLOOD);
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), data.len(), "no byte lost");
        assert!(got == data, "bytes in order");
        drop(writer.await.unwrap());
        // And the stream reads normally afterwards.
        c2.write_all(b"after").await.unwrap();
        let mut after = [0; 5];
        s2.read_exact(&mut after).await.unwrap();
        assert_eq!(&after, b"after");
    });
}

#[test]
fn a_stream_moved_to_another_core_keeps_its_buffered_bytes() {
    on_each_driver(2, |_| async {
        let (mut c, mut s) = pair().await;
        // Waits (and on io_uring arms its receive) on core 0 ...
        wait_for_first_bytes(&mut s, &mut c, b"on core 0").await;
        c.write_all(b"received on core 0, ").await.unwrap();
        sleep(ARRIVAL).await;
        // ... and is read on core 1, where more bytes follow.
        let reader = spawn_on(1, async move {
            let mut buf = [0; 34];
            s.read_exact(&mut buf).await.unwrap();
            buf
        });
        sleep(ARRIVAL).await;
        c.write_all(b"read on core 1").await.unwrap();
        let buf = reader.await.unwrap();
        assert_eq!(&buf, b"received on core 0, read on core 1");
    });
}

#[test]
fn dropping_an_armed_stream_closes_the_connection() {
    on_each_driver(1, |_| async {
        let (mut c, mut s) = pair().await;
        wait_for_first_bytes(&mut s, &mut c, b"go").await;
        c.write_all(b"unread").await.unwrap();
        sleep(ARRIVAL).await;
        drop(s);
        let mut buf = [0; 8];
        // The peer sees the connection end (RST, because bytes were
        // unread, or FIN): never a hang.
        let res = c.read(&mut buf).await;
        assert!(matches!(res, Ok(0) | Err(_)), "{res:?}");
    });
}

#[test]
fn into_std_after_reads_gives_a_working_socket() {
    on_each_driver(1, |_| async {
        let (mut c, mut s) = pair().await;
        wait_for_first_bytes(&mut s, &mut c, b"go").await;
        let std = s.into_std().unwrap();
        std.set_nonblocking(false).unwrap();
        c.write_all(b"to std").await.unwrap();
        let got = insane_runtime::task::spawn_blocking(move || {
            use std::io::Read;
            let mut std = std;
            let mut buf = [0; 6];
            std.read_exact(&mut buf).map(|()| buf)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(&got, b"to std");
    });
}
