//! The bindings and the shim link and work: EAL initialisation with one
//! virtual device of each PMD this project uses, the ports they create,
//! and an mbuf through the shim. One EAL per process, so one test here.
//!
//! Under `CI=true` a build without libdpdk fails this test; elsewhere it
//! is skipped with the reason.

#[cfg(not(insane_dpdk_unavailable))]
#[test]
fn eal_registers_the_linked_pmds_and_the_shim_works() {
    use std::ffi::{CStr, CString};
    use std::os::raw::c_char;

    use insane_dpdk_sys as sys;

    let sock = format!("/tmp/insane-dpdk-sys-link-{}.sock", std::process::id());
    let _ = std::fs::remove_file(&sock);
    let args = [
        "insane-dpdk-sys-test".to_string(),
        "-l".into(),
        "0".into(),
        "--no-pci".into(),
        "--no-huge".into(),
        "-m".into(),
        "128".into(),
        "--no-telemetry".into(),
        "--no-shconf".into(),
        format!("--file-prefix=insane-sys-{}", std::process::id()),
        "--vdev=net_ring0".into(),
        "--vdev=net_null0".into(),
        format!("--vdev=net_memif0,role=server,socket={sock},socket-abstract=no"),
        "--vdev=net_af_packet0,iface=lo".into(),
        "--log-level=*:error".into(),
    ];
    // rustc links with --as-needed, which drops the PMD libraries (nothing
    // references their symbols): load them explicitly, as insane-dpdk does.
    assert_eq!(sys::PMD_LIBRARIES.len(), 4, "{:?}", sys::PMD_LIBRARIES);
    let mut args = args.to_vec();
    for pmd in sys::PMD_LIBRARIES {
        args.push("-d".into());
        args.push(pmd.to_string());
    }
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()).unwrap())
        .collect();
    let mut argv: Vec<*mut c_char> = cargs.iter().map(|c| c.as_ptr() as *mut c_char).collect();
    // SAFETY: argv holds `args.len()` valid NUL-terminated strings that
    // outlive the process's use of them (`cargs` lives to the end of the
    // test, and the EAL copies what it keeps).
    let rc = unsafe { sys::rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
    // SAFETY: plain reads of the thread's rte_errno and a static string.
    let why = unsafe { CStr::from_ptr(sys::rte_strerror(sys::insane_rte_errno())) };
    assert!(rc >= 0, "rte_eal_init failed: {why:?}");

    // With --no-shconf the runtime directory is empty: remove it.
    // SAFETY: the EAL is initialised; a NUL-terminated path comes back.
    let dir = unsafe { CStr::from_ptr(sys::rte_eal_get_runtime_dir()) };
    let _ = std::fs::remove_dir(dir.to_string_lossy().as_ref());

    // SAFETY: the EAL is initialised.
    let ports = unsafe { sys::rte_eth_dev_count_avail() };
    assert_eq!(ports, 4, "one port per --vdev");
    let mut drivers = Vec::new();
    for port in 0..ports {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: `port` exists; `info` is writable.
        let rc = unsafe { sys::rte_eth_dev_info_get(port, &mut info) };
        assert_eq!(rc, 0);
        // SAFETY: driver_name is a static NUL-terminated string of the PMD.
        drivers.push(
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned(),
        );
    }
    drivers.sort();
    assert_eq!(
        drivers,
        ["net_af_packet", "net_memif", "net_null", "net_ring"]
    );

    let name = CString::new("sys-test-pool").unwrap();
    // SAFETY: valid name; sizes are DPDK's defaults.
    let pool = unsafe {
        sys::rte_pktmbuf_pool_create(
            name.as_ptr(),
            255,
            32,
            0,
            sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            sys::rte_socket_id() as i32,
        )
    };
    assert!(!pool.is_null());
    // SAFETY: `pool` is a live pktmbuf pool.
    unsafe {
        let before = sys::rte_mempool_avail_count(pool);
        let m = sys::insane_rte_pktmbuf_alloc(pool);
        assert!(!m.is_null());
        assert_eq!(
            sys::insane_rte_pktmbuf_headroom(m) as u32,
            sys::RTE_PKTMBUF_HEADROOM
        );
        assert_eq!((*m).data_off as u32, sys::RTE_PKTMBUF_HEADROOM);
        let p = sys::insane_rte_pktmbuf_append(m, 10);
        assert!(!p.is_null());
        assert_eq!((*m).data_len, 10);
        assert_eq!(p, sys::insane_rte_pktmbuf_mtod(m));
        assert_eq!(sys::rte_mempool_avail_count(pool), before - 1);
        sys::insane_rte_pktmbuf_free(m);
        assert_eq!(sys::rte_mempool_avail_count(pool), before);
        sys::rte_mempool_free(pool);
        sys::rte_eal_cleanup();
    }
    let _ = std::fs::remove_file(&sock);
}

#[cfg(insane_dpdk_unavailable)]
#[test]
fn eal_registers_the_linked_pmds_and_the_shim_works() {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true: {}", insane_dpdk_sys::UNAVAILABLE);
    }
    eprintln!("skipped: {}", insane_dpdk_sys::UNAVAILABLE);
}
