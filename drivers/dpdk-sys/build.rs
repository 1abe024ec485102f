//! Finds libdpdk with pkg-config, generates the bindings with bindgen over
//! an allow-list and compiles the C shim (`src/shim.c`).
//!
//! When pkg-config cannot find libdpdk the crate is built in *unavailable*
//! mode (`cfg(insane_dpdk_unavailable)`): no bindings, no native library,
//! and [`AVAILABLE`](crate::AVAILABLE) is `false`, so a workspace build on
//! a machine without DPDK still succeeds; a `cargo:warning` says what to
//! install. With `INSANE_REQUIRE_DPDK=1` a missing libdpdk fails the build
//! instead (the test script sets it, so the DPDK tests cannot silently
//! vanish).
//!
//! The script reruns when libdpdk appears or disappears: it watches the
//! `libdpdk.pc` pkg-config found, or, when none was found, the directories
//! pkg-config searches (a directory's mtime changes when a file is added
//! to it). Only existing paths are watched: Cargo counts a missing
//! `rerun-if-changed` path as changed, which would rerun the script on
//! every build.

use std::env;
use std::path::{Path, PathBuf};

/// What to install, in every message about a missing libdpdk.
const INSTALL: &str = "apt-get install -y libdpdk-dev pkg-config libclang-dev";

/// The poll-mode drivers linked explicitly (Debian also loads every PMD as
/// a plugin from its `pmds-*` directory; linking does not depend on that).
const PMDS: &[&str] = &[
    "rte_net_ring",
    "rte_net_memif",
    "rte_net_af_packet",
    "rte_net_null",
];

/// Functions, types and variables bindgen generates (and what they use).
const ALLOW: &[&str] = &[
    "rte_eal_.*",
    "rte_eth_.*",
    "rte_ether_addr",
    "rte_pktmbuf_.*",
    "rte_mbuf",
    "rte_mempool",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_mempool_free",
    "rte_mempool_lookup",
    "rte_ring",
    "rte_ring_create",
    "rte_ring_free",
    "rte_strerror",
    "rte_socket_id",
    "rte_lcore_count",
    "rte_thread_register",
    "rte_thread_unregister",
    "rte_log_set_global_level",
    "insane_.*",
    "RTE_ETH_.*",
    "RTE_MBUF_.*",
    "RTE_PKTMBUF_.*",
    "RTE_MAX_ETHPORTS",
    "RTE_MAX_LCORE",
    "RTE_ETHER_.*",
    "SOCKET_ID_ANY",
    "LCORE_ID_ANY",
    "RING_F_.*",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-changed=src/shim.h");
    println!("cargo:rerun-if-env-changed=INSANE_REQUIRE_DPDK");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");
    println!("cargo:rustc-check-cfg=cfg(insane_dpdk_unavailable)");

    let required = env::var("INSANE_REQUIRE_DPDK").is_ok_and(|v| v == "1");
    let lib = match pkg_config::Config::new()
        .cargo_metadata(false)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => {
            // Rerun when a libdpdk.pc is installed where pkg-config looks.
            watch(&pkg_config_search_dirs());
            // pkg-config's error spans several lines; a cargo:warning is one.
            let e = e.to_string();
            let first = e
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            return unavailable(
                required,
                &format!("pkg-config cannot find libdpdk ({first})"),
            );
        }
    };

    // Rerun when this libdpdk.pc is removed or replaced.
    watch(&[found_pc_file()]);

    let shim = Path::new("src/shim.c");
    let mut build = cc::Build::new();
    build.file(shim).include("src").warnings(false);
    for dir in &lib.include_paths {
        build.include(dir);
    }
    // `-include rte_config.h`, `-march=...`: pkg-config's other cflags.
    let cflags = cflags_only_other();
    let mut clang_args: Vec<String> = lib
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();
    for flag in extra_cflags(&cflags) {
        build.flag(&flag);
        clang_args.push(flag);
    }
    if let Err(e) = build.try_compile("insane_dpdk_shim") {
        return unavailable(required, &format!("the DPDK C shim does not compile ({e})"));
    }

    let mut builder = bindgen::Builder::default()
        .header("src/shim.h")
        .clang_args(&clang_args)
        .clang_arg("-Isrc")
        .derive_default(true)
        .derive_debug(true)
        .layout_tests(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for item in ALLOW {
        builder = builder
            .allowlist_function(item)
            .allowlist_type(item)
            .allowlist_var(item);
    }
    let bindings = match builder.generate() {
        Ok(b) => b,
        Err(e) => {
            return unavailable(
                required,
                &format!("bindgen cannot parse the DPDK headers ({e}; is libclang-dev installed?)"),
            );
        }
    };
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs to OUT_DIR");

    // Link: the shim (cc did it), the DPDK libraries pkg-config names, and
    // the PMDs, which its `--libs` omits.
    for dir in &lib.link_paths {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    for name in &lib.libs {
        println!("cargo:rustc-link-lib={name}");
    }
    let mut pmd_paths = Vec::new();
    for pmd in PMDS {
        let found = lib
            .link_paths
            .iter()
            .chain(std::iter::once(&PathBuf::from(
                pkg_config::get_variable("libdpdk", "libdir").unwrap_or_default(),
            )))
            .map(|d| d.join(format!("lib{pmd}.so")))
            .find(|p| p.exists());
        match found {
            Some(path) => {
                println!("cargo:rustc-link-lib=dylib={pmd}");
                // The real file, so that an explicit `-d` load and Debian's
                // plugin directory resolve to the same object.
                let real = std::fs::canonicalize(&path).unwrap_or(path);
                pmd_paths.push(real.display().to_string());
            }
            None => {
                println!("cargo:warning=DPDK PMD lib{pmd}.so not found; that driver may be missing")
            }
        }
    }
    let version = lib.version.clone();
    std::fs::write(
        out.join("meta.rs"),
        format!(
            "/// The libdpdk version pkg-config reported at build time.\n\
             pub const BUILD_VERSION: &str = {version:?};\n\
             /// Absolute paths of the PMD libraries linked explicitly\n\
             /// (net_ring, net_memif, net_af_packet, net_null when found).\n\
             pub const PMD_LIBRARIES: &[&str] = &{pmd_paths:?};\n"
        ),
    )
    .expect("writing meta.rs to OUT_DIR");
    println!("cargo:available=1");
}

/// Emits `cargo:rerun-if-changed` for each of `paths` that exists, once.
///
/// Missing paths are skipped: Cargo treats a missing path as always
/// changed. A directory is scanned recursively by Cargo, and its own mtime
/// changes when an entry is added to or removed from it.
fn watch(paths: &[PathBuf]) {
    let mut seen = Vec::new();
    for path in paths {
        if path.as_os_str().is_empty() || seen.contains(path) || !path.exists() {
            continue;
        }
        // A `cargo:` line is UTF-8 text; a non-UTF-8 path cannot be named.
        if let Some(p) = path.to_str() {
            println!("cargo:rerun-if-changed={p}");
            seen.push(path.clone());
        }
    }
}

/// The `libdpdk.pc` pkg-config found (`$pcfiledir/libdpdk.pc`), or its
/// directory when that file name does not exist there.
fn found_pc_file() -> PathBuf {
    let dir = PathBuf::from(pkg_config::get_variable("libdpdk", "pcfiledir").unwrap_or_default());
    let file = dir.join("libdpdk.pc");
    if file.exists() { file } else { dir }
}

/// The directories pkg-config searches for `.pc` files, in its order: the
/// `PKG_CONFIG_PATH` entries, then `PKG_CONFIG_LIBDIR`'s when it is set
/// (it replaces the defaults), else pkg-config's default path.
fn pkg_config_search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = env::var_os("PKG_CONFIG_PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    match env::var_os("PKG_CONFIG_LIBDIR") {
        Some(libdir) => dirs.extend(env::split_paths(&libdir)),
        None => dirs.extend(default_pc_path()),
    }
    dirs
}

