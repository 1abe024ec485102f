//! The QoS stack transport ([`StackUdpTransport`]) on the in-memory
//! [`PairDevice`]: the device-independent part of the AF_XDP (and DPDK)
//! endpoints, run without privileges in every `cargo test`.
//!
//! Checks: device-frame `TxBuf`s and `RxBuf`s (zero copy: the copy
//! counter stays 0), received buffers dropped on another core return to
//! their device (a 4-frame receive pool would run dry otherwise), heap
//! buffers from elsewhere are sent (copied into a frame), the payload
//! limit is an error naming it, sends and receives made from another core
//! are forwarded to the home core, an endpoint dropped on another core is
//! unbound at home, and the host closes with its last endpoint.

use std::cell::Cell;
use std::future::poll_fn;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::transport::Op;
use insane_net::qos::transport::stack::StackUdpTransport;
use insane_net::qos::{RxBuf, Transport, TransportConfig, TxBuf, debug_copy_count};
use insane_net::stack::EthernetAddress;
use insane_net::stack::testing::{PairDevice, host};
use insane_runtime::runtime::{CoreHandle, Runtime};
use insane_runtime::task::spawn_on;
use insane_runtime::time::{sleep, timeout};

const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

type T = StackUdpTransport<PairDevice>;

async fn send(t: &T, buf: TxBuf, peer: SocketAddr) -> io::Result<()> {
    let mut op = Op::new();
    let mut buf = Some(buf);
    poll_fn(|cx| t.poll_send(cx, &mut buf, Some(peer), &mut op)).await
}

async fn recv(t: &T) -> io::Result<RxBuf> {
    let mut op = Op::new();
    let fut = poll_fn(|cx| t.poll_recv(cx, &mut op));
    timeout(Duration::from_secs(5), fut)
        .await
        .unwrap_or_else(|_| panic!("no datagram within 5 s"))
}

#[test]
fn stack_transport_on_a_pair_device() {
    let rt = Runtime::builder().cores(2).build().unwrap();
    rt.block_on(async {
        // The stack is polled by the core's loop, which must spin: every
        // stack transport keeps its home core spinning while it lives (no
        // guard of our own here, so this test proves it).
        let cfg = TransportConfig::default();
        let (a_dev, b_dev) = PairDevice::pair(MAC_A, MAC_B, 1500);
        b_dev.set_rx_pool(4);
        let a = Arc::new(
            T::bind("pair a", 5000, Kind::DpdkUdp, &cfg, || {
                Ok((host(a_dev, IP_A, (IP_B, MAC_B)), None))
            })
            .unwrap(),
        );
        let b = Arc::new(
            T::bind("pair b", 6000, Kind::DpdkUdp, &cfg, || {
                Ok((host(b_dev, IP_B, (IP_A, MAC_A)), None))
            })
            .unwrap(),
        );
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        assert_eq!(a_addr, SocketAddr::from((IP_A, 5000)));
        assert_eq!(a.max_payload(), 1472);
        assert_eq!(a.describe(), "in-memory test link (MTU 1500)");
        assert_eq!(a.home_core(), 0);

        // Device buffers both ways; every second received buffer dropped
        // on core 1. With 4 receive frames, 100 datagrams get through only
        // if those frames come home.
        let before = a.tx_available();
        for i in 0..100u32 {
            let mut buf = a.try_buffer().expect("a device buffer");
            assert_eq!(a.tx_available(), before - 1);
            assert_eq!(buf.capacity(), 1472);
            buf.extend_from_slice(&i.to_be_bytes()).unwrap();
            buf.resize(1 + (i as usize * 37) % 1472, i as u8).unwrap();
            let want = buf.to_vec();
            send(&a, buf, b_addr).await.unwrap();
            let msg = recv(&b).await.unwrap();
            assert!(msg.is_device_frame());
            assert_eq!(msg.peer(), a_addr);
            assert_eq!(&msg[..], &want[..], "datagram {i}");
            if i % 2 == 0 {
                spawn_on(1, async move { drop(msg) }).await.unwrap();
            }
        }
        assert_eq!(a.tx_available(), before);
        assert_eq!(debug_copy_count(), 0, "no userspace copy on receive");

        // A heap buffer (another endpoint's): copied into a frame.
        let mut heap = TxBuf::unpooled(0, 100);
        heap.extend_from_slice(b"from the heap").unwrap();
        send(&a, heap, b_addr).await.unwrap();
        assert_eq!(&recv(&b).await.unwrap()[..], b"from the heap");

        // Over the payload limit: an error naming it.
        let mut big = TxBuf::unpooled(0, 4000);
        big.resize(1473, 0).unwrap();
        let e = send(&a, big, b_addr).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("limit of 1472 bytes"), "{e}");
        let mut buf = a.try_buffer().unwrap();
        assert!(buf.resize(1473, 0).is_err());

        // From another core: the send and the receive run at home.
        let (a2, b2) = (a.clone(), b.clone());
        let got = spawn_on(1, async move {
            let mut buf = a2.try_buffer().unwrap();
            buf.extend_from_slice(b"from core 1").unwrap();
            send(&a2, buf, b_addr).await.unwrap();
            let msg = recv(&b2).await.unwrap();
            (
                msg.to_vec(),
                msg.peer(),
                CoreHandle::current().unwrap().index(),
            )
        })
        .await
        .unwrap();
        assert_eq!(got, (b"from core 1".to_vec(), a_addr, 1));

        // An endpoint dropped on another core is unbound at home: its
        // port can be bound again (the host stays: `a` still uses it).
        let opened = Rc::new(Cell::new(false));
        let c = T::bind("pair a", 5001, Kind::DpdkUdp, &cfg, || {
            opened.set(true);
            Err(io::Error::other("the host is open already"))
        })
        .unwrap();
        assert!(!opened.get());
        assert!(
            T::bind("pair a", 5001, Kind::DpdkUdp, &cfg, || unreachable!()).is_err(),
            "port 5001 is taken"
        );
        spawn_on(1, async move { drop(c) }).await.unwrap();
        let mut rebound = None;
        for _ in 0..100 {
            sleep(Duration::from_millis(1)).await;
            if let Ok(t) = T::bind("pair a", 5001, Kind::DpdkUdp, &cfg, || unreachable!()) {
                rebound = Some(t);
                break;
            }
        }
        assert!(rebound.is_some(), "port 5001 never unbound at home");

        // The last endpoint of host "a" gone: the host closes, and the
        // next bind opens it anew.
        drop((rebound, a));
        let opened = Rc::new(Cell::new(false));
        let e = T::bind("pair a", 5000, Kind::DpdkUdp, &cfg, || {
            opened.set(true);
            Err(io::Error::other("opening again"))
        })
        .unwrap_err();
        assert!(opened.get(), "{e}");
        drop(b);
    });
}

