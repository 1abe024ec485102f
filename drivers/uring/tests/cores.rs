//! The driver per core: busy-polling cores see completions without
//! parking, and every core of a runtime has its own ring.

mod common;

use std::future::Future;
use std::net::UdpSocket;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use insane_runtime::runtime::{IdlePolicy, Runtime};
use insane_uring::{Handle, UringConfig, op};

#[test]
fn busy_polling_core_sees_completions() {
    // Never parks: completions must arrive through `Reactor::poll` alone
    // (with DEFER_TASKRUN that needs the TASKRUN flag check).
    for idle in [
        IdlePolicy::Spin,
        IdlePolicy::SpinThenPark(Duration::from_micros(50)),
    ] {
        let rt = Runtime::builder()
            .cores(1)
            .idle(idle)
            .on_core_start(Arc::new(|_| {
                insane_uring::install_on_current_core(&UringConfig::default())
            }))
            .build()
            .unwrap();
        rt.block_on(async {
            let a = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
            let b = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
            a.connect(b.local_addr().unwrap()).unwrap();
            b.connect(a.local_addr().unwrap()).unwrap();
            let echo = insane_runtime::task::spawn_local({
                let b = b.clone();
                async move {
                    for _ in 0..500 {
                        let (r, buf) = op::recv(b.clone(), Vec::with_capacity(64)).await;
                        r.unwrap();
                        let (r, _) = op::send(b.clone(), buf).await;
                        r.unwrap();
                    }
                }
            });
            for i in 0..500u32 {
                let (r, _) = op::send(a.clone(), i.to_le_bytes().to_vec()).await;
                r.unwrap();
                let (r, buf) = op::recv(a.clone(), Vec::with_capacity(64)).await;
                assert_eq!(r.unwrap(), 4);
                assert_eq!(buf, i.to_le_bytes());
            }
            echo.await.unwrap();
        });
    }
}

#[test]
fn spinning_core_without_submissions_still_reaps() {
    // A receive is in flight and nothing else is submitted: with
    // DEFER_TASKRUN the completion only becomes visible through an enter
    // that the TASKRUN flag asks for.
    let rt = Runtime::builder()
        .cores(1)
        .idle(IdlePolicy::Spin)
        .on_core_start(Arc::new(|_| {
            insane_uring::install_on_current_core(&UringConfig::default())
        }))
        .build()
        .unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .send_to(b"late", addr)
            .unwrap();
    });
    let start = Instant::now();
    rt.block_on(async {
        let (r, buf) = op::recv(Rc::new(sock), Vec::with_capacity(16)).await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(buf, b"late");
    });
    assert!(start.elapsed() < Duration::from_secs(2));
    sender.join().unwrap();
}

#[test]
fn each_core_has_its_own_ring() {
    let rt = Runtime::builder()
        .cores(2)
        .idle(IdlePolicy::Park)
        .on_core_start(Arc::new(|_| {
            insane_uring::install_on_current_core(&UringConfig::default())
        }))
        .build()
        .unwrap();
    rt.block_on(async {
        let here = Handle::current().unwrap();
        let addr_rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = addr_rx.local_addr().unwrap();
        // Core 1 receives with its own driver while core 0 sends.
        let remote = insane_runtime::task::spawn_on(1, async move {
            insane_runtime::task::spawn_local(async move {
                let h = Handle::current().unwrap();
                let (r, buf) = op::recv_from(Rc::new(addr_rx), Vec::with_capacity(32)).await;
                let (n, _) = r.unwrap();
                (n, buf, h.ops_in_flight())
            })
            .await
            .unwrap()
        });
        let tx = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        // The receiver may not be armed yet: send until it answers.
        let mut remote = Box::pin(remote);
        let (n, buf, left) = loop {
            let (r, _) = op::send_to(tx.clone(), b"to core 1".to_vec(), addr).await;
            r.unwrap();
            let polled = std::future::poll_fn(|cx| Poll::Ready(remote.as_mut().poll(cx))).await;
            if let Poll::Ready(out) = polled {
                break out.unwrap();
            }
            std::thread::sleep(Duration::from_millis(5));
            insane_runtime::task::yield_now().await;
        };
        assert_eq!((n, &buf[..], left), (9, &b"to core 1"[..], 0));
        assert_eq!(here.ops_in_flight(), 0);
    });
}
