//! Receive priority on the userspace stack (issue 19), on the in-memory
//! [`PairDevice`]: the frames of one device burst are queued on their
//! endpoints in one poll of the core's stack reactor, and with the
//! runtime's priority on, the critical receiver runs before the bulk one
//! even when its datagram came last in the burst; and a waiting critical
//! receiver looks at the device itself between two normal tasks, so its
//! datagram does not wait for the end of the core's turn. Counts the
//! order of the receives and the polls of a busy normal task, never time.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;

use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::transport::Op;
use insane_net::qos::transport::stack::{OpenedHost, StackUdpTransport};
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

/// A one-core runtime with the priority switch at `priority`.
fn runtime(priority: bool) -> Runtime {
    Runtime::builder()
        .cores(1)
        .priority(priority)
        .build()
        .expect("runtime")
}

/// Opens end `a` of a pair device as a stack host at `IP_A` (which knows
/// `IP_B`'s MAC address): the opener of the first bind on it.
fn host_on(a: PairDevice) -> impl FnOnce() -> io::Result<OpenedHost<PairDevice>> {
    move || Ok((host(a, IP_A, (IP_B, MAC_B)), None))
}

/// The order in which a bulk receiver (a normal task) and a critical
/// receiver (a critical task), both waiting, get the datagrams of one
/// device burst: `BULK` bulk datagrams, then one critical datagram.
fn receive_order(priority: bool) -> Vec<&'static str> {
    runtime(priority).block_on(async {
        let cfg = TransportConfig::default();
        let (a_dev, b_dev) = PairDevice::pair(MAC_A, MAC_B, 1500);
        let open = host_on(a_dev);
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

/// How many polls a busy normal task (one that wakes itself on every
/// poll) made between the arrival of a critical datagram on the device and
/// the critical receiver, waiting since before, getting it.
fn normal_polls_before_the_critical_datagram_is_received(priority: bool) -> u32 {
    runtime(priority).block_on(async {
        let cfg = TransportConfig::default();
        let (a_dev, b_dev) = PairDevice::pair(MAC_A, MAC_B, 1500);
        let open = host_on(a_dev);
        let crit = Rc::new(T::bind("spin", CRITICAL_PORT, Kind::DpdkUdp, &cfg, open).unwrap());
        // Polls of the busy task since the datagram arrived, and their
        // number when it was received.
        let since_arrival = Rc::new(Cell::new(None::<u32>));
        let at_receipt = Rc::new(Cell::new(None::<u32>));
        let crit_rx = task::Builder::new()
            .latency(Latency::Critical)
            .spawn_local({
                let (since, at) = (since_arrival.clone(), at_receipt.clone());
                async move {
                    recv_one(&crit, b"critical").await;
                    at.set(since.get());
                }
            })
            .unwrap();
        let busy = task::spawn_local({
            let (since, at) = (since_arrival.clone(), at_receipt.clone());
            async move {
                // Bounded: the datagram is received within one turn of
                // the core either way.
                for poll in 0..10_000_u32 {
                    if at.get().is_some() {
                        return;
                    }
                    match since.get() {
                        Some(n) => since.set(Some(n + 1)),
                        // Arrives after the receiver has waited a while.
                        None if poll == 100 => {
                            since.set(Some(0));
                            b_dev.send_raw(udp_frame(
                                MAC_B,
                                MAC_A,
                                SocketAddrV4::new(IP_B, 7000),
                                SocketAddrV4::new(IP_A, CRITICAL_PORT),
                                b"critical",
                            ));
                        }
                        None => {}
                    }
                    task::yield_now().await;
                }
                panic!("the critical datagram was never received");
            }
        });
        crit_rx.await.unwrap();
        busy.await.unwrap();
        at_receipt.get().expect("received")
    })
}

#[test]
fn a_waiting_critical_receiver_gets_its_datagram_after_at_most_one_normal_task() {
    // It looks at the device on each pass over the critical tasks, and a
    // normal task runs between two passes.
    let polls = normal_polls_before_the_critical_datagram_is_received(true);
    assert!(polls <= 1, "{polls} polls of the normal task");
}

#[test]
fn without_priority_a_critical_receiver_waits_for_the_cores_poll_of_the_stack() {
    // Its datagram is queued on it at the core's next poll of the stack,
    // which comes after the rest of the core's turn: many polls of the
    // busy task.
    let polls = normal_polls_before_the_critical_datagram_is_received(false);
    assert!(polls > 1, "{polls} polls of the normal task");
}
