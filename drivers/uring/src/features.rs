//! What the kernel's io_uring offers: ring setup with step-by-step flag
//! fallback, and the opcode/feature probe exposed as [`UringFeatures`].
//!
//! [`probe`] works without a runtime (the driver-selection policy calls it
//! at start-up); [`crate::Driver::features`] reports the same for a
//! running driver, including the setup flags its ring really got.

use std::fmt;
use std::io;

use io_uring::{IoUring, Probe, opcode};

/// Setup flags tried for a ring, most capable first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SetupFlags {
    pub(crate) coop_taskrun: bool,
    pub(crate) taskrun_flag: bool,
    pub(crate) single_issuer: bool,
    pub(crate) defer_taskrun: bool,
    pub(crate) sqpoll: bool,
}

/// What this kernel's io_uring supports, as far as insane uses it.
///
/// Opcode support comes from `IORING_REGISTER_PROBE`; flags that the probe
/// cannot report (multishot variants) are inferred from markers of the
/// kernel release that introduced them, and provided-buffer rings are
/// tested by registering one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UringFeatures {
    /// `uname -r`.
    pub kernel_release: String,
    /// Submission queue entries of the ring the features were read from.
    pub sq_entries: u32,
    /// Completion queue entries of that ring.
    pub cq_entries: u32,
    /// The ring was set up with `IORING_SETUP_COOP_TASKRUN`.
    pub coop_taskrun: bool,
    /// ... with `IORING_SETUP_TASKRUN_FLAG`.
    pub taskrun_flag: bool,
    /// ... with `IORING_SETUP_SINGLE_ISSUER`.
    pub single_issuer: bool,
    /// ... with `IORING_SETUP_DEFER_TASKRUN`.
    pub defer_taskrun: bool,
    /// ... with `IORING_SETUP_SQPOLL` (a kernel thread polls the SQ).
    pub sqpoll: bool,
    /// CPUs in the process's allowed set (SQPOLL needs at least 2).
    pub allowed_cpus: usize,
    /// `IORING_FEAT_NODROP`: completions are never lost on CQ overflow.
    pub nodrop: bool,
    /// `IORING_FEAT_FAST_POLL`: internal poll instead of io-wq threads.
    pub fast_poll: bool,
    /// `IORING_FEAT_EXT_ARG`: waits with a timeout in one syscall.
    pub ext_arg: bool,
    /// `IORING_OP_POLL_ADD`.
    pub poll_add: bool,
    /// Multishot `POLL_ADD` (5.13).
    pub poll_add_multishot: bool,
    /// `IORING_OP_ASYNC_CANCEL`.
    pub async_cancel: bool,
    /// `IORING_OP_READ` / `IORING_OP_WRITE`.
    pub read_write: bool,
    /// `IORING_OP_SEND` / `IORING_OP_RECV`.
    pub send_recv: bool,
    /// `IORING_OP_SENDMSG` / `IORING_OP_RECVMSG`.
    pub sendmsg_recvmsg: bool,
    /// `IORING_OP_ACCEPT`.
    pub accept: bool,
    /// Multishot `ACCEPT` (5.19).
    pub accept_multishot: bool,
    /// `IORING_OP_CONNECT`.
    pub connect: bool,
    /// `IORING_OP_TIMEOUT`.
    pub timeout: bool,
    /// Provided-buffer rings (`IORING_REGISTER_PBUF_RING`, 5.19), tested.
    pub provided_buffer_ring: bool,
    /// Multishot `RECV` with provided buffers (6.0).
    pub recv_multishot: bool,
    /// `IORING_OP_SEND_ZC` (6.0).
    pub send_zc: bool,
    /// `IORING_OP_SENDMSG_ZC` (6.1).
    pub sendmsg_zc: bool,
    /// `IORING_OP_MSG_RING` (5.18): cross-ring wake-ups.
    pub msg_ring: bool,
    /// The file and path operations the kernel has (`insane::fs` uses
    /// each one it finds and the blocking pool for the others).
    pub files: FileOps,
}

