//! Provided-buffer rings with multishot receives: 1000 datagrams in
//! order, exhaustion (ENOBUFS) as backpressure, stream EOF, cancellation.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use insane_uring::Handle;
use insane_uring::bufring::BufRing;

fn supported() -> bool {
    let ok = insane_uring::probe()
        .map(|f| f.owned_recv_fast_path())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "buffer rings / multishot recv missing under CI"
        );
        println!("skipped: kernel lacks provided-buffer rings or multishot recv");
    }
    ok
}

#[test]
fn thousand_datagrams_through_a_buffer_ring_with_exhaustion() {
    if !supported() {
        return;
    }
    const N: u32 = 1000;
    const RING: u16 = 64;
    let rt = common::runtime();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rx_addr = rx.local_addr().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    // The sender stays at most 100 datagrams ahead, so the socket's queue
    // never overflows while the receiver holds every buffer.
    let sender = {
        let received = received.clone();
        std::thread::spawn(move || {
            let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
            let start = Instant::now();
            for i in 0..N {
                while i as usize >= received.load(Ordering::Acquire) + 100 {
                    assert!(
                        start.elapsed() < Duration::from_secs(20),
                        "receiver stalled at {i}"
                    );
                    std::thread::sleep(Duration::from_micros(200));
                }
                let mut msg = [0u8; 64];
                msg[..4].copy_from_slice(&i.to_le_bytes());
                tx.send_to(&msg, rx_addr).unwrap();
            }
        })
    };
    rt.block_on(async {
        let h = Handle::current().unwrap();
        let ring = BufRing::new(RING, 2048).unwrap();
        assert_eq!(ring.available(), usize::from(RING));
        let mut stream = ring.recv_stream(Rc::new(rx)).unwrap();
        let mut next = 0u32;
        let mut held = Vec::new();
        while next < N {
            let buf = stream
                .next()
                .await
                .expect("stream ended")
                .expect("receive failed");
            assert_eq!(buf.len(), 64);
            let seq = u32::from_le_bytes(buf[..4].try_into().unwrap());
            assert_eq!(seq, next, "lost or reordered datagram");
            next += 1;
            received.store(next as usize, Ordering::Release);
            if (100..100 + u32::from(RING)).contains(&seq) {
                // Hold every buffer of the ring: the kernel runs dry.
                held.push(buf);
                if held.len() == usize::from(RING) {
                    assert_eq!(ring.available(), 0);
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_millis(100) {
                        std::thread::sleep(Duration::from_millis(5));
                        insane_runtime::task::yield_now().await;
                    }
                    held.clear();
                }
            }
        }
        assert!(stream.enobufs_count() >= 1, "the ring never ran dry");
        drop(stream);
        common::wait_until("multishot receive cancelled", || h.ops_in_flight() == 0).await;
        assert_eq!(
            ring.available(),
            usize::from(RING),
            "every buffer came back"
        );
    });
    sender.join().unwrap();
}

#[test]
fn tcp_stream_through_the_default_ring_ends_with_none() {
    if !supported() {
        return;
    }
    let rt = common::runtime();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let writer = std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        for i in 0..100u8 {
            c.write_all(&[i; 1000]).unwrap();
        }
    });
    let (conn, _) = listener.accept().unwrap();
    rt.block_on(async {
        let ring = BufRing::for_current_core().unwrap();
        assert_eq!(ring.entries(), 256);
        assert_eq!(ring.buf_size(), 4096);
        let same = BufRing::for_current_core().unwrap();
        assert_eq!(same.group(), ring.group(), "one default ring per core");
        let mut stream = ring.recv_stream(Rc::new(conn)).unwrap();
        let mut all = Vec::new();
        while let Some(buf) = stream.next().await {
            all.extend_from_slice(&buf.unwrap());
        }
        assert_eq!(all.len(), 100_000);
        for (i, chunk) in all.chunks(1000).enumerate() {
            assert!(chunk.iter().all(|&b| b == i as u8));
        }
        assert!(stream.next().await.is_none(), "stays ended");
    });
    writer.join().unwrap();
}

