//! Sets `cfg(insane_dpdk_available)` when the `dpdk` feature is on and
//! insane-dpdk-sys was built with libdpdk (its `available` metadata, seen
//! here as `DEP_RTE_EAL_AVAILABLE`): the dpdk-rtt scenario's raw loop
//! calls DPDK directly and exists only then.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(insane_dpdk_available)");
    println!("cargo:rerun-if-env-changed=DEP_RTE_EAL_AVAILABLE");
    if std::env::var("DEP_RTE_EAL_AVAILABLE").is_ok_and(|v| v == "1") {
        println!("cargo:rustc-cfg=insane_dpdk_available");
    }
}