/// Which io_uring file and path operations this kernel has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileOps {
    /// `IORING_OP_OPENAT` (5.6).
    pub openat: bool,
    /// `IORING_OP_CLOSE` (5.6).
    pub close: bool,
    /// `IORING_OP_STATX` (5.6).
    pub statx: bool,
    /// `IORING_OP_FSYNC` (5.1).
    pub fsync: bool,
    /// `IORING_OP_UNLINKAT` (5.11).
    pub unlinkat: bool,
    /// `IORING_OP_RENAMEAT` (5.11).
    pub renameat: bool,
    /// `IORING_OP_MKDIRAT` (5.15).
    pub mkdirat: bool,
    /// `IORING_OP_SYMLINKAT` (5.15).
    pub symlinkat: bool,
    /// `IORING_OP_LINKAT` (5.15).
    pub linkat: bool,
    /// `IORING_OP_FTRUNCATE` (6.9).
    pub ftruncate: bool,
}

impl FileOps {
    /// Reads the file operations from an opcode probe.
    fn from_probe(has: impl Fn(u8) -> bool) -> Self {
        FileOps {
            openat: has(opcode::OpenAt::CODE),
            close: has(opcode::Close::CODE),
            statx: has(opcode::Statx::CODE),
            fsync: has(opcode::Fsync::CODE),
            unlinkat: has(opcode::UnlinkAt::CODE),
            renameat: has(opcode::RenameAt::CODE),
            mkdirat: has(opcode::MkDirAt::CODE),
            symlinkat: has(opcode::SymlinkAt::CODE),
            linkat: has(opcode::LinkAt::CODE),
            ftruncate: has(opcode::Ftruncate::CODE),
        }
    }
}

impl UringFeatures {
    /// Whether SQPOLL may be enabled on this host (at least 2 usable CPUs).
    pub fn sqpoll_usable(&self) -> bool {
        self.allowed_cpus >= 2
    }

    /// Whether the owned-buffer fast path (provided-buffer rings with
    /// multishot receives) is available.
    pub fn owned_recv_fast_path(&self) -> bool {
        self.provided_buffer_ring && self.recv_multishot
    }
}

impl fmt::Display for UringFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut setup = Vec::new();
        for (on, name) in [
            (self.coop_taskrun, "COOP_TASKRUN"),
            (self.taskrun_flag, "TASKRUN_FLAG"),
            (self.single_issuer, "SINGLE_ISSUER"),
            (self.defer_taskrun, "DEFER_TASKRUN"),
            (self.sqpoll, "SQPOLL"),
        ] {
            if on {
                setup.push(name);
            }
        }
        let mut ops = Vec::new();
        for (on, name) in [
            (self.poll_add_multishot, "POLL_ADD multishot"),
            (self.recv_multishot, "RECV multishot"),
            (self.provided_buffer_ring, "buffer rings"),
            (self.accept_multishot, "ACCEPT multishot"),
            (self.send_zc, "SEND_ZC"),
            (self.sendmsg_zc, "SENDMSG_ZC"),
            (self.msg_ring, "MSG_RING"),
            (self.ext_arg, "EXT_ARG"),
        ] {
            if on {
                ops.push(name);
            }
        }
        write!(
            f,
            "io_uring on Linux {} (sq {}, cq {}, setup [{}], features [{}], {} usable CPUs)",
            self.kernel_release,
            self.sq_entries,
            self.cq_entries,
            setup.join(" "),
            ops.join(", "),
            self.allowed_cpus
        )
    }
}

