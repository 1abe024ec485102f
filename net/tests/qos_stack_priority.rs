//! Receive priority on the userspace stack (issue 19), on the in-memory
//! [`PairDevice`]: the frames of one device burst are queued on their
//! endpoints in one poll of the core's stack reactor, and with the
//! runtime's priority on, the critical receiver runs before the bulk one
//! even when its datagram came last in the burst. Counts the order of the
//! receives, never time.

use std::cell::RefCell;
use std::future::poll_fn;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;

use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::transport::Op;
use insane_net::qos::transport::stack::StackUdpTransport;
use insane_net::qos::{Transport, TransportConfig};
use insane_net::stack::EthernetAddress;
use insane_net::stack::testing::frames::udp_frame;
use insane_net::stack::testing::{PairDevice, host};
use insane_runtime::runtime::Runtime;
use insane_runtime::task::{self, Latency};

const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const BULK_PORT: u16 = 5001;
const CRITICAL_PORT: u16 = 5002;
/// Bulk datagrams ahead of the critical one in the burst (within one
/// device burst: the stack takes 32 frames per poll).
const BULK: usize = 16;

type T = StackUdpTransport<PairDevice>;

/// Receives one datagram (payload checked) on `t`.
async fn recv_one(t: &T, want: &[u8]) {
    let mut op = Op::new();
    let msg = poll_fn(|cx| t.poll_recv(cx, &mut op)).await.expect("recv");
    assert_eq!(&msg[..], want);
}

/// The order in which a bulk receiver (a normal task) and a critical
/// receiver (a critical task), both waiting, get the datagrams of one
/// device burst: `BULK` bulk datagrams, then one critical datagram.
fn receive_order(priority: bool) -> Vec<&'static str> {
    let rt = Runtime::builder()
        .cores(1)
        .priority(priority)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cfg = TransportConfig::default();
        let (a_dev, b_dev) = PairDevice::pair(MAC_A, MAC_B, 1500);
        let open = || Ok((host(a_dev, IP_A, (IP_B, MAC_B)), None));
        // One host: the second bind reuses it.
        let bulk = Rc::new(T::bind("burst", BULK_PORT, Kind::DpdkUdp, &cfg, open).unwrap());
        let crit = Rc::new(
            T::bind("burst", CRITICAL_PORT, Kind::DpdkUdp, &cfg, || {
                unreachable!("the host is open")
            })
            .unwrap(),
        );
        let log = Rc::new(RefCell::new(Vec::new()));
        let bulk_rx = task::spawn_local({
            let (bulk, log) = (bulk.clone(), log.clone());
            async move {
                for _ in 0..BULK {
                    recv_one(&bulk, b"bulk").await;
                    log.borrow_mut().push("bulk");
                }
            }
        });
        let crit_rx = task::Builder::new()
            .latency(Latency::Critical)
            .spawn_local({
                let (crit, log) = (crit.clone(), log.clone());
                async move {
                    recv_one(&crit, b"critical").await;
                    log.borrow_mut().push("critical");
                }
            })
            .unwrap();
        // Both receivers wait before anything arrives.
        task::yield_now().await;
        task::yield_now().await;
        assert!(log.borrow().is_empty());
        let frame = |port: u16, payload: &[u8]| {
            udp_frame(
                MAC_B,
                MAC_A,
                SocketAddrV4::new(IP_B, 7000),
                SocketAddrV4::new(IP_A, port),
                payload,
            )
        };
        for _ in 0..BULK {
            b_dev.send_raw(frame(BULK_PORT, b"bulk"));
        }
        b_dev.send_raw(frame(CRITICAL_PORT, b"critical"));
        bulk_rx.await.unwrap();
        crit_rx.await.unwrap();
        Rc::try_unwrap(log).unwrap().into_inner()
    })
}

#[test]
fn a_bursts_critical_datagram_is_received_before_the_bulk_ones_ahead_of_it() {
    let order = receive_order(true);
    assert_eq!(order.len(), BULK + 1);
    assert_eq!(order[0], "critical", "{order:?}");
}

#[test]
fn without_priority_the_critical_datagram_waits_behind_the_bulk_receiver() {
    // The switch is what orders them: in wake order, the bulk receiver
    // (woken first, by the first frame of the burst) takes every bulk
    // datagram queued for it before the critical receiver runs.
    let order = receive_order(false);
    assert_eq!(order.len(), BULK + 1);
    assert_eq!(order[BULK], "critical", "{order:?}");
}
