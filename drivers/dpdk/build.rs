//! Sets `cfg(insane_dpdk_available)` when insane-dpdk-sys was built with
//! libdpdk (its build script's `available` metadata, seen here as
//! `DEP_RTE_EAL_AVAILABLE`).

fn main() {
    println!("cargo:rustc-check-cfg=cfg(insane_dpdk_available)");
    println!("cargo:rerun-if-env-changed=DEP_RTE_EAL_AVAILABLE");
    if std::env::var("DEP_RTE_EAL_AVAILABLE").is_ok_and(|v| v == "1") {
        println!("cargo:rustc-cfg=insane_dpdk_available");
    }
}
