//! Kernel ABI the driver needs beyond what `libc` declares: bpf(2) command
//! attributes, XDP attach flags, busy-poll socket options, and small
//! checked wrappers around the raw calls.
//!
//! Layouts follow `include/uapi/linux/bpf.h`, `if_xdp.h` and `if_link.h`.
//! Each attribute struct is the prefix of `union bpf_attr` that its command
//! reads; the kernel treats the bytes we do not pass as zero.

use std::ffi::CStr;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use libc::{c_int, c_void, socklen_t};

// bpf(2) commands (enum bpf_cmd).
pub(crate) const BPF_MAP_CREATE: c_int = 0;
pub(crate) const BPF_MAP_UPDATE_ELEM: c_int = 2;
pub(crate) const BPF_MAP_DELETE_ELEM: c_int = 3;
pub(crate) const BPF_PROG_LOAD: c_int = 5;
#[cfg(test)]
pub(crate) const BPF_PROG_TEST_RUN: c_int = 10;
pub(crate) const BPF_LINK_CREATE: c_int = 28;

// enum bpf_map_type.
pub(crate) const BPF_MAP_TYPE_HASH: u32 = 1;
pub(crate) const BPF_MAP_TYPE_XSKMAP: u32 = 17;

// enum bpf_prog_type / enum bpf_attach_type.
pub(crate) const BPF_PROG_TYPE_XDP: u32 = 6;
pub(crate) const BPF_XDP: u32 = 37;

// XDP attach flags (if_link.h), used as BPF_LINK_CREATE flags for BPF_XDP.
pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

// XDP verdicts (enum xdp_action).
#[cfg(test)]
pub(crate) const XDP_DROP: i32 = 1;
pub(crate) const XDP_PASS: i32 = 2;
#[cfg(test)]
pub(crate) const XDP_REDIRECT: i32 = 4;

// BPF helper ids (enum bpf_func_id).
pub(crate) const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
pub(crate) const BPF_FUNC_REDIRECT_MAP: i32 = 51;

// Busy-poll socket options (asm-generic/socket.h; not in libc for gnu).
pub(crate) const SO_BUSY_POLL: c_int = 46;
pub(crate) const SO_PREFER_BUSY_POLL: c_int = 69;
pub(crate) const SO_BUSY_POLL_BUDGET: c_int = 70;

// Every attribute struct has no implicit padding (checked in the tests):
// bytes the kernel reads must be initialised, and zero where unused.

/// `BPF_MAP_CREATE` attributes.
#[repr(C)]
#[derive(Default)]
pub(crate) struct MapCreateAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; 16],
}

/// `BPF_MAP_*_ELEM` attributes.
#[repr(C)]
#[derive(Default)]
pub(crate) struct MapElemAttr {
    pub map_fd: u32,
    pub _pad: u32,
    pub key: u64,
    pub value: u64,
    pub flags: u64,
}

/// `BPF_PROG_LOAD` attributes (up to `expected_attach_type`).
#[repr(C)]
#[derive(Default)]
pub(crate) struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; 16],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
}

/// `BPF_LINK_CREATE` attributes (the common head).
#[repr(C)]
#[derive(Default)]
pub(crate) struct LinkCreateAttr {
    pub prog_fd: u32,
    pub target_ifindex: u32,
    pub attach_type: u32,
    pub flags: u32,
}

/// `BPF_PROG_TEST_RUN` attributes.
#[repr(C)]
#[derive(Default)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct TestRunAttr {
    pub prog_fd: u32,
    pub retval: u32,
    pub data_size_in: u32,
    pub data_size_out: u32,
    pub data_in: u64,
    pub data_out: u64,
    pub repeat: u32,
    pub duration: u32,
    pub ctx_size_in: u32,
    pub ctx_size_out: u32,
    pub ctx_in: u64,
    pub ctx_out: u64,
    pub flags: u32,
    pub cpu: u32,
    pub batch_size: u32,
    /// Explicit tail padding: the kernel rejects non-zero bytes past the
    /// last field it knows (CHECK_ATTR), and implicit padding is not
    /// guaranteed to be zero.
    pub _pad: u32,
}

/// Copies `name` into a zero-terminated 16-byte object name.
pub(crate) fn obj_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = name.len().min(15);
    out[..n].copy_from_slice(&name.as_bytes()[..n]);
    out
}

/// Calls bpf(2) with `attr` (one of the attribute structs above).
///
/// # Safety
/// Every pointer stored in `attr` must be valid for what `cmd` does with
/// it (read or written) for the duration of the call.
pub(crate) unsafe fn bpf<T>(cmd: c_int, attr: &mut T) -> io::Result<c_int> {
    // SAFETY: `attr` is a live, initialised `#[repr(C)]` struct of the size
    // we pass; the pointers inside it are the caller's responsibility.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<c_void>(),
            size_of::<T>() as u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as c_int)
    }
}