/// A device `TxBuf` written through `bytes::BufMut` and `io::Write`
/// (raw-pointer paths into the driver frame), sent by the stack and, from
/// another endpoint, by a kernel UDP endpoint (its bytes read in place).
#[test]
fn device_txbufs_through_bufmut_write_and_a_kernel_endpoint() {
    use bytes::BufMut;
    use insane_net::qos::{Endpoint, Qos};
    use std::io::Write;

    let rt = Runtime::builder()
        .cores(1)
        .on_core_start(Arc::new(|_| {
            insane_uring::install_on_current_core(&Default::default())
                .or_else(|_| insane_epoll::install_on_current_core())
        }))
        .build()
        .unwrap();
    rt.block_on(async {
        let _spin = CoreHandle::current().unwrap().hold_spin();
        let cfg = TransportConfig::default();
        let (a_dev, b_dev) = PairDevice::pair(MAC_A, MAC_B, 1500);
        let a = T::bind("bufmut a", 5000, Kind::DpdkUdp, &cfg, || {
            Ok((host(a_dev, IP_A, (IP_B, MAC_B)), None))
        })
        .unwrap();
        let b = T::bind("bufmut b", 6000, Kind::DpdkUdp, &cfg, || {
            Ok((host(b_dev, IP_B, (IP_A, MAC_A)), None))
        })
        .unwrap();

        let mut buf = a.try_buffer().unwrap();
        buf.put_u16(0xabcd);
        buf.put_slice(b"xyz");
        write!(buf, "-{}", 42).unwrap();
        buf.push(b'!').unwrap();
        assert_eq!(buf.remaining_mut(), 1472 - buf.len());
        assert_eq!(&buf[..], b"\xab\xcdxyz-42!");
        buf[2] = b'X';
        buf.truncate(9);
        send(&a, buf, b.local_addr().unwrap()).await.unwrap();
        let msg = recv(&b).await.unwrap();
        assert_eq!(&msg[..], b"\xab\xcdXyz-42!");
        // Filling a device buffer to the brim through BufMut stops there.
        let mut full = a.try_buffer().unwrap();
        full.put_bytes(7, 1472);
        assert_eq!(full.remaining_mut(), 0);
        assert!(full.push(1).is_err());
        assert_eq!(std::io::Write::write(&mut full, b"more").unwrap(), 0);
        drop(full);

        // A device buffer sent by a kernel endpoint: its bytes are read
        // in place from the frame.
        let qos = Qos::builder().best_effort().low().build();
        let tx = Endpoint::bind("127.0.0.1:0", qos).await.unwrap();
        let rx = Endpoint::bind("127.0.0.1:0", qos).await.unwrap();
        let mut buf = a.try_buffer().unwrap();
        buf.extend_from_slice(b"device bytes via the kernel")
            .unwrap();
        tx.send_to(buf, rx.local_addr().unwrap()).await.unwrap();
        let got = timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got[..], b"device bytes via the kernel");
        assert_eq!(
            a.tx_available(),
            cfg.tx_buffers,
            "every device buffer came back"
        );
    });
}