/// Probes this kernel's io_uring without a runtime: sets up a small ring
/// with the same flag fallback the driver uses, reads the opcode probe and
/// tests a provided-buffer ring.
///
/// # Errors
/// When io_uring cannot be set up at all; the message names the cause
/// (e.g. `kernel.io_uring_disabled=2`, seccomp, ENOSYS).
pub fn probe() -> io::Result<UringFeatures> {
    let (ring, flags) = setup_ring(8, None, true)?;
    detect(&ring, flags, allowed_cpu_count().unwrap_or(1))
}

/// Builds a ring with `entries` SQEs, trying the most capable flag set
/// first and dropping flags one at a time while the kernel answers EINVAL.
pub(crate) fn setup_ring(
    entries: u32,
    sqpoll_idle_ms: Option<u32>,
    taskrun: bool,
) -> io::Result<(IoUring, SetupFlags)> {
    if entries == 0 || entries > 32_768 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("io_uring ring size must be in 1..=32768 entries, got {entries}"),
        ));
    }
    let candidates: Vec<SetupFlags> = if sqpoll_idle_ms.is_some() {
        // The task-run flags are about interrupting the submitting task;
        // with SQPOLL there is none, and the kernel rejects them.
        vec![
            SetupFlags {
                sqpoll: true,
                single_issuer: true,
                ..Default::default()
            },
            SetupFlags {
                sqpoll: true,
                ..Default::default()
            },
        ]
    } else if taskrun {
        let all = SetupFlags {
            coop_taskrun: true,
            taskrun_flag: true,
            single_issuer: true,
            defer_taskrun: true,
            sqpoll: false,
        };
        vec![
            all,
            SetupFlags {
                defer_taskrun: false,
                ..all
            },
            SetupFlags {
                defer_taskrun: false,
                single_issuer: false,
                ..all
            },
            SetupFlags::default(),
        ]
    } else {
        vec![
            SetupFlags {
                single_issuer: true,
                ..Default::default()
            },
            SetupFlags::default(),
        ]
    };
    let mut last = None;
    for flags in candidates {
        let mut builder = IoUring::builder();
        // Multishot operations can post many completions per submission;
        // a larger CQ makes overflow (handled, but slow) rare.
        builder.setup_cqsize(entries.saturating_mul(4).min(65_536));
        if flags.coop_taskrun {
            builder.setup_coop_taskrun();
        }
        if flags.taskrun_flag {
            builder.setup_taskrun_flag();
        }
        if flags.single_issuer {
            builder.setup_single_issuer();
        }
        if flags.defer_taskrun {
            builder.setup_defer_taskrun();
        }
        if let Some(idle) = sqpoll_idle_ms {
            builder.setup_sqpoll(idle);
        }
        match builder.build(entries) {
            Ok(ring) => {
                tracing::trace!(?flags, entries, "io_uring ring set up");
                return Ok((ring, flags));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(?flags, error = %e, "io_uring_setup refused these flags; trying fewer");
                last = Some(e);
            }
            Err(e) => return Err(setup_error(&e)),
        }
    }
    let e = last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL));
    Err(setup_error(&e))
}

/// An io_uring_setup failure with its likely cause spelled out.
pub(crate) fn setup_error(e: &io::Error) -> io::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "?".into());
            format!(
                " (kernel.io_uring_disabled={disabled}, or a seccomp filter / io_uring_group forbids it)"
            )
        }
        Some(libc::ENOSYS) => " (kernel built without io_uring, or blocked by seccomp)".to_string(),
        Some(libc::ENOMEM) => {
            " (out of memory, or RLIMIT_MEMLOCK too low for the rings)".to_string()
        }
        Some(libc::EINVAL) => {
            " (no accepted combination of setup flags; kernel too old?)".to_string()
        }
        Some(libc::EMFILE) | Some(libc::ENFILE) => " (too many open files)".to_string(),
        _ => String::new(),
    };
    io::Error::new(e.kind(), format!("io_uring_setup failed: {e}{hint}"))
}

