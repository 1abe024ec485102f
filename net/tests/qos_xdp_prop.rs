//! Property test of the real AF_XDP receive entry: random and mutated
//! frames are injected into A's veth from B with a raw packet socket, go
//! through the XDP program (which steers them to the AF_XDP socket or the
//! kernel) and insane's stack, and reach a QoS endpoint. Whatever the
//! bytes, nothing panics, every intact datagram arrives with its exact
//! payload, in order, and the endpoint keeps working (no UMEM frame is
//! lost: 4000 datagrams follow at the end).
//!
//! One pair of namespaces for all cases. Run as root; under `CI=true` a
//! missing capability fails the test, otherwise it is skipped with the
//! reason.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use insane_net::config::Config;
use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::{Endpoint, Qos, TransportConfig, debug_copy_count};
use insane_net::stack::EthernetAddress;
use insane_net::stack::testing::frames::udp_frame;
use insane_runtime::runtime::Runtime;
use insane_runtime::time::timeout;
use insane_testhosts::TestHosts;
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};

const PORT: u16 = 7500;
const SENTINEL: &[u8] = b"end of case";
const DONE: &[u8] = b"done";

#[derive(Debug, Clone)]
enum Case {
    /// An intact UDP datagram to the endpoint.
    Valid(Vec<u8>),
    /// A datagram to the endpoint with one byte changed or the frame cut.
    Mutated(Vec<u8>, usize, u8, bool),
    /// Arbitrary bytes (at least an Ethernet header's worth, to A's MAC).
    Random(Vec<u8>),
}

fn case() -> impl Strategy<Value = Case> {
    let payload = proptest::collection::vec(any::<u8>(), 0..1400);
    prop_oneof![
        payload.clone().prop_map(Case::Valid),
        (payload, any::<usize>(), 1u8.., any::<bool>())
            .prop_map(|(p, at, x, cut)| Case::Mutated(p, at, x, cut)),
        proptest::collection::vec(any::<u8>(), 0..1500).prop_map(Case::Random),
    ]
}

/// An AF_PACKET socket on `ifname` (in the caller's namespace) sending
/// raw frames.
struct Injector {
    fd: i32,
    sll: libc::sockaddr_ll,
}

