//! The feature probe, SQPOLL policy and setup errors.

mod common;

use std::net::UdpSocket;
use std::rc::Rc;

use insane_uring::{Driver, Handle, UringConfig, op};

#[test]
fn probe_works_without_a_runtime() {
    let f = insane_uring::probe().expect("io_uring probe");
    println!("{f}");
    println!("{f:#?}");
    assert!(
        f.poll_add && f.async_cancel,
        "POLL_ADD and ASYNC_CANCEL are the minimum"
    );
    assert!(f.sq_entries >= 8);
    assert!(f.allowed_cpus >= 1);
    assert!(!f.kernel_release.is_empty());
}

#[test]
fn driver_reports_the_same_opcodes_as_the_probe() {
    let probed = insane_uring::probe().unwrap();
    let rt = common::runtime();
    let f = rt.block_on(async { Handle::current().unwrap().features().clone() });
    assert_eq!(f.send_zc, probed.send_zc);
    assert_eq!(f.recv_multishot, probed.recv_multishot);
    assert_eq!(f.provided_buffer_ring, probed.provided_buffer_ring);
    assert_eq!(f.msg_ring, probed.msg_ring);
    assert_eq!(f.poll_add_multishot, probed.poll_add_multishot);
    assert_eq!(f.defer_taskrun, probed.defer_taskrun);
    assert_eq!(f.sq_entries, 256);
    assert!(!f.sqpoll);
}

#[test]
fn sqpoll_is_refused_on_one_cpu() {
    let cfg = UringConfig {
        sqpoll: true,
        ..Default::default()
    };
    let err = Driver::with_cpu_count(&cfg, || Ok(1)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    let msg = err.to_string();
    assert!(
        msg.contains("SQPOLL refused") && msg.contains("1 CPU"),
        "{msg}"
    );
    // The count function is only consulted for SQPOLL... and must not be
    // needed to succeed otherwise.
    let plain =
        Driver::with_cpu_count(&UringConfig::default(), || Ok(1)).expect("no SQPOLL, no check");
    assert!(!plain.features().sqpoll);
    assert_eq!(plain.features().allowed_cpus, 1);
}

#[test]
fn bad_ring_size_is_a_clear_error() {
    let cfg = UringConfig {
        entries: 0,
        ..Default::default()
    };
    let err = Driver::new(&cfg).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("1..=32768"), "{err}");
}

#[test]
fn sqpoll_works_with_two_cpus() {
    let cpus = insane_uring::allowed_cpu_count().unwrap();
    if cpus < 2 {
        println!("skipped: only {cpus} CPU allowed");
        return;
    }
    let rt = common::runtime_with(UringConfig {
        sqpoll: true,
        sqpoll_idle: std::time::Duration::from_millis(20),
        ..Default::default()
    });
    rt.block_on(async {
        let h = Handle::current().unwrap();
        assert!(h.features().sqpoll);
        assert!(!h.features().defer_taskrun);
        let a = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let b = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        for i in 0..50u32 {
            let (r, _) =
                op::send_to(a.clone(), i.to_le_bytes().to_vec(), b.local_addr().unwrap()).await;
            assert_eq!(r.unwrap(), 4);
            let (r, buf) = op::recv_from(b.clone(), Vec::with_capacity(16)).await;
            let (n, from) = r.unwrap();
            assert_eq!((n, from), (4, a.local_addr().unwrap()));
            assert_eq!(buf, i.to_le_bytes());
            if i % 10 == 0 {
                // Let the SQ thread fall asleep, so the wake-up path runs.
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
        }
    });
}
