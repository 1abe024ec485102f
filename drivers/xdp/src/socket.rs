//! The AF_XDP socket: UMEM, rings, bind with fallbacks, the frame API and
//! the [`Reactor`] implementation.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use insane_runtime::reactor::Reactor;

use crate::frame::{XdpRxFrame, XdpTxFrame};
use crate::program::{AttachMode, MAX_QUEUES, ModeRequest, XdpProgram};
use crate::ring::{Mapping, Ring};
use crate::sys;

/// Bytes the kernel reserves in front of received data in a UMEM frame.
const XDP_PACKET_HEADROOM: usize = 256;

/// Whether to bind in zero-copy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ZeroCopy {
    /// Zero-copy, and copy mode when the driver cannot (default).
    #[default]
    Auto,
    /// Zero-copy only (fails where unsupported, e.g. veth).
    Required,
    /// Copy mode only.
    Off,
}

/// Kernel busy polling of the socket for latency-critical flows:
/// `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL` and `SO_BUSY_POLL_BUDGET`; the
/// driver then drives the NAPI context with a `recvfrom` whenever it finds
/// the RX ring empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    /// `SO_BUSY_POLL`: how long one busy poll may spin, in microseconds.
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET`: packets per busy poll.
    pub budget: u16,
}

impl Default for BusyPoll {
    /// 20 µs, 64 packets.
    fn default() -> Self {
        Self {
            usecs: 20,
            budget: 64,
        }
    }
}

/// How to open an [`XdpSocket`].
#[derive(Debug, Clone)]
pub struct SocketConfig {
    interface: String,
    queue: u32,
    mode: ModeRequest,
    zero_copy: ZeroCopy,
    frame_size: u32,
    frame_count: u32,
    ring_size: u32,
    tx_headroom: u32,
    huge_pages: bool,
    need_wakeup: bool,
    busy_poll: Option<BusyPoll>,
    ports: Vec<u16>,
    bind_retry: Duration,
    program: Option<Arc<XdpProgram>>,
}

impl SocketConfig {
    /// Queue `queue` of `interface`, with the defaults: [`ModeRequest::Auto`],
    /// [`ZeroCopy::Auto`], 4096 frames of 2048 bytes (huge pages when
    /// available), rings of 2048 entries, 128 bytes of TX headroom,
    /// `XDP_USE_NEED_WAKEUP`, no busy polling, no ports, 1.5 s of retrying
    /// a bind that fails with EBUSY.
    pub fn new(interface: impl Into<String>, queue: u32) -> Self {
        Self {
            interface: interface.into(),
            queue,
            mode: ModeRequest::Auto,
            zero_copy: ZeroCopy::Auto,
            frame_size: 2048,
            frame_count: 4096,
            ring_size: 2048,
            tx_headroom: 128,
            huge_pages: true,
            need_wakeup: true,
            busy_poll: None,
            ports: Vec::new(),
            bind_retry: Duration::from_millis(1500),
            program: None,
        }
    }

    /// Attach modes to try.
    pub fn mode(mut self, mode: ModeRequest) -> Self {
        self.mode = mode;
        self
    }

    /// Zero-copy policy.
    pub fn zero_copy(mut self, zero_copy: ZeroCopy) -> Self {
        self.zero_copy = zero_copy;
        self
    }

    /// UMEM frame size: 2048 or 4096.
    pub fn frame_size(mut self, size: u32) -> Self {
        self.frame_size = size;
        self
    }

    /// Number of UMEM frames (half for receiving, half for sending).
    pub fn frame_count(mut self, count: u32) -> Self {
        self.frame_count = count;
        self
    }

    /// Entries of each of the four rings (a power of two).
    pub fn ring_size(mut self, size: u32) -> Self {
        self.ring_size = size;
        self
    }

    /// Bytes reserved in front of a new [`XdpTxFrame`] for headers.
    pub fn tx_headroom(mut self, bytes: u32) -> Self {
        self.tx_headroom = bytes;
        self
    }

    /// Whether to try huge pages for the UMEM (default true).
    pub fn huge_pages(mut self, on: bool) -> Self {
        self.huge_pages = on;
        self
    }

    /// Whether to bind with `XDP_USE_NEED_WAKEUP` (default true): the
    /// kernel then says when it needs a syscall to make progress.
    pub fn need_wakeup(mut self, on: bool) -> Self {
        self.need_wakeup = on;
        self
    }

    /// Kernel busy polling (latency-critical flows).
    pub fn busy_poll(mut self, busy_poll: Option<BusyPoll>) -> Self {
        self.busy_poll = busy_poll;
        self
    }

    /// A UDP destination port to redirect to this socket from the start.
    pub fn port(mut self, port: u16) -> Self {
        self.ports.push(port);
        self
    }

    /// How long to keep retrying a bind that fails with EBUSY (the queue
    /// was bound by a socket closed less than ~1 s ago). Zero: fail at
    /// once.
    pub fn bind_retry(mut self, retry: Duration) -> Self {
        self.bind_retry = retry;
        self
    }

    /// Uses an XDP program already attached to the interface (shared by
    /// the sockets of several queues) instead of attaching a new one.
    pub fn program(mut self, program: Arc<XdpProgram>) -> Self {
        self.program = Some(program);
        self
    }

    fn validate(&self) -> io::Result<()> {
        let bad = |m: String| Err(io::Error::new(io::ErrorKind::InvalidInput, m));
        if self.frame_size != 2048 && self.frame_size != 4096 {
            return bad(format!(
                "AF_XDP frame size must be 2048 or 4096, not {}",
                self.frame_size
            ));
        }
        if !self.ring_size.is_power_of_two() || !(8..=1 << 16).contains(&self.ring_size) {
            return bad(format!(
                "AF_XDP ring size must be a power of two from 8 to 65536, not {}",
                self.ring_size
            ));
        }
        if self.frame_count < 16 || self.frame_count > 1 << 20 {
            return bad(format!(
                "AF_XDP frame count must be 16 to 2^20, not {}",
                self.frame_count
            ));
        }
        if self.tx_headroom > self.frame_size - 256 {
            return bad(format!(
                "TX headroom {} leaves less than 256 bytes of a {}-byte frame",
                self.tx_headroom, self.frame_size
            ));
        }
        if self.queue >= MAX_QUEUES {
            return bad(format!(
                "queue {} is beyond the {MAX_QUEUES} queues supported",
                self.queue
            ));
        }
        Ok(())
    }
}

/// What an [`XdpSocket`] got: the attach and bind modes, and why better
/// ones were not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketMode {
    /// Where the XDP program runs.
    pub attach: AttachMode,
    /// Bound in zero-copy mode (else copy mode).
    pub zero_copy: bool,
    /// Bound with `XDP_USE_NEED_WAKEUP`.
    pub need_wakeup: bool,
    /// UMEM on huge pages.
    pub huge_pages: bool,
    /// Busy-poll socket options set.
    pub busy_poll: bool,
    /// Why better choices were not used (failed native attach, zero-copy
    /// bind, huge pages).
    pub notes: Vec<String>,
}

impl SocketMode {
    /// One line for `explain()` texts, e.g. "native XDP, copy mode,
    /// need_wakeup, regular pages (zero-copy bind failed: ...)".
    pub fn explain(&self) -> String {
        let mut s = format!(
            "{} XDP, {} mode{}, {}{}",
            self.attach.as_str(),
            if self.zero_copy { "zero-copy" } else { "copy" },
            if self.need_wakeup {
                ", need_wakeup"
            } else {
                ""
            },
            if self.huge_pages {
                "huge pages"
            } else {
                "regular pages"
            },
            if self.busy_poll { ", busy-poll" } else { "" },
        );
        if !self.notes.is_empty() {
            s.push_str(" (");
            s.push_str(&self.notes.join("; "));
            s.push(')');
        }
        s
    }
}

impl fmt::Display for SocketMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.explain())
    }
}

/// Counters of a socket: ours and the kernel's (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames put on the TX ring.
    pub tx_frames: u64,
    /// TX completions reaped.
    pub tx_completed: u64,
    /// `sendto` kicks of the TX ring.
    pub tx_kicks: u64,
    /// `recvfrom` calls that drove RX (busy poll or need_wakeup).
    pub rx_wakeups: u64,
    /// Kicks that failed with an unexpected error.
    pub kick_errors: u64,
    /// Kernel: frames dropped for other reasons.
    pub rx_dropped: u64,
    /// Kernel: invalid descriptors on the fill ring.
    pub rx_invalid_descs: u64,
    /// Kernel: invalid descriptors on the TX ring.
    pub tx_invalid_descs: u64,
    /// Kernel: frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Kernel: frames dropped because the fill ring was empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Kernel: TX attempts that found the TX ring empty.
    pub tx_ring_empty_descs: u64,
}

/// State shared by a socket's handles and its frames; dropped when the
/// last of them goes.
pub(crate) struct Shared {
    // Field order is drop order: rings, then the socket, then the program
    // (detached if this was its last owner), then the UMEM.
    fill: RefCell<Ring<u64>>,
    comp: RefCell<Ring<u64>>,
    rx: RefCell<Ring<libc::xdp_desc>>,
    tx: RefCell<Ring<libc::xdp_desc>>,
    fd: OwnedFd,
    program: Arc<XdpProgram>,
    umem: Mapping,
    pub(crate) frame_size: u32,
    tx_headroom: u32,
    /// Chunks we own that are in no ring (TX pool).
    free: RefCell<Vec<u64>>,
    /// Chunks in the fill or RX ring (the kernel's receive buffers).
    kernel_rx: Cell<u32>,
    /// How many receive buffers to keep with the kernel.
    fill_target: u32,
    /// Keep at least this many chunks free for TX when refilling.
    tx_reserve: usize,
    /// Chunks in the TX ring or awaiting completion.
    tx_in_flight: Cell<u32>,
    /// Copy mode: every TX needs a `sendto`.
    copy_mode: bool,
    busy_poll: bool,
    /// RX producer index at the last report to the executor.
    rx_seen: Cell<u32>,
    rx_waker: RefCell<Option<Waker>>,
    ports: RefCell<Vec<u16>>,
    addresses: RefCell<Vec<Ipv4Addr>>,
    interface: String,
    queue: u32,
    mode: SocketMode,
    stats: Cell<XdpStats>,
}

impl Shared {
    pub(crate) fn chunk_of(&self, addr: u64) -> u64 {
        addr & !(self.frame_size as u64 - 1)
    }

    /// # Safety
    /// `addr..addr + len` must lie inside the UMEM and belong to a frame
    /// the caller owns (not in any ring), with no `&mut` alias alive.
    pub(crate) unsafe fn bytes(&self, addr: u64, len: usize) -> &[u8] {
        debug_assert!(addr as usize + len <= self.umem.len());
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(self.umem.as_ptr().add(addr as usize), len) }
    }

    /// # Safety
    /// As [`bytes`](Self::bytes), and no other reference to the range may
    /// be alive.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn bytes_mut(&self, addr: u64, len: usize) -> &mut [u8] {
        debug_assert!(addr as usize + len <= self.umem.len());
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts_mut(self.umem.as_ptr().add(addr as usize), len) }
    }

    fn bump(&self, f: impl FnOnce(&mut XdpStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// A dropped RX frame: back to the kernel when it is short of receive
    /// buffers, else to the TX pool.
    pub(crate) fn recycle_rx(&self, addr: u64) {
        let chunk = self.chunk_of(addr);
        if self.kernel_rx.get() < self.fill_target {
            if let Ok(mut fill) = self.fill.try_borrow_mut() {
                if fill.push(chunk) {
                    fill.publish();
                    self.kernel_rx.set(self.kernel_rx.get() + 1);
                    return;
                }
            }
        }
        self.recycle_free(chunk);
    }

    pub(crate) fn recycle_free(&self, chunk: u64) {
        self.free.borrow_mut().push(chunk);
    }

    /// Moves completed TX chunks to the TX pool.
    fn reap(&self) -> u32 {
        let mut comp = self.comp.borrow_mut();
        let n = comp.available();
        if n == 0 {
            return 0;
        }
        let mut free = self.free.borrow_mut();
        for _ in 0..n {
            let addr = comp.take();
            free.push(self.chunk_of(addr));
        }
        comp.release();
        self.tx_in_flight
            .set(self.tx_in_flight.get().saturating_sub(n));
        self.bump(|s| s.tx_completed += n as u64);
        n
    }

    /// Tops the fill ring up to the target from the TX pool.
    fn refill(&self) -> u32 {
        let missing = self.fill_target.saturating_sub(self.kernel_rx.get());
        if missing == 0 {
            return 0;
        }
        let mut free = self.free.borrow_mut();
        let mut fill = self.fill.borrow_mut();
        let mut pushed = 0;
        while pushed < missing && free.len() > self.tx_reserve {
            let chunk = *free.last().expect("non-empty");
            if !fill.push(chunk) {
                break;
            }
            free.pop();
            pushed += 1;
        }
        if pushed > 0 {
            fill.publish();
            self.kernel_rx.set(self.kernel_rx.get() + pushed);
        }
        pushed
    }

    /// Publishes the TX ring and, when the kernel needs it (always in copy
    /// mode), kicks it with `sendto`.
    fn flush(&self) {
        let mut tx = self.tx.borrow_mut();
        tx.publish();
        if !(self.copy_mode || tx.needs_wakeup()) {
            return;
        }
        // Copy mode transmits a bounded batch (32) per call and says EAGAIN
        // when more is left: kick until done, within a bound.
        let rounds = tx.size() / 16 + 2;
        for _ in 0..rounds {
            if tx.pending() == 0 {
                break;
            }
            self.bump(|s| s.tx_kicks += 1);
            // SAFETY: sendto with no buffer and no address only wakes the
            // kernel's TX processing of our own socket.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if rc >= 0 {
                continue;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                // Out of skbs or device busy/down: retried from `drive`.
                Some(libc::ENOBUFS) | Some(libc::EBUSY) | Some(libc::ENETDOWN) => break,
                _ => {
                    self.bump(|s| s.kick_errors += 1);
                    break;
                }
            }
        }
    }

    /// `recvfrom` on the socket: drives NAPI (busy poll) or wakes a driver
    /// that asked for it.
    fn wake_rx(&self) {
        self.bump(|s| s.rx_wakeups += 1);
        // SAFETY: recvfrom with no buffer and no address only makes the
        // kernel process our own socket's RX.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        for port in self.ports.get_mut().drain(..) {
            let _ = self.program.remove_port(port);
        }
        for addr in self.addresses.get_mut().drain(..) {
            let _ = self.program.remove_address(addr);
        }
        self.program.clear_socket(self.queue);
    }
}

/// An AF_XDP socket on one queue of one interface, with its UMEM and rings
/// and the XDP program that steers bound UDP ports to it.
///
/// It is a cheap handle (clones share the socket) and belongs to the core
/// thread that opened it. As a [`Reactor`] it is polled by that core: each
/// poll reaps TX completions, kicks the TX ring when needed, refills the
/// fill ring, drives RX when busy polling (or when the kernel asks), and
/// wakes a task waiting in [`recv_async`](Self::recv_async). It does not
/// park: AF_XDP flows are busy-polled, so a core serving one should use a
/// spinning idle policy.
///
/// The program is detached, the ports removed and the queue released when
/// the last handle and the last frame are gone. Rebinding the same queue
/// within about a second then fails with EBUSY (retried for
/// [`SocketConfig::bind_retry`]).
#[derive(Clone)]
pub struct XdpSocket {
    shared: Rc<Shared>,
}

impl fmt::Debug for XdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpSocket")
            .field("interface", &self.shared.interface)
            .field("queue", &self.shared.queue)
            .field("mode", &self.shared.mode)
            .finish()
    }
}

fn os_error(e: &io::Error) -> String {
    let name = sys::errno_name(e);
    if name.is_empty() {
        e.to_string()
    } else {
        format!("{e} {name}")
    }
}

fn cap_hint(what: &str, e: io::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{what} failed: {}; AF_XDP needs CAP_NET_ADMIN and CAP_NET_RAW{}",
            os_error(&e),
            if sys::has_cap_net_admin() {
                ""
            } else {
                " (the calling thread lacks CAP_NET_ADMIN)"
            }
        ),
    )
}

fn bind_socket(fd: RawFd, ifindex: u32, queue: u32, flags: u16) -> io::Result<()> {
    let addr = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: 0,
    };
    // SAFETY: `addr` is a live sockaddr_xdp and we pass its size.
    let rc = unsafe {
        libc::bind(
            fd,
            (&addr as *const libc::sockaddr_xdp).cast(),
            size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn bind_error(interface: &str, queue: u32, zero_copy: bool, e: io::Error) -> io::Error {
    let what = format!(
        "AF_XDP bind to {interface} queue {queue}{} failed",
        if zero_copy && e.raw_os_error() != Some(libc::EBUSY) {
            " in zero-copy mode"
        } else {
            ""
        }
    );
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => return cap_hint(&what, e),
        Some(libc::EBUSY) => {
            " (queue bound within the last second? rebinding needs ~1 s; or another AF_XDP socket is bound to it)".to_string()
        }
        Some(libc::EINVAL) => match sys::rx_queues(interface) {
            Some(n) if queue >= n => format!(" (queue {queue} does not exist: {interface} has {n} RX queue(s))"),
            _ => String::new(),
        },
        Some(libc::EOPNOTSUPP) if zero_copy => {
            format!(" (the driver of {interface} has no zero-copy AF_XDP support)")
        }
        Some(libc::ENODEV) | Some(libc::ENXIO) => format!(" (interface {interface} disappeared)"),
        _ => String::new(),
    };
    io::Error::new(e.kind(), format!("{what}: {}{hint}", os_error(&e)))
}

/// Probes AF_XDP on `interface` queue `queue` for the driver-selection
/// policy: attaches the program (native, then generic), binds a small
/// socket (zero-copy, then copy), and reports what worked. Everything is
/// released again; note that the queue stays busy for ~1 s afterwards
/// (an [`XdpSocket::open`] right after retries, see
/// [`SocketConfig::bind_retry`]). `huge_pages` in the report is always false
/// (the probe's UMEM is small).
///
/// # Errors
/// As [`XdpSocket::open`]: the error names what is missing.
pub fn probe(interface: &str, queue: u32) -> io::Result<SocketMode> {
    let socket = XdpSocket::open(
        SocketConfig::new(interface, queue)
            .frame_count(64)
            .ring_size(32)
            .huge_pages(false),
    )?;
    let mut mode = socket.mode().clone();
    mode.notes.retain(|n| !n.contains("huge pages"));
    Ok(mode)
}

impl XdpSocket {
    /// Opens a socket as `config` says: UMEM, rings, the XDP program
    /// (native, then generic), bind (zero-copy, then copy), the XSKMAP
    /// entry for the queue, the configured ports and busy polling.
    ///
    /// Must be called on the thread that will use the socket, inside the
    /// network namespace of the interface.
    ///
    /// # Errors
    /// Every failure names its cause: invalid configuration, interface not
    /// found, missing CAP_NET_ADMIN, kernel without AF_XDP or too old,
    /// queue busy or missing, another XDP program attached.
    pub fn open(config: SocketConfig) -> io::Result<Self> {
        config.validate()?;
        let interface = config.interface.clone();
        let queue = config.queue;
        let ifindex = sys::if_index(&interface).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("interface {interface} not found"),
            )
        })?;
        let mut notes = Vec::new();

        // The socket.
        // SAFETY: plain socket creation; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => cap_hint("socket(AF_XDP)", e),
                Some(libc::EAFNOSUPPORT) => io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "socket(AF_XDP) failed: {}; the kernel has no AF_XDP (CONFIG_XDP_SOCKETS, Linux >= 4.18)",
                        os_error(&e)
                    ),
                ),
                _ => io::Error::new(e.kind(), format!("socket(AF_XDP) failed: {}", os_error(&e))),
            });
        }
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = fd.as_raw_fd();

        // UMEM.
        let umem_len = config.frame_size as usize * config.frame_count as usize;
        let (umem, why_not_huge) = Mapping::anonymous(umem_len, config.huge_pages)?;
        let huge_pages = config.huge_pages && why_not_huge.is_none();
        notes.extend(why_not_huge);
        let reg = libc::xdp_umem_reg {
            addr: umem.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: config.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        sys::setsockopt(sock, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg).map_err(|e| {
            if matches!(e.raw_os_error(), Some(libc::EPERM)) {
                cap_hint("XDP_UMEM_REG", e)
            } else {
                io::Error::new(
                    e.kind(),
                    format!(
                        "registering a {umem_len}-byte UMEM (XDP_UMEM_REG) failed: {}",
                        os_error(&e)
                    ),
                )
            }
        })?;

        // Rings.
        let ring_size = config.ring_size;
        for (opt, name) in [
            (libc::XDP_UMEM_FILL_RING, "fill"),
            (libc::XDP_UMEM_COMPLETION_RING, "completion"),
            (libc::XDP_RX_RING, "RX"),
            (libc::XDP_TX_RING, "TX"),
        ] {
            sys::setsockopt(sock, libc::SOL_XDP, opt, &ring_size).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "setting the AF_XDP {name} ring to {ring_size} entries failed: {}",
                        os_error(&e)
                    ),
                )
            })?;
        }
        let off = mmap_offsets(sock)?;
        let ring_err = |name: &'static str| {
            move |e: io::Error| {
                io::Error::new(
                    e.kind(),
                    format!("mapping the AF_XDP {name} ring failed: {}", os_error(&e)),
                )
            }
        };
        let fill = Ring::<u64>::map(
            sock,
            ring_size,
            &off.fr,
            libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
        )
        .map_err(ring_err("fill"))?;
        let comp = Ring::<u64>::map(
            sock,
            ring_size,
            &off.cr,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t,
        )
        .map_err(ring_err("completion"))?;
        let rx = Ring::<libc::xdp_desc>::map(sock, ring_size, &off.rx, libc::XDP_PGOFF_RX_RING)
            .map_err(ring_err("RX"))?;
        let tx = Ring::<libc::xdp_desc>::map(sock, ring_size, &off.tx, libc::XDP_PGOFF_TX_RING)
            .map_err(ring_err("TX"))?;

        // The program.
        let program = match config.program.clone() {
            Some(p) if p.ifindex() == ifindex => p,
            Some(p) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "the XDP program given for {interface} is attached to {} instead",
                        p.interface()
                    ),
                ));
            }
            None => Arc::new(XdpProgram::attach_index(&interface, ifindex, config.mode)?),
        };
        notes.extend(program.notes().iter().cloned());

        // Bind: zero-copy, then copy.
        let zc_attempts: &[bool] = match (program.mode(), config.zero_copy) {
            (AttachMode::Generic, _) | (_, ZeroCopy::Off) => &[false],
            (AttachMode::Native, ZeroCopy::Required) => &[true],
            (AttachMode::Native, ZeroCopy::Auto) => &[true, false],
        };
        let wakeup_flag = if config.need_wakeup {
            libc::XDP_USE_NEED_WAKEUP
        } else {
            0
        };
        let deadline = Instant::now() + config.bind_retry;
        let mut zero_copy = None;
        for (i, &zc) in zc_attempts.iter().enumerate() {
            let flags = wakeup_flag
                | if zc {
                    libc::XDP_ZEROCOPY
                } else {
                    libc::XDP_COPY
                };
            let result = loop {
                match bind_socket(sock, ifindex, queue, flags) {
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    r => break r,
                }
            };
            match result {
                Ok(()) => {
                    zero_copy = Some(zc);
                    break;
                }
                Err(e)
                    if zc && i + 1 < zc_attempts.len() && e.raw_os_error() != Some(libc::EBUSY) =>
                {
                    tracing::debug!(interface, queue, error = %e, "zero-copy bind failed, trying copy mode");
                    notes.push(format!("zero-copy bind failed: {}", os_error(&e)));
                }
                Err(e) => return Err(bind_error(&interface, queue, zc, e)),
            }
        }
        let zero_copy = zero_copy.expect("a bind attempt succeeded");

        // Busy polling.
        let busy_poll = match config.busy_poll {
            None => false,
            Some(bp) => {
                let set = |name: &str, opt: libc::c_int, v: u32| {
                    sys::setsockopt(sock, libc::SOL_SOCKET, opt, &v).map_err(|e| {
                        let what = format!("setsockopt({name}) on the AF_XDP socket");
                        if e.raw_os_error() == Some(libc::EPERM) {
                            cap_hint(&what, e)
                        } else {
                            io::Error::new(e.kind(), format!("{what} failed: {}", os_error(&e)))
                        }
                    })
                };
                set("SO_PREFER_BUSY_POLL", sys::SO_PREFER_BUSY_POLL, 1)?;
                set("SO_BUSY_POLL", sys::SO_BUSY_POLL, bp.usecs)?;
                set(
                    "SO_BUSY_POLL_BUDGET",
                    sys::SO_BUSY_POLL_BUDGET,
                    bp.budget as u32,
                )?;
                true
            }
        };

        let mode = SocketMode {
            attach: program.mode(),
            zero_copy,
            need_wakeup: config.need_wakeup,
            huge_pages,
            busy_poll,
            notes,
        };
        let fill_target = (config.frame_count / 2).min(ring_size);
        let shared = Rc::new(Shared {
            fill: RefCell::new(fill),
            comp: RefCell::new(comp),
            rx: RefCell::new(rx),
            tx: RefCell::new(tx),
            fd,
            program: program.clone(),
            umem,
            frame_size: config.frame_size,
            tx_headroom: config.tx_headroom,
            free: RefCell::new(
                (0..config.frame_count as u64)
                    .rev()
                    .map(|i| i * config.frame_size as u64)
                    .collect(),
            ),
            kernel_rx: Cell::new(0),
            fill_target,
            tx_reserve: (config.frame_count / 4) as usize,
            tx_in_flight: Cell::new(0),
            copy_mode: !zero_copy,
            busy_poll,
            rx_seen: Cell::new(0),
            rx_waker: RefCell::new(None),
            ports: RefCell::new(Vec::new()),
            addresses: RefCell::new(Vec::new()),
            interface: interface.clone(),
            queue,
            mode,
            stats: Cell::new(XdpStats::default()),
        });
        // Receive buffers first, then the XSKMAP entry, then the ports: no
        // frame is steered here before the socket can take it.
        let filled = shared.refill();
        debug_assert_eq!(filled, fill_target);
        program.set_socket(queue, sock)?;
        let socket = Self { shared };
        for port in config.ports {
            socket.bind_port(port)?;
        }
        tracing::debug!(interface, queue, mode = %socket.shared.mode, "AF_XDP socket open");
        Ok(socket)
    }

    /// The modes in use and why better ones were not.
    pub fn mode(&self) -> &SocketMode {
        &self.shared.mode
    }

    /// One line: "AF_XDP on veth0 queue 0: native XDP, copy mode, ...".
    pub fn explain(&self) -> String {
        format!(
            "AF_XDP on {} queue {}: {}",
            self.shared.interface, self.shared.queue, self.shared.mode
        )
    }

    /// The UMEM frame size (2048 or 4096 bytes).
    pub fn frame_size(&self) -> u32 {
        self.shared.frame_size
    }

    /// The longest frame the kernel can deliver into a UMEM frame: the
    /// frame size minus the `XDP_PACKET_HEADROOM` (256 bytes) the kernel
    /// keeps in front of received data (copy mode, and zero-copy drivers
    /// alike); longer frames are dropped by the kernel
    /// ([`XdpStats::rx_dropped`]).
    pub fn max_rx_frame(&self) -> usize {
        self.shared.frame_size as usize - XDP_PACKET_HEADROOM
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.shared.interface
    }

    /// The queue index.
    pub fn queue(&self) -> u32 {
        self.shared.queue
    }

    /// The XDP program steering frames to this socket.
    pub fn program(&self) -> &Arc<XdpProgram> {
        &self.shared.program
    }

    /// Steers UDP datagrams to `port` to this interface's AF_XDP sockets
    /// (the one of the queue they arrive on). Idempotent.
    ///
    /// # Errors
    /// The port map is full or cannot be updated.
    pub fn bind_port(&self, port: u16) -> io::Result<()> {
        if self.shared.ports.borrow().contains(&port) {
            return Ok(());
        }
        self.shared.program.add_port(port)?;
        self.shared.ports.borrow_mut().push(port);
        Ok(())
    }

    /// Stops steering UDP port `port` (its datagrams reach the kernel
    /// again). Idempotent.
    ///
    /// # Errors
    /// The port map cannot be updated.
    pub fn unbind_port(&self, port: u16) -> io::Result<()> {
        let mut ports = self.shared.ports.borrow_mut();
        if let Some(i) = ports.iter().position(|&p| p == port) {
            self.shared.program.remove_port(port)?;
            ports.swap_remove(i);
        }
        Ok(())
    }

    /// Steers ARP whose target is `addr` and ICMP to `addr` to this
    /// interface's AF_XDP sockets, for a userspace stack that owns `addr`
    /// while the kernel keeps a different address on the interface (see
    /// [`XdpProgram::add_address`]). Released when the socket closes.
    /// Idempotent.
    ///
    /// # Errors
    /// The address map is full or cannot be updated.
    pub fn bind_address(&self, addr: Ipv4Addr) -> io::Result<()> {
        if self.shared.addresses.borrow().contains(&addr) {
            return Ok(());
        }
        self.shared.program.add_address(addr)?;
        self.shared.addresses.borrow_mut().push(addr);
        Ok(())
    }

    /// Stops steering ARP and ICMP for `addr` (they reach the kernel
    /// again). Idempotent.
    ///
    /// # Errors
    /// The address map cannot be updated.
    pub fn unbind_address(&self, addr: Ipv4Addr) -> io::Result<()> {
        let mut addrs = self.shared.addresses.borrow_mut();
        if let Some(i) = addrs.iter().position(|&a| a == addr) {
            self.shared.program.remove_address(addr)?;
            addrs.swap_remove(i);
        }
        Ok(())
    }

    /// The ports this socket added.
    pub fn ports(&self) -> Vec<u16> {
        self.shared.ports.borrow().clone()
    }

    /// The next received frame, if one is ready. Does not block and does
    /// not make syscalls (see [`drive`](Self::drive)).
    pub fn recv(&self) -> Option<XdpRxFrame> {
        let s = &self.shared;
        let desc = {
            let mut rx = s.rx.borrow_mut();
            if rx.available() == 0 {
                return None;
            }
            let desc = rx.take();
            rx.release();
            desc
        };
        s.kernel_rx.set(s.kernel_rx.get().saturating_sub(1));
        s.bump(|st| st.rx_frames += 1);
        if desc.addr as usize + desc.len as usize > s.umem.len() {
            // Cannot happen with a correct kernel; never hand out memory
            // outside the UMEM.
            s.bump(|st| st.rx_invalid_descs += 1);
            return None;
        }
        Some(XdpRxFrame {
            shared: s.clone(),
            addr: desc.addr,
            len: desc.len,
        })
    }

    /// Whether received frames wait in the RX ring: one load of the
    /// kernel's producer index, no system call and no other work (no
    /// refill, no kick, no busy-poll `recvfrom`; [`drive`](Self::drive)
    /// does those). For a receiver that looks for its frames more often
    /// than the core polls the socket.
    pub fn rx_ready(&self) -> bool {
        self.shared.rx.borrow_mut().available() > 0
    }

    /// Appends up to `max` ready frames to `out`; returns how many.
    pub fn recv_batch(&self, out: &mut Vec<XdpRxFrame>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            match self.recv() {
                Some(f) => {
                    out.push(f);
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    /// `Ready` with a frame, or `Pending` after registering `cx`'s waker,
    /// which the reactor wakes when frames arrive.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<XdpRxFrame> {
        if let Some(f) = self.recv() {
            return Poll::Ready(f);
        }
        let mut waker = self.shared.rx_waker.borrow_mut();
        match &*waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *waker = Some(cx.waker().clone()),
        }
        drop(waker);
        // A frame may have landed between the check and the registration.
        match self.recv() {
            Some(f) => Poll::Ready(f),
            None => Poll::Pending,
        }
    }

    /// Waits for the next frame (the socket must be
    /// [`register`](Self::register)ed on this core, whose idle policy
    /// should spin).
    pub fn recv_async(&self) -> Recv<'_> {
        Recv { socket: self }
    }

    /// A free frame for transmission, empty, with the configured TX
    /// headroom; `None` when all TX frames are in flight (reaps
    /// completions first).
    pub fn tx_frame(&self) -> Option<XdpTxFrame> {
        let s = &self.shared;
        let mut chunk = s.free.borrow_mut().pop();
        if chunk.is_none() && s.reap() > 0 {
            chunk = s.free.borrow_mut().pop();
        }
        Some(XdpTxFrame {
            shared: s.clone(),
            chunk: chunk?,
            start: s.tx_headroom,
            len: 0,
        })
    }

    /// Puts `frame` on the TX ring and kicks the kernel (always in copy
    /// mode; in zero-copy mode when it asks). An empty frame is dropped.
    ///
    /// # Errors
    /// Gives the frame back when the TX ring is full.
    ///
    /// # Panics
    /// When `frame` belongs to another socket's UMEM.
    pub fn send(&self, frame: XdpTxFrame) -> Result<(), XdpTxFrame> {
        self.enqueue(frame)?;
        self.shared.flush();
        Ok(())
    }

    /// Puts `frame` on the TX ring without publishing or kicking; call
    /// [`flush`](Self::flush) after a batch (the reactor also flushes on
    /// every poll).
    ///
    /// # Errors
    /// Gives the frame back when the TX ring is full.
    ///
    /// # Panics
    /// When `frame` belongs to another socket's UMEM.
    pub fn enqueue(&self, mut frame: XdpTxFrame) -> Result<(), XdpTxFrame> {
        let s = &self.shared;
        assert!(
            Rc::ptr_eq(&frame.shared, s),
            "XdpTxFrame from another AF_XDP socket's UMEM"
        );
        if frame.is_empty() {
            return Ok(());
        }
        let desc = libc::xdp_desc {
            addr: frame.addr(),
            len: frame.len() as u32,
            options: 0,
        };
        {
            let mut tx = s.tx.borrow_mut();
            if !tx.push(desc) {
                drop(tx);
                s.reap();
                if !s.tx.borrow_mut().push(desc) {
                    return Err(frame);
                }
            }
        }
        frame.mark_sent();
        s.tx_in_flight.set(s.tx_in_flight.get() + 1);
        s.bump(|st| st.tx_frames += 1);
        Ok(())
    }

    /// Publishes enqueued frames and kicks the kernel when needed.
    pub fn flush(&self) {
        self.shared.flush();
    }

    /// Reaps TX completions (their frames become free); returns how many.
    pub fn reap(&self) -> u32 {
        self.shared.reap()
    }

    /// TX frames in the ring or awaiting completion.
    pub fn tx_in_flight(&self) -> u32 {
        self.shared.tx_in_flight.get()
    }

    /// What [`Reactor::poll`] does, callable without a runtime: reap
    /// completions, kick a TX ring the kernel has not drained, refill the
    /// fill ring, drive RX when busy polling or asked to, and wake a task
    /// waiting in [`recv_async`](Self::recv_async). Returns the number of
    /// events (completions plus newly arrived frames).
    pub fn drive(&self) -> usize {
        let s = &self.shared;
        let mut events = s.reap() as usize;
        let tx_pending = s.tx.borrow_mut().pending();
        if tx_pending > 0 {
            s.flush();
        }
        s.refill();
        if s.rx.borrow_mut().available() == 0 && (s.busy_poll || s.fill.borrow().needs_wakeup()) {
            s.wake_rx();
        }
        let produced = s.rx.borrow_mut().refresh_producer();
        let new = produced.wrapping_sub(s.rx_seen.get());
        if new > 0 {
            s.rx_seen.set(produced);
            events += new as usize;
            if let Some(w) = s.rx_waker.borrow_mut().take() {
                w.wake();
            }
        }
        events
    }

    /// Registers (a handle of) this socket as a reactor of the current
    /// core. The core keeps that handle, so the socket, its queue and the
    /// program stay until the runtime shuts down.
    ///
    /// # Errors
    /// Outside an insane runtime.
    pub fn register(&self) -> io::Result<()> {
        insane_runtime::reactor::register(Rc::new(RefCell::new(self.clone())))
    }

    /// Our counters plus the kernel's `XDP_STATISTICS`.
    ///
    /// # Errors
    /// The getsockopt fails.
    pub fn stats(&self) -> io::Result<XdpStats> {
        // SAFETY: xdp_statistics is plain old data; all-zero is valid.
        let mut k: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        sys::getsockopt(
            self.shared.fd.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            &mut k,
        )
        .map_err(|e| io::Error::new(e.kind(), format!("getsockopt(XDP_STATISTICS) failed: {e}")))?;
        let mut s = self.shared.stats.get();
        s.rx_dropped = k.rx_dropped;
        s.rx_invalid_descs += k.rx_invalid_descs;
        s.tx_invalid_descs = k.tx_invalid_descs;
        s.rx_ring_full = k.rx_ring_full;
        s.rx_fill_ring_empty_descs = k.rx_fill_ring_empty_descs;
        s.tx_ring_empty_descs = k.tx_ring_empty_descs;
        Ok(s)
    }

    /// The socket descriptor (for poll/epoll by callers that want to).
    pub fn as_raw_fd(&self) -> RawFd {
        self.shared.fd.as_raw_fd()
    }
}

impl Reactor for XdpSocket {
    fn name(&self) -> &'static str {
        "xdp"
    }

    fn poll(&mut self) -> usize {
        self.drive()
    }
}

/// Future of [`XdpSocket::recv_async`].
#[derive(Debug)]
pub struct Recv<'a> {
    socket: &'a XdpSocket,
}

impl Future for Recv<'_> {
    type Output = XdpRxFrame;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<XdpRxFrame> {
        self.socket.poll_recv(cx)
    }
}

/// `getsockopt(XDP_MMAP_OFFSETS)`, accepting the pre-5.4 layout without
/// the flags words.
fn mmap_offsets(sock: RawFd) -> io::Result<libc::xdp_mmap_offsets> {
    // SAFETY: plain old data; all-zero is valid.
    let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
    let len =
        sys::getsockopt(sock, libc::SOL_XDP, libc::XDP_MMAP_OFFSETS, &mut off).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("getsockopt(XDP_MMAP_OFFSETS) failed: {}", os_error(&e)),
            )
        })?;
    if len == size_of::<libc::xdp_mmap_offsets>() {
        return Ok(off);
    }
    if len == size_of::<libc::xdp_mmap_offsets_v1>() {
        // The kernel wrote the v1 layout (no flags) into the start of the
        // buffer: reinterpret it.
        // SAFETY: v1 is plain old data no larger than `off`, whose first
        // `len` bytes the kernel initialised in that layout.
        let v1: libc::xdp_mmap_offsets_v1 =
            unsafe { std::ptr::read((&off as *const libc::xdp_mmap_offsets).cast()) };
        let conv = |r: libc::xdp_ring_offset_v1| libc::xdp_ring_offset {
            producer: r.producer,
            consumer: r.consumer,
            desc: r.desc,
            flags: r.consumer + size_of::<u32>() as u64,
        };
        return Ok(libc::xdp_mmap_offsets {
            rx: conv(v1.rx),
            tx: conv(v1.tx),
            fr: conv(v1.fr),
            cr: conv(v1.cr),
        });
    }
    Err(io::Error::other(format!(
        "getsockopt(XDP_MMAP_OFFSETS) returned an unknown layout of {len} bytes"
    )))
}