/// pkg-config's default search path (`pkg-config --variable pc_path
/// pkg-config`), or Debian's when pkg-config cannot be run.
fn default_pc_path() -> Vec<PathBuf> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let reported = std::process::Command::new(pkg_config)
        .args(["--variable", "pc_path", "pkg-config"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|path| !path.is_empty());
    if let Some(path) = reported {
        return env::split_paths(&path).collect();
    }
    // Debian's default: its multiarch triplet is `<arch>-linux-gnu` for
    // x86_64 and aarch64.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = format!("{arch}-linux-gnu");
    [
        format!("/usr/local/lib/{multiarch}/pkgconfig"),
        "/usr/local/lib/pkgconfig".into(),
        "/usr/local/share/pkgconfig".into(),
        format!("/usr/lib/{multiarch}/pkgconfig"),
        "/usr/lib/pkgconfig".into(),
        "/usr/share/pkgconfig".into(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// `pkg-config --cflags-only-other libdpdk` (empty when it fails).
fn cflags_only_other() -> String {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    std::process::Command::new(pkg_config)
        .args(["--cflags-only-other", "libdpdk"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The flags of `pkg-config --cflags libdpdk` that are not `-I`:
/// `-include rte_config.h`, `-march=...`.
fn extra_cflags(cflags: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut words = cflags.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-include" {
            if let Some(file) = words.next() {
                out.push(format!("-include{file}"));
            }
        } else if w.starts_with("-march") || w.starts_with("-D") || w.starts_with("-m") {
            out.push(w.to_string());
        }
    }
    out
}

/// Builds the crate without DPDK, or fails when it is required.
fn unavailable(required: bool, why: &str) {
    let message = format!("DPDK not available: {why}. Install it with `{INSTALL}` and rebuild.");
    if required {
        panic!("INSANE_REQUIRE_DPDK=1: {message}");
    }
    println!(
        "cargo:warning={message} Building insane-dpdk-sys in unavailable mode: every DPDK entry point returns an error."
    );
    println!("cargo:rustc-cfg=insane_dpdk_unavailable");
    println!("cargo:available=0");
}
