//! `bind_on_every_core`: one SO_REUSEPORT socket per core on one address,
//! each served on its own core, so a thread-per-core server uses every
//! core; port 0 gives every core the same free port.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use common::on_each_driver;
use insane_net::{TcpListener, TcpStream, UdpSocket};
use insane_runtime::runtime::Runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Connections (or flows) from distinct source ports: the kernel's
/// reuseport hash spreads them, so with this many every core of two gets
/// some (the chance that all land on one core is 2^-63).
const FLOWS: usize = 64;

#[test]
fn tcp_connections_are_served_on_every_core() {
    on_each_driver(2, |_| async {
        let cores_seen = Arc::new(Mutex::new(BTreeSet::new()));
        let seen = cores_seen.clone();
        let addr = TcpListener::bind_on_every_core("127.0.0.1:0", move |listener| {
            let seen = seen.clone();
            async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let core = Runtime::current_core().unwrap();
                    seen.lock().unwrap().insert(core);
                    insane_runtime::task::spawn_local(async move {
                        let _ = stream.write_all(&[core as u8]).await;
                    });
                }
            }
        })
        .await
        .unwrap();
        assert_ne!(addr.port(), 0);
        let mut served_by = BTreeSet::new();
        for _ in 0..FLOWS {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let mut core = [0u8];
            c.read_exact(&mut core).await.unwrap();
            served_by.insert(core[0]);
        }
        assert_eq!(served_by, BTreeSet::from([0, 1]));
        assert_eq!(*cores_seen.lock().unwrap(), BTreeSet::from([0, 1]));
    });
}

#[test]
fn udp_flows_are_served_on_every_core_on_one_port() {
    on_each_driver(2, |_| async {
        let addr = UdpSocket::bind_on_every_core("127.0.0.1:0", |socket| async move {
            let mut buf = [0u8; 64];
            let core = Runtime::current_core().unwrap() as u8;
            while let Ok((_, peer)) = socket.recv_from(&mut buf).await {
                let _ = socket.send_to(&[core], peer).await;
            }
        })
        .await
        .unwrap();
        assert_ne!(addr.port(), 0);
        let mut served_by = BTreeSet::new();
        for _ in 0..FLOWS {
            let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            c.send_to(b"which core?", addr).await.unwrap();
            let mut core = [0u8; 8];
            let (n, from) = c.recv_from(&mut core).await.unwrap();
            assert_eq!((n, from), (1, addr));
            served_by.insert(core[0]);
        }
        assert_eq!(served_by, BTreeSet::from([0, 1]));
    });
}

#[test]
fn outside_a_runtime_or_on_a_taken_address_the_error_says_why() {
    let err =
        futures::executor::block_on(TcpListener::bind_on_every_core("127.0.0.1:0", |_l| async {}))
            .unwrap_err();
    assert!(
        err.to_string().contains("inside an insane runtime"),
        "{err}"
    );
    on_each_driver(1, |_| async {
        // A plain listener without SO_REUSEPORT holds the port.
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = TcpListener::bind_on_every_core(addr, |_l| async {})
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    });
}