/// Copies with `poll_copy` into `out` (up to `room` bytes per call),
/// waiting for the receive when nothing is there.
async fn copy_some<F: std::os::fd::AsRawFd + 'static>(
    stream: &mut insane_uring::bufring::RecvStream<F>,
    out: &mut Vec<u8>,
    room: usize,
    peek: bool,
) -> Option<std::io::Result<usize>> {
    std::future::poll_fn(|cx| {
        let mut left = room;
        stream.poll_copy(Some(cx), peek, &mut |b| {
            let n = b.len().min(left);
            out.extend_from_slice(&b[..n]);
            left -= n;
            n
        })
    })
    .await
}

#[test]
fn poll_copy_reads_a_byte_stream_across_buffers_peeks_and_ends_after_the_bytes() {
    if !supported() {
        return;
    }
    let rt = common::runtime();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"hello world").unwrap();
        go_rx.recv().unwrap();
        // Larger than one 1 KiB ring buffer: several completions.
        let bulk: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        c.write_all(&bulk).unwrap();
        // Closing ends the stream after these bytes.
    });
    let (conn, _) = listener.accept().unwrap();
    rt.block_on(async {
        let ring = BufRing::new(16, 1024).unwrap();
        let mut stream = ring.recv_stream(Rc::new(conn)).unwrap();
        let mut out = Vec::new();
        // A peek copies without consuming.
        let n = copy_some(&mut stream, &mut out, 5, true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((n, &out[..]), (5, &b"hello"[..]));
        out.clear();
        // A read with little room keeps the rest of the buffer...
        let n = copy_some(&mut stream, &mut out, 6, false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((n, &out[..]), (6, &b"hello "[..]));
        // ...which `poll_next` hands out as it is.
        let rest = stream.next().await.unwrap().unwrap();
        assert_eq!(&rest[..], b"world");
        drop(rest);
        go_tx.send(()).unwrap();
        // The bulk, then the end: bytes before the end come first.
        let mut bulk = Vec::new();
        loop {
            match copy_some(&mut stream, &mut bulk, 1500, false).await {
                Some(Ok(n)) => assert!(n > 0 && n <= 1500, "copied {n}"),
                Some(Err(e)) => panic!("receive failed: {e}"),
                None => break,
            }
        }
        let expected: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        assert_eq!(bulk, expected);
        assert!(stream.is_done());
        assert!(
            copy_some(&mut stream, &mut bulk, 10, false).await.is_none(),
            "stays ended"
        );
        assert_eq!(ring.available(), 16, "every buffer went back to the ring");
    });
    writer.join().unwrap();
}

#[test]
fn dropping_a_stream_cancels_it_and_keeps_the_ring_usable() {
    if !supported() {
        return;
    }
    let rt = common::runtime();
    rt.block_on(async {
        let h = Handle::current().unwrap();
        let ring = BufRing::new(8, 256).unwrap();
        let sock = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr = sock.local_addr().unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        {
            let mut stream = ring.recv_stream(sock.clone()).unwrap();
            peer.send_to(b"one", addr).unwrap();
            let b = stream.next().await.unwrap().unwrap();
            assert_eq!(&b[..], b"one");
            // Queue more than we read, then drop the stream with them.
            peer.send_to(b"two", addr).unwrap();
            peer.send_to(b"three", addr).unwrap();
            for _ in 0..20 {
                std::thread::sleep(Duration::from_millis(1));
                insane_runtime::task::yield_now().await;
            }
            drop(b);
        }
        common::wait_until("stream cancelled", || h.ops_in_flight() == 0).await;
        common::wait_until("buffers back", || ring.available() == 8).await;
        common::wait_until("fd guard released after the final completion", || {
            Rc::strong_count(&sock) == 1
        })
        .await;

        let mut stream = ring.recv_stream(sock.clone()).unwrap();
        peer.send_to(b"four", addr).unwrap();
        let b = stream.next().await.unwrap().unwrap();
        assert_eq!(&b[..], b"four");
    });
}

#[test]
fn zero_length_datagram_does_not_end_a_udp_stream() {
    if !supported() {
        return;
    }
    let rt = common::runtime();
    rt.block_on(async {
        let ring = BufRing::new(4, 128).unwrap();
        let sock = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr = sock.local_addr().unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut stream = ring.recv_stream(sock).unwrap();
        peer.send_to(b"", addr).unwrap();
        peer.send_to(b"after", addr).unwrap();
        let a = stream.next().await.unwrap().unwrap();
        assert!(a.is_empty());
        let b = stream.next().await.unwrap().unwrap();
        assert_eq!(&b[..], b"after");
    });
}