impl Injector {
    fn open(ifname: &str) -> Injector {
        // SAFETY: plain socket creation; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            )
        };
        assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
        let name = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: `name` is NUL-terminated.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(ifindex > 0, "{ifname} not found");
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        sll.sll_halen = 6;
        Injector { fd, sll }
    }

    fn send(&self, frame: &[u8]) {
        if frame.len() < 14 {
            return; // not a frame the link can carry
        }
        // SAFETY: `frame` and `sll` are live for the call, lengths match.
        let rc = unsafe {
            libc::sendto(
                self.fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&self.sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(
            rc,
            frame.len() as isize,
            "AF_PACKET sendto: {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        // SAFETY: `fd` is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}

#[test]
fn random_and_mutated_frames_through_xdp_into_an_endpoint() {
    if !TestHosts::require("random_and_mutated_frames_through_xdp_into_an_endpoint") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let (a, b) = (hosts.iface(0, 0).clone(), hosts.iface(1, 0).clone());
    let o = a.addr.octets();
    let ip = Ipv4Addr::new(o[0], o[1], o[2], 100);
    let stack = SocketAddrV4::new(ip, PORT);
    let peer = SocketAddrV4::new(b.addr, 7501);
    let config = Config::from_toml_str(
        &format!(
            "[xdp]\ninterface = \"{}\"\nqueue = 0\naddress = \"{ip}/24\"\n",
            a.name
        ),
        "test config",
    )
    .unwrap();

    // A: the endpoint forwards every payload it receives until DONE.
    let (got_tx, got_rx) = mpsc::channel::<Vec<u8>>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let receiver = hosts.spawn_in(0, move || {
        let rt = Runtime::builder()
            .cores(1)
            .on_core_start(Arc::new(|_| {
                insane_uring::install_on_current_core(&Default::default())
                    .or_else(|_| insane_epoll::install_on_current_core())
            }))
            .build()
            .unwrap();
        rt.block_on(async move {
            let qos = Qos::builder().critical().best_effort().poll().build();
            let ep = Endpoint::bind_with_config(
                SocketAddr::V4(stack),
                qos,
                TransportConfig::default(),
                &config,
            )
            .await
            .unwrap();
            assert_eq!(ep.driver(), Kind::XdpUdp, "{}", ep.explain());
            ready_tx.send(()).unwrap();
            loop {
                let Ok(msg) = timeout(Duration::from_secs(30), ep.recv()).await else {
                    panic!("no datagram for 30 s ({:?})", ep.transport().diagnostics());
                };
                let msg = msg.unwrap();
                assert_eq!(msg.peer(), SocketAddr::V4(peer));
                assert!(msg.is_device_frame());
                if &msg[..] == DONE {
                    break;
                }
                got_tx.send(msg.to_vec()).unwrap();
            }
            (debug_copy_count(), ep.transport().diagnostics())
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(20)).unwrap();

    // B: a thread in B's namespace sends the frames it is given.
    let (frames_tx, frames_rx) = mpsc::channel::<Vec<Vec<u8>>>();
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let ifname = b.name.clone();
    let sender = hosts.spawn_in(1, move || {
        let inj = Injector::open(&ifname);
        for batch in frames_rx {
            for f in &batch {
                inj.send(f);
            }
            sent_tx.send(()).unwrap();
        }
    });

    let (amac, bmac) = (EthernetAddress(a.mac), EthernetAddress(b.mac));
    let frame = move |payload: &[u8]| udp_frame(bmac, amac, peer, stack, payload);
    let channels = Mutex::new((frames_tx, sent_rx, got_rx));
    let mut runner = TestRunner::new(PropConfig {
        cases: 48,
        ..PropConfig::default()
    });
    let strategy = proptest::collection::vec(case(), 0..24);
    let result = runner.run(&strategy, |cases| {
        let (frames_tx, sent_rx, got_rx) = &*channels.lock().unwrap();
        let mut intact = Vec::new();
        let mut batch = Vec::new();
        for (i, c) in cases.iter().enumerate() {
            batch.push(match c {
                Case::Valid(p) => {
                    // Tagged so that no surviving mutated datagram ('M')
                    // can pass for an intact one.
                    let mut tagged = vec![b'V', i as u8];
                    tagged.extend_from_slice(p);
                    let f = frame(&tagged);
                    intact.push(tagged);
                    f
                }
                Case::Mutated(p, at, x, cut) => {
                    let mut tagged = vec![b'M'];
                    tagged.extend_from_slice(p);
                    let mut f = frame(&tagged);
                    let at = 14 + at % (f.len() - 14); // the link keeps the MACs
                    if *cut {
                        f.truncate(at.max(14));
                    } else {
                        f[at] ^= x;
                    }
                    f
                }
                Case::Random(bytes) => {
                    let mut f = Vec::with_capacity(14 + bytes.len());
                    f.extend_from_slice(&amac.0);
                    f.extend_from_slice(&bmac.0);
                    f.extend_from_slice(bytes);
                    f
                }
            });
        }
        batch.push(frame(SENTINEL));
        frames_tx.send(batch).unwrap();
        sent_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let mut next = 0;
        loop {
            let msg = got_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("the sentinel did not arrive: a frame disturbed the flow");
            if msg == SENTINEL {
                break;
            }
            if next < intact.len() && msg == intact[next] {
                next += 1;
            }
        }
        prop_assert_eq!(next, intact.len(), "intact datagrams delivered, in order");
        Ok(())
    });
    // No frame leaked: thousands more datagrams get through.
    let (frames_tx, sent_rx, got_rx) = channels.into_inner().unwrap();
    for round in 0..4u8 {
        let batch: Vec<Vec<u8>> = (0..1000u32)
            .map(|i| {
                let mut p = i.to_be_bytes().to_vec();
                p.push(round);
                frame(&p)
            })
            .collect();
        frames_tx.send(batch).unwrap();
        sent_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let mut seen = 0;
        // Datagrams may be dropped when a burst overruns the endpoint's
        // queue (counted, best effort); most must get through.
        while let Ok(msg) = got_rx.recv_timeout(Duration::from_millis(500)) {
            if msg.len() == 5 && msg[4] == round {
                seen += 1;
            }
        }
        assert!(
            seen >= 900,
            "round {round}: only {seen} of 1000 datagrams arrived"
        );
    }
    frames_tx.send(vec![frame(DONE)]).unwrap();
    sent_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    drop(frames_tx);
    sender.join().expect("sender");
    let (copies, diagnostics) = receiver.join().expect("receiver");
    println!("{}", diagnostics.unwrap_or_default());
    assert_eq!(copies, 0);
    if let Err(e) = result {
        panic!("{e}");
    }
}