mod receive_entry {
    //! The receive path an AF_XDP (or DPDK) endpoint uses — frames taken
    //! by the core's stack reactor (`Interface::poll`), queued on the
    //! endpoint, handed out as device-frame `RxBuf`s — fed random and
    //! mutated frames: it never panics, delivers every intact datagram
    //! with its exact payload and sender, in order, and holds no frame
    //! once the buffers are dropped.

    use super::*;
    use insane_net::stack::testing::frames::udp_frame;
    use proptest::prelude::*;
    use std::net::SocketAddrV4;

    const PEER: SocketAddrV4 = SocketAddrV4::new(IP_B, 7000);
    const SENTINEL: &[u8] = b"end of case";

    #[derive(Debug, Clone)]
    enum Case {
        /// An intact UDP datagram to the endpoint.
        Valid(Vec<u8>),
        /// A UDP datagram to the endpoint with a byte changed or cut.
        Mutated(Vec<u8>, usize, u8, bool),
        /// Arbitrary bytes.
        Random(Vec<u8>),
    }

    fn case() -> impl Strategy<Value = Case> {
        let payload = proptest::collection::vec(any::<u8>(), 0..1473);
        prop_oneof![
            payload.clone().prop_map(Case::Valid),
            (payload, any::<usize>(), 1u8.., any::<bool>())
                .prop_map(|(p, at, x, cut)| Case::Mutated(p, at, x, cut)),
            proptest::collection::vec(any::<u8>(), 0..1600).prop_map(Case::Random),
        ]
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        udp_frame(MAC_B, MAC_A, PEER, SocketAddrV4::new(IP_A, 5000), payload)
    }

    fn run(cases: Vec<Case>) {
        let rt = Runtime::builder().cores(1).build().unwrap();
        rt.block_on(async move {
            let _spin = CoreHandle::current().unwrap().hold_spin();
            let (a_dev, raw) = PairDevice::pair(MAC_A, MAC_B, 1500);
            // Few receive frames: a leaked one would stop the flow.
            a_dev.set_rx_pool(4);
            let t = T::bind(
                "prop",
                5000,
                Kind::XdpUdp,
                &TransportConfig::default(),
                || Ok((host(a_dev, IP_A, (IP_B, MAC_B)), None)),
            )
            .unwrap();
            let mut intact = Vec::new();
            for (i, c) in cases.iter().enumerate() {
                let f = match c {
                    Case::Valid(p) => {
                        // Tagged, so that no surviving mutated datagram
                        // (tagged 'M') can pass for an intact one.
                        let mut tagged = vec![b'V', i as u8];
                        tagged.extend_from_slice(&p[..p.len().min(1470)]);
                        let f = frame(&tagged);
                        intact.push(tagged);
                        f
                    }
                    Case::Mutated(p, at, x, cut) => {
                        let mut tagged = vec![b'M'];
                        tagged.extend_from_slice(&p[..p.len().min(1471)]);
                        let mut f = frame(&tagged);
                        let at = at % f.len();
                        if *cut {
                            f.truncate(at);
                        } else {
                            f[at] ^= x;
                        }
                        f
                    }
                    Case::Random(bytes) => bytes.clone(),
                };
                raw.send_raw(f);
            }
            raw.send_raw(frame(SENTINEL));
            // Everything up to the sentinel, in order; mutated frames may
            // or may not survive (a flip in a byte no check covers).
            let mut next = 0;
            loop {
                let msg = recv(&t).await.unwrap();
                assert_eq!(msg.peer(), SocketAddr::V4(PEER));
                assert!(msg.is_device_frame());
                if &msg[..] == SENTINEL {
                    break;
                }
                if next < intact.len() && msg[..] == intact[next][..] {
                    next += 1;
                }
                assert!(msg.len() <= 1472);
            }
            assert_eq!(
                next,
                intact.len(),
                "every intact datagram delivered, in order"
            );
            // No frame held: 8 more datagrams pass through 4 frames.
            for i in 0..8u8 {
                raw.send_raw(frame(&[i; 8]));
                let msg = recv(&t).await.unwrap();
                assert_eq!(&msg[..], &[i; 8]);
            }
            assert_eq!(debug_copy_count(), 0);
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn random_and_mutated_frames_through_the_endpoint_receive_path(
            cases in proptest::collection::vec(case(), 0..24)
        ) {
            run(cases);
        }
    }
}