/// Like [`bpf`] for commands that return a new descriptor.
///
/// # Safety
/// As [`bpf`].
pub(crate) unsafe fn bpf_fd<T>(cmd: c_int, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: forwarded to the caller.
    let fd = unsafe { bpf(cmd, attr)? };
    // SAFETY: on success these commands return a fresh descriptor that
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(fd, level, name, &value)`.
pub(crate) fn setsockopt<T>(fd: RawFd, level: c_int, name: c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live `T` and we pass its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast::<c_void>(),
            size_of::<T>() as socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `getsockopt(fd, level, name, &mut value)`; returns the length the
/// kernel wrote.
pub(crate) fn getsockopt<T>(
    fd: RawFd,
    level: c_int,
    name: c_int,
    value: &mut T,
) -> io::Result<usize> {
    let mut len = size_of::<T>() as socklen_t;
    // SAFETY: `value` is a live `T`, writable for `len` bytes, and `len`
    // is a live socklen_t.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (value as *mut T).cast::<c_void>(),
            &mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(len as usize)
    }
}

/// The interface index of `name`, or `None` when there is no such
/// interface in the calling thread's network namespace.
pub(crate) fn if_index(name: &str) -> Option<u32> {
    let cname = std::ffi::CString::new(name).ok()?;
    // SAFETY: `cname` is a valid NUL-terminated string for the call.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    (index != 0).then_some(index)
}

/// Number of RX (or combined) queues of `name` from the ethtool
/// `ETHTOOL_GCHANNELS` ioctl, when the driver reports them.
pub(crate) fn rx_queues(name: &str) -> Option<u32> {
    #[repr(C)]
    #[derive(Default)]
    struct EthtoolChannels {
        cmd: u32,
        max_rx: u32,
        max_tx: u32,
        max_other: u32,
        max_combined: u32,
        rx_count: u32,
        tx_count: u32,
        other_count: u32,
        combined_count: u32,
    }
    const ETHTOOL_GCHANNELS: u32 = 0x3c;
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut channels as *mut EthtoolChannels).cast();
    // SAFETY: plain socket creation; the result is checked.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return None;
    }
    // SAFETY: `sock` is a descriptor we just created and own.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: SIOCETHTOOL reads `ifr` and writes `channels` through
    // `ifru_data`; both live until the call returns.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SIOCETHTOOL,
            &mut ifr,
        )
    };
    if rc < 0 {
        return None;
    }
    Some(channels.rx_count.max(channels.combined_count))
}

/// Whether the calling thread has CAP_NET_ADMIN in its effective set
/// (capabilities are per thread).
pub(crate) fn has_cap_net_admin() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

/// The symbolic name of an errno (`EBUSY`), for error texts.
pub(crate) fn errno_name(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM",
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::EBUSY) => "EBUSY",
        Some(libc::EEXIST) => "EEXIST",
        Some(libc::ENOMEM) => "ENOMEM",
        Some(libc::EOPNOTSUPP) => "EOPNOTSUPP",
        Some(libc::ENODEV) => "ENODEV",
        Some(libc::ENXIO) => "ENXIO",
        Some(libc::EAFNOSUPPORT) => "EAFNOSUPPORT",
        Some(libc::EACCES) => "EACCES",
        Some(libc::E2BIG) => "E2BIG",
        Some(libc::ENOSPC) => "ENOSPC",
        Some(libc::ERANGE) => "ERANGE",
        Some(libc::ENETDOWN) => "ENETDOWN",
        _ => "",
    }
}

/// A NUL-terminated C string from a byte buffer written by the kernel.
pub(crate) fn c_buf_to_string(buf: &[u8]) -> String {
    CStr::from_bytes_until_nul(buf)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_layouts_match_the_kernel() {
        // Offsets from include/uapi/linux/bpf.h.
        assert_eq!(size_of::<MapCreateAttr>(), 44);
        assert_eq!(size_of::<MapElemAttr>(), 32);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, insns), 8);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(size_of::<LinkCreateAttr>(), 16);
        assert_eq!(std::mem::offset_of!(TestRunAttr, data_in), 16);
        assert_eq!(std::mem::offset_of!(TestRunAttr, ctx_in), 48);
        assert_eq!(std::mem::offset_of!(TestRunAttr, flags), 64);
        // No implicit padding anywhere (sizes equal the sum of the fields).
        assert_eq!(size_of::<ProgLoadAttr>(), 72);
        assert_eq!(size_of::<TestRunAttr>(), 80);
        assert_eq!(std::mem::offset_of!(TestRunAttr, _pad), 76);
        // if_xdp.h
        assert_eq!(size_of::<libc::sockaddr_xdp>(), 16);
        assert_eq!(size_of::<libc::xdp_desc>(), 16);
        assert_eq!(size_of::<libc::xdp_mmap_offsets>(), 128);
        assert_eq!(size_of::<libc::xdp_mmap_offsets_v1>(), 96);
    }

    #[test]
    fn object_names_are_truncated_and_terminated() {
        assert_eq!(&obj_name("abc")[..4], b"abc\0");
        let long = obj_name("a_very_long_object_name");
        assert_eq!(long[15], 0);
        assert_eq!(&long[..15], b"a_very_long_obj");
    }
}
