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
