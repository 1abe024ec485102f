//! Timers with the io_uring driver: an idle core parks in the ring until
//! the next timer is due, and a timed-out operation is cancelled cleanly.

mod common;

use std::net::UdpSocket;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use insane_runtime::time;
use insane_uring::{Handle, op};

#[test]
fn sleeping_core_parks_in_the_ring_until_the_timer() {
    let rt = common::runtime();
    rt.block_on(async {
        for ms in [1u64, 20, 50] {
            let start = Instant::now();
            time::sleep(Duration::from_millis(ms)).await;
            let took = start.elapsed();
            assert!(
                took >= Duration::from_millis(ms),
                "{ms} ms sleep took {took:?}"
            );
            assert!(
                took < Duration::from_millis(ms + 500),
                "{ms} ms sleep took {took:?}"
            );
        }
    });
}

#[test]
fn timed_out_receive_is_cancelled_and_freed_once() {
    let rt = common::runtime();
    rt.block_on(async {
        let h = Handle::current().unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let sock = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let start = Instant::now();
        let r = time::timeout(
            Duration::from_millis(50),
            op::recv(sock.clone(), common::CountedBuf::new(64, &drops)),
        )
        .await;
        assert!(r.is_err(), "nobody sends: must time out");
        assert!(start.elapsed() >= Duration::from_millis(50));
        common::wait_until("cancelled", || h.ops_in_flight() == 0).await;
        common::wait_until("freed", || drops.load(Ordering::SeqCst) == 1).await;
        // A timer firing while an operation is pending elsewhere.
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(80));
            peer.send_to(b"late", addr).unwrap();
        });
        let recv = insane_runtime::task::spawn_local(op::recv(sock.clone(), Vec::with_capacity(8)));
        time::sleep(Duration::from_millis(20)).await;
        assert!(!recv.is_finished());
        let (r, buf) = recv.await.unwrap();
        assert_eq!(r.unwrap(), 4);
        assert_eq!(buf, b"late");
        t.join().unwrap();
    });
}
