//! Shared by the DPDK test binaries.

#![allow(dead_code)]

/// The CI rule: `true` when this build has DPDK; otherwise prints why and
/// returns `false` (skip), except under `CI=true`, where it panics.
#[track_caller]
pub fn require_dpdk(test: &str) -> bool {
    if insane_dpdk::AVAILABLE {
        return true;
    }
    let why = insane_dpdk::Error::unavailable();
    if insane_testhosts::in_ci() {
        panic!("{test}: DPDK is required under CI: {why}");
    }
    eprintln!("skipping {test}: {why}");
    false
}

/// EAL arguments for a test process: no PCI, no huge pages, a file prefix
/// unique to this process, plus `extra`.
pub fn eal_args(tag: &str, lcore: u32, extra: &[String]) -> Vec<String> {
    let mut args = vec![
        "-l".to_string(),
        lcore.to_string(),
        "--no-pci".into(),
        "--no-huge".into(),
        "-m".into(),
        "256".into(),
        "--no-telemetry".into(),
        "--no-shconf".into(),
        "--log-level=*:error".into(),
        format!("--file-prefix=insane-{tag}-{}", std::process::id()),
    ];
    args.extend_from_slice(extra);
    args
}

/// The kernel side of a stack-echo test: sends `count` datagrams
/// `payload(0)`, `payload(1)`, ... from `sock` to `target`, one at a time,
/// and checks that each comes back intact from `target`. Only the first
/// datagram is retried (up to `first_tries` times, 500 ms each: ARP and
/// the link coming up); any later loss fails. Returns how many were
/// checked.
pub fn kernel_echoes(
    sock: &std::net::UdpSocket,
    target: std::net::SocketAddrV4,
    count: u64,
    payload: impl Fn(u64) -> Vec<u8>,
    first_tries: u32,
) -> Result<u64, String> {
    sock.set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 2048];
    let mut checked = 0u64;
    for i in 0..count {
        let p = payload(i);
        let mut tries = 0;
        loop {
            tries += 1;
            sock.send_to(&p, target).map_err(|e| e.to_string())?;
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if from != std::net::SocketAddr::V4(target) {
                        return Err(format!("reply from {from}"));
                    }
                    if buf[..n] != p[..] {
                        return Err(format!("echo {i} differs ({n} bytes)"));
                    }
                    checked += 1;
                    break;
                }
                Err(e) if i == 0 && tries < first_tries => {
                    eprintln!("first datagram: {e}, retrying");
                }
                Err(e) => return Err(format!("datagram {i}: {e}")),
            }
        }
    }
    Ok(checked)
}