/// Reads the probe and feature bits of `ring`.
pub(crate) fn detect(
    ring: &IoUring,
    flags: SetupFlags,
    allowed_cpus: usize,
) -> io::Result<UringFeatures> {
    let params = ring.params();
    let mut probe = Probe::new();
    if let Err(e) = ring.submitter().register_probe(&mut probe) {
        return Err(io::Error::new(
            e.kind(),
            format!(
                "io_uring opcode probe (IORING_REGISTER_PROBE) failed: {e} (kernel older than 5.6?)"
            ),
        ));
    }
    let has = |code: u8| probe.is_supported(code);
    let provided_buffer_ring = test_buf_ring(ring);
    let send_zc = has(opcode::SendZc::CODE);
    Ok(UringFeatures {
        kernel_release: kernel_release(),
        sq_entries: params.sq_entries(),
        cq_entries: params.cq_entries(),
        coop_taskrun: flags.coop_taskrun,
        taskrun_flag: flags.taskrun_flag,
        single_issuer: flags.single_issuer,
        defer_taskrun: flags.defer_taskrun,
        sqpoll: flags.sqpoll,
        allowed_cpus,
        nodrop: params.is_feature_nodrop(),
        fast_poll: params.is_feature_fast_poll(),
        ext_arg: params.is_feature_ext_arg(),
        poll_add: has(opcode::PollAdd::CODE),
        // Multishot poll came with 5.13, as did resource tagging.
        poll_add_multishot: has(opcode::PollAdd::CODE) && params.is_feature_resource_tagging(),
        async_cancel: has(opcode::AsyncCancel::CODE),
        read_write: has(opcode::Read::CODE) && has(opcode::Write::CODE),
        send_recv: has(opcode::Send::CODE) && has(opcode::Recv::CODE),
        sendmsg_recvmsg: has(opcode::SendMsg::CODE) && has(opcode::RecvMsg::CODE),
        accept: has(opcode::Accept::CODE),
        // Multishot accept and buffer rings both came with 5.19.
        accept_multishot: has(opcode::Accept::CODE) && provided_buffer_ring,
        connect: has(opcode::Connect::CODE),
        timeout: has(opcode::Timeout::CODE),
        provided_buffer_ring,
        // Multishot receive came with 6.0, as did SEND_ZC.
        recv_multishot: provided_buffer_ring && send_zc && has(opcode::Recv::CODE),
        send_zc,
        sendmsg_zc: has(opcode::SendMsgZc::CODE),
        msg_ring: has(opcode::MsgRingData::CODE),
        files: FileOps::from_probe(has),
    })
}

/// Registers and unregisters a one-entry buffer ring: the only reliable
/// test for `IORING_REGISTER_PBUF_RING`.
fn test_buf_ring(ring: &IoUring) -> bool {
    let page = page_size();
    // SAFETY: anonymous private mapping of one page; no address hint; the
    // result is checked against MAP_FAILED before use.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return false;
    }
    // SAFETY: `mem` is a live, page-aligned, zeroed page, large enough for
    // one `io_uring_buf`; it stays mapped until after the unregister below.
    let registered = unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(mem as u64, 1, 0, 0)
    }
    .is_ok();
    if registered {
        let _ = ring.submitter().unregister_buf_ring(0);
    }
    // SAFETY: unmapping the page mapped above; the kernel no longer uses it.
    unsafe { libc::munmap(mem, page) };
    registered
}

pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

fn kernel_release() -> String {
    // SAFETY: utsname is plain data; all-zero is a valid value to fill.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a live utsname for uname to fill.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return "unknown".into();
    }
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Number of CPUs in this process's allowed set (sched_getaffinity).
pub fn allowed_cpu_count() -> io::Result<usize> {
    // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live cpu_set_t and we pass its exact size.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("sched_getaffinity failed: {e}"),
        ));
    }
    // SAFETY: CPU_COUNT only reads the live set.
    Ok(unsafe { libc::CPU_COUNT(&set) } as usize)
}
