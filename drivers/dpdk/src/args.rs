//! EAL argument lists for processes that use only virtual devices
//! (`--vdev`): no PCI scan, no huge pages, a file prefix unique to the
//! process. Tests and benchmarks build their [`Eal::init`](crate::Eal::init)
//! arguments here, so one list says how such a process starts.

/// The EAL arguments of a process that uses only virtual devices: lcore
/// `lcore`, `--no-pci`, `--no-huge -m 256`, no telemetry, no shared
/// configuration files, errors-only logging, the file prefix
/// `{file_prefix}-{pid}` (two processes never share runtime files), then
/// `vdevs` (e.g. `--vdev=net_ring0`).
///
/// ```
/// let args = insane_dpdk::vdev_eal_args("app", 0, &["--vdev=net_ring0".to_string()]);
/// assert_eq!(args[..2], ["-l", "0"]);
/// assert!(args.contains(&format!("--file-prefix=app-{}", std::process::id())));
/// assert_eq!(args.last().unwrap(), "--vdev=net_ring0");
/// ```
pub fn vdev_eal_args(file_prefix: &str, lcore: u32, vdevs: &[String]) -> Vec<String> {
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
        format!("--file-prefix={file_prefix}-{}", std::process::id()),
    ];
    args.extend_from_slice(vdevs);
    args
}

/// The EAL arguments of one process of a two-process `net_memif` pair
/// (`role`: `"server"` or `"client"`): [`vdev_eal_args`] with the file
/// prefix `{file_prefix}-{role}` and port 0 a memif on the socket file
/// `sock` (not the abstract namespace) with the MAC address `mac`.
///
/// ```
/// let args = insane_dpdk::memif_eal_args("app", "server", 0, "/tmp/m.sock", "02:00:00:00:00:01");
/// assert_eq!(
///     args.last().unwrap(),
///     "--vdev=net_memif0,role=server,socket=/tmp/m.sock,socket-abstract=no,mac=02:00:00:00:00:01"
/// );
/// ```
pub fn memif_eal_args(
    file_prefix: &str,
    role: &str,
    lcore: u32,
    sock: &str,
    mac: &str,
) -> Vec<String> {
    vdev_eal_args(
        &format!("{file_prefix}-{role}"),
        lcore,
        &[format!(
            "--vdev=net_memif0,role={role},socket={sock},socket-abstract=no,mac={mac}"
        )],
    )
}
